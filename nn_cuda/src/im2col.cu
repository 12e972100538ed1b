/* im2col.cu: convolution as the CPU's _gemm kernels do it: lower images to
 * column matrices (im2col), multiply with cuBLAS, fold the input gradient
 * back (col2im). Unlike the CPU, one launch lowers as many images as the
 * workspace holds and their GEMMs run as one strided batch.
 *
 * col2im gathers (one thread per input element, visiting the column entries
 * that read it) instead of scattering with atomics: no races, and the same
 * result on every run. Not here: a direct or implicit-GEMM convolution. */
#include "reduce.cuh"

typedef nn_cuda_conv_geom geom;

/* ---- kernels ---------------------------------------------------------- */

/* x is (nb,C,H,W); col is (nb, C*R*S, P*Q), image j's matrix at j*crspq,
 * row (c*R + r)*S + s, column p*Q + q: the CPU's im2col layout. total =
 * nb * crspq; crspq < 2^31 (checked by the launcher's caller). */
__global__ void im2col_kernel(nn_real *col, const nn_real *x, geom g,
                              unsigned crspq, size_t total)
{
    GRID_STRIDE_LOOP(i, total) {
        const size_t j = i / crspq;
        unsigned t = (unsigned)(i - j * crspq);
        const int q = (int)(t % (unsigned)g.Q);
        t /= (unsigned)g.Q;
        const int p = (int)(t % (unsigned)g.P);
        t /= (unsigned)g.P;
        const int s = (int)(t % (unsigned)g.S);
        t /= (unsigned)g.S;
        const int r = (int)(t % (unsigned)g.R);
        const int c = (int)(t / (unsigned)g.R);
        const int ih = p * g.stride - g.pad + r;
        const int iw = q * g.stride - g.pad + s;
        nn_real v = 0; /* zero padding */
        if (ih >= 0 && ih < g.H && iw >= 0 && iw < g.W)
            v = x[((j * g.C + c) * g.H + ih) * g.W + iw];
        col[i] = v;
    }
}

/* dx (nb,C,H,W) += col (nb, C*R*S, P*Q) folded back: im2col's transpose.
 * Column entry (c,r,s,p,q) read x[c, p*stride - pad + r, q*stride - pad + s],
 * so input (h,w) gathers the entries with p*stride = h + pad - r and
 * q*stride = w + pad - s. total = nb*C*H*W. */
__global__ void col2im_kernel(nn_real *dx, const nn_real *col, geom g,
                              unsigned chw, unsigned crspq, size_t total)
{
    const int PQ = g.P * g.Q;
    GRID_STRIDE_LOOP(i, total) {
        const size_t j = i / chw;
        unsigned t = (unsigned)(i - j * chw);
        const int w = (int)(t % (unsigned)g.W);
        t /= (unsigned)g.W;
        const int h = (int)(t % (unsigned)g.H);
        const int c = (int)(t / (unsigned)g.H);
        const nn_real *cj = col + j * crspq;
        nn_real acc = 0;
        for (int r = 0; r < g.R; r++) {
            const int ph = h + g.pad - r; /* = p * stride */
            if (ph < 0)
                break; /* only shrinks as r grows */
            if (ph % g.stride != 0 || ph / g.stride >= g.P)
                continue;
            const int p = ph / g.stride;
            for (int s = 0; s < g.S; s++) {
                const int qw = w + g.pad - s; /* = q * stride */
                if (qw < 0)
                    break;
                if (qw % g.stride != 0 || qw / g.stride >= g.Q)
                    continue;
                const int q = qw / g.stride;
                acc += cj[(size_t)((c * g.R + r) * g.S + s) * PQ + p * g.Q + q];
            }
        }
        dx[i] += acc;
    }
}

/* dw (E) += part_0 + part_1 + ... + part_{nb-1}, each part E long: the
 * per-image weight gradients of one strided-batch GEMM, added in image
 * order as the CPU's per-image GEMMs add them. total = E. */
__global__ void sum_images_kernel(nn_real *dw, const nn_real *part, int nb, size_t total)
{
    GRID_STRIDE_LOOP(i, total) {
        nn_real acc = dw[i];
        for (int j = 0; j < nb; j++)
            acc += part[(size_t)j * total + i];
        dw[i] = acc;
    }
}

/* ---- launchers -------------------------------------------------------- */

static nn_status im2col(nn_cuda_ctx *ctx, nn_real *col, const nn_real *x,
                        const geom *g, int nb, char *err)
{
    const unsigned crspq = (unsigned)(g->C * g->R * g->S) * (unsigned)(g->P * g->Q);
    const size_t total = (size_t)nb * crspq;
    im2col_kernel<<<grid_for(total), NN_CUDA_BLOCK, 0, ctx->stream>>>(col, x, *g,
                                                                      crspq, total);
    NN_CUDA_CHECK_LAUNCH();
    return NN_OK;
}

static nn_status col2im(nn_cuda_ctx *ctx, nn_real *dx, const nn_real *col,
                        const geom *g, int nb, char *err)
{
    const unsigned chw = (unsigned)(g->C * g->H * g->W);
    const unsigned crspq = (unsigned)(g->C * g->R * g->S) * (unsigned)(g->P * g->Q);
    const size_t total = (size_t)nb * chw;
    col2im_kernel<<<grid_for(total), NN_CUDA_BLOCK, 0, ctx->stream>>>(dx, col, *g, chw,
                                                                      crspq, total);
    NN_CUDA_CHECK_LAUNCH();
    return NN_OK;
}

