/* pool.cu: max pooling, forward and backward, with the CPU's tie rule: each
 * window's maximum is its FIRST maximum in row-major window order (strict >
 * while scanning), and backward routes dout there.
 *
 * Backward gathers: one thread per input element visits the windows that
 * contain it in (oh, ow) order and adds dout where it is the argmax. That is
 * the order in which the CPU accumulates, so even overlapping windows (3x3
 * at stride 2) give the CPU's result bit for bit, and no atomics are used. */
#include "reduce.cuh"

typedef nn_cuda_pool_geom geom;

/* ---- kernels ---------------------------------------------------------- */

/* Index within an (H,W) plane of the first maximum of window (oh, ow). */
static __device__ int window_argmax(const nn_real *x, const geom &g, int oh, int ow)
{
    const int h0 = oh * g.stride, w0 = ow * g.stride;
    int best = h0 * g.W + w0;
    nn_real m = x[best];
    for (int r = 0; r < g.PH; r++)
        for (int s = 0; s < g.PW; s++) {
            const int i = (h0 + r) * g.W + w0 + s;
            if (x[i] > m) {
                m = x[i];
                best = i;
            }
        }
    return best;
}

/* inp (N,C,H,W), out (N,C,P,Q); one thread per output element. */
__global__ void maxpool_forward_kernel(nn_real *out, const nn_real *inp, geom g,
                                       size_t total)
{
    const unsigned pq = (unsigned)(g.P * g.Q);
    const size_t hw = (size_t)g.H * g.W;
    GRID_STRIDE_LOOP(i, total) {
        const size_t plane = i / pq;
        const unsigned t = (unsigned)(i - plane * pq);
        const int oh = (int)(t / (unsigned)g.Q), ow = (int)(t % (unsigned)g.Q);
        const nn_real *x = inp + plane * hw;
        out[i] = x[window_argmax(x, g, oh, ow)];
    }
}

/* dinp (N,C,H,W) += dout routed to each window's argmax; one thread per
 * input element. Windows holding row h are oh in [lo, hi] with
 * oh*stride <= h < oh*stride + PH, clipped to [0, P). */
__global__ void maxpool_backward_kernel(nn_real *dinp, const nn_real *dout,
                                        const nn_real *inp, geom g, size_t total)
{
    const unsigned hw = (unsigned)(g.H * g.W);
    const size_t pq = (size_t)g.P * g.Q;
    GRID_STRIDE_LOOP(i, total) {
        const size_t plane = i / hw;
        const int me = (int)(i - plane * hw);
        const int h = me / g.W, w = me % g.W;
        const int oh_lo = h < g.PH ? 0 : (h - g.PH) / g.stride + 1;
        const int ow_lo = w < g.PW ? 0 : (w - g.PW) / g.stride + 1;
        const int oh_hi = min(h / g.stride, g.P - 1);
        const int ow_hi = min(w / g.stride, g.Q - 1);
        const nn_real *x = inp + plane * hw;
        const nn_real *dy = dout + plane * pq;
        nn_real acc = dinp[i];
        for (int oh = oh_lo; oh <= oh_hi; oh++)
            for (int ow = ow_lo; ow <= ow_hi; ow++)
                if (window_argmax(x, g, oh, ow) == me)
                    acc += dy[oh * g.Q + ow];
        dinp[i] = acc;
    }
}

/* ---- launchers -------------------------------------------------------- */

extern "C" nn_status nn_cuda_maxpool_forward(nn_cuda_ctx *ctx, nn_real *out,
                                             const nn_real *inp, const geom *g,
                                             char *err)
{
    const size_t total = (size_t)g->N * g->C * g->P * g->Q;
    maxpool_forward_kernel<<<grid_for(total), NN_CUDA_BLOCK, 0, ctx->stream>>>(out, inp,
                                                                               *g, total);
    NN_CUDA_CHECK_LAUNCH();
    return NN_OK;
}

extern "C" nn_status nn_cuda_maxpool_backward(nn_cuda_ctx *ctx, nn_real *dinp,
                                              const nn_real *dout, const nn_real *inp,
                                              const geom *g, char *err)
{
    const size_t total = (size_t)g->N * g->C * g->H * g->W;
    maxpool_backward_kernel<<<grid_for(total), NN_CUDA_BLOCK, 0, ctx->stream>>>(
        dinp, dout, inp, *g, total);
    NN_CUDA_CHECK_LAUNCH();
    return NN_OK;
}