/* Images per im2col launch: as many as the workspace holds at `need`
 * elements each, at least 1 (the caller checked ws_elems >= one image's
 * columns, all a single image needs). */
static int images_per_chunk(const geom *g, size_t need, size_t ws_elems)
{
    const size_t nb = ws_elems / need;
    return nb >= (size_t)g->N ? g->N : nb < 1 ? 1 : (int)nb;
}

extern "C" nn_status nn_cuda_conv2d_forward(nn_cuda_ctx *ctx, nn_real *out,
                                            const nn_real *inp, const nn_real *w,
                                            const nn_real *bias, const geom *g,
                                            nn_real *ws, size_t ws_elems, char *err)
{
    const int CRS = g->C * g->R * g->S, PQ = g->P * g->Q;
    const size_t chw = (size_t)g->C * g->H * g->W, kpq = (size_t)g->K * PQ;
    const int nb = images_per_chunk(g, (size_t)CRS * PQ, ws_elems);
    /* Bias first, then the GEMMs add the convolution (beta = 1), as on the
     * CPU. */
    NN_CUDA_TRY(nn_cuda_bias_fill(ctx, out, bias, g->N, g->K, (size_t)PQ, err));
    for (int n0 = 0; n0 < g->N; n0 += nb) {
        const int cnt = g->N - n0 < nb ? g->N - n0 : nb;
        NN_CUDA_TRY(im2col(ctx, ws, inp + (size_t)n0 * chw, g, cnt, err));
        /* out_j (K,PQ) += w (K,CRS) @ col_j (CRS,PQ), w shared (stride 0) */
        NN_CUDA_TRY(nn_cuda_gemm_strided(ctx, 0, 0, g->K, PQ, CRS, 1, w, CRS, 0, ws, PQ,
                                         (long long)CRS * PQ, 1, out + (size_t)n0 * kpq,
                                         PQ, (long long)kpq, cnt, err));
    }
    return NN_OK;
}

extern "C" nn_status nn_cuda_conv2d_backward(nn_cuda_ctx *ctx, nn_real *dinp,
                                             nn_real *dw, nn_real *dbias,
                                             const nn_real *dout, const nn_real *inp,
                                             const nn_real *w, const geom *g,
                                             nn_real *ws, size_t ws_elems, char *err)
{
    const int CRS = g->C * g->R * g->S, PQ = g->P * g->Q;
    const size_t chw = (size_t)g->C * g->H * g->W, kpq = (size_t)g->K * PQ;
    const size_t crspq = (size_t)CRS * PQ, kcrs = (size_t)g->K * CRS;
    /* Each image of a chunk needs its columns and its own (K,CRS) weight
     * gradient; a chunk of one adds straight into dw. */
    const int nb = images_per_chunk(g, crspq + kcrs, ws_elems);
    nn_real *part = ws + (size_t)nb * crspq;
    NN_CUDA_TRY(nn_cuda_bias_grad(ctx, dbias, dout, g->N, g->K, (size_t)PQ, err));
    for (int n0 = 0; n0 < g->N; n0 += nb) {
        const int cnt = g->N - n0 < nb ? g->N - n0 : nb;
        const nn_real *dy = dout + (size_t)n0 * kpq;
        NN_CUDA_TRY(im2col(ctx, ws, inp + (size_t)n0 * chw, g, cnt, err));
        /* dw (K,CRS) += sum over j of dy_j (K,PQ) @ col_j^T (PQ,CRS): one
         * strided batch of per-image products, then one kernel adds them in
         * image order. (A single GEMM over all images would need dout
         * transposed to (K, cnt*PQ) and leaves cuBLAS a K x CRS output,
         * too few tiles to fill the GPU without split-K.) */
        if (cnt == 1) {
            NN_CUDA_TRY(nn_cuda_gemm(ctx, 0, 1, g->K, CRS, PQ, 1, dy, PQ, ws, PQ, 1, dw, CRS,
                                     err));
        } else {
            NN_CUDA_TRY(nn_cuda_gemm_strided(ctx, 0, 1, g->K, CRS, PQ, 1, dy, PQ,
                                             (long long)kpq, ws, PQ, (long long)crspq, 0,
                                             part, CRS, (long long)kcrs, cnt, err));
            sum_images_kernel<<<grid_for(kcrs), NN_CUDA_BLOCK, 0, ctx->stream>>>(dw, part,
                                                                                 cnt, kcrs);
            NN_CUDA_CHECK_LAUNCH();
        }
        if (dinp) {
            /* dcol_j (CRS,PQ) = w^T (CRS,K) @ dy_j (K,PQ), reusing the
             * columns (same stream: the dw GEMMs have read them by then). */
            NN_CUDA_TRY(nn_cuda_gemm_strided(ctx, 1, 0, CRS, PQ, g->K, 1, w, CRS, 0, dy, PQ,
                                             (long long)kpq, 0, ws, PQ, (long long)crspq,
                                             cnt, err));
            NN_CUDA_TRY(col2im(ctx, dinp + (size_t)n0 * chw, ws, g, cnt, err));
        }
    }
    return NN_OK;
}
