/* pool.c: max pooling, forward and backward, as the report's loops (_ref)
 * and as a fast path (_fast) that walks rows with pointers and has a
 * branch-free special case for the ubiquitous 2x2 window at stride 2.
 * Ties go to the first maximum in row-major window order, in both. */
#include "nn/backend_impl.h"
#include "internal.h"

typedef nn_pool_geom geom;

nn_status nn_maxpool_geometry(nn_pool_geom *g, const nn_tensor *out,
                              const nn_tensor *inp, const nn_pool_params *p,
                              nn_device dev, const char *outname, char *err)
{
    if (!p)
        return nn_fail(err, NN_ERR_ARG, "maxpool params are NULL");
    if (p->pool_h < 1 || p->pool_w < 1)
        return nn_fail(err, NN_ERR_ARG, "maxpool window must be >= 1x1, got %dx%d",
                       p->pool_h, p->pool_w);
    if (p->stride < 1)
        return nn_fail(err, NN_ERR_ARG, "maxpool stride must be >= 1, got %d", p->stride);
    NN_TRY(nn_tensor_check_on(inp, dev, "maxpool input", 4, NULL, err));
    g->N = inp->shape[0];
    g->C = inp->shape[1];
    g->H = inp->shape[2];
    g->W = inp->shape[3];
    g->PH = p->pool_h;
    g->PW = p->pool_w;
    g->stride = p->stride;
    if (g->PH > g->H || g->PW > g->W)
        return nn_fail(err, NN_ERR_SHAPE, "maxpool window %dx%d is larger than the input %dx%d",
                       g->PH, g->PW, g->H, g->W);
    g->P = 1 + (g->H - g->PH) / g->stride;
    g->Q = 1 + (g->W - g->PW) / g->stride;
    return nn_tensor_check_on(out, dev, outname, 4, (int[]){ g->N, g->C, g->P, g->Q }, err);
}

static nn_status pool_check(geom *g, const nn_tensor *out, const nn_tensor *inp,
                            const nn_pool_params *p, const char *outname, char *err)
{
    return nn_maxpool_geometry(g, out, inp, p, NN_DEVICE_CPU, outname, err);
}

/* Index within one (H,W) plane of the first maximum of window (oh, ow). */
static size_t window_argmax(const nn_real *x, const geom *g, int oh, int ow)
{
    size_t best = (size_t)(oh * g->stride) * g->W + (size_t)(ow * g->stride);
    for (int r = 0; r < g->PH; r++)
        for (int s = 0; s < g->PW; s++) {
            size_t i = (size_t)(oh * g->stride + r) * g->W + (size_t)(ow * g->stride + s);
            if (x[i] > x[best])
                best = i;
        }
    return best;
}

/* ---- reference -------------------------------------------------------- */

nn_status nn_maxpool_forward_ref(nn_tensor *out, const nn_tensor *inp,
                                 const nn_pool_params *p, char *err)
{
    geom g;
    NN_TRY(pool_check(&g, out, inp, p, "maxpool output", err));
    for (int n = 0; n < g.N; n++)
        for (int c = 0; c < g.C; c++) {
            const nn_real *x = inp->data + ((size_t)n * g.C + c) * g.H * g.W;
            nn_real *y = out->data + ((size_t)n * g.C + c) * g.P * g.Q;
            for (int oh = 0; oh < g.P; oh++)
                for (int ow = 0; ow < g.Q; ow++)
                    y[oh * g.Q + ow] = x[window_argmax(x, &g, oh, ow)];
        }
    return NN_OK;
}

nn_status nn_maxpool_backward_ref(nn_tensor *dinp, const nn_tensor *dout,
                                  const nn_tensor *inp, const nn_pool_params *p,
                                  char *err)
{
    geom g;
    NN_TRY(pool_check(&g, dout, inp, p, "maxpool dout", err));
    NN_TRY(nn_tensor_check(dinp, "maxpool dinp", 4,
                           (int[]){ g.N, g.C, g.H, g.W }, err));
    for (int n = 0; n < g.N; n++)
        for (int c = 0; c < g.C; c++) {
            size_t plane = (size_t)n * g.C + c;
            const nn_real *x = inp->data + plane * g.H * g.W;
            const nn_real *dy = dout->data + plane * g.P * g.Q;
            nn_real *dx = dinp->data + plane * g.H * g.W;
            for (int oh = 0; oh < g.P; oh++)
                for (int ow = 0; ow < g.Q; ow++)
                    dx[window_argmax(x, &g, oh, ow)] += dy[oh * g.Q + ow];
        }
    return NN_OK;
}

/* ---- fast ------------------------------------------------------------- */

/* One output row of 2x2/2 pooling's backward: the window of output q is
 * a0[2q], a0[2q+1] (top row), a1[2q], a1[2q+1]. The gradient goes to the
 * first element equal to the window's maximum, in that order: the same
 * element the reference's strict > scan picks. Branch-free, so it
 * vectorises; every element gets += (possibly 0). Compiled twice: rows of
 * 7-14 windows ran 5x slower in the AVX-512 clone (2x in AVX2) than in
 * baseline SSE2 (1.28 and 0.54 against 0.26 ms for 32 images of
 * 32x28x28), while 16-window rows gain from the wide vectors (the layer
 * table's pool, 40x3x32x32: 17.5 against 25.8 us). */
static inline __attribute__((always_inline)) void
pool2_bwd_body(nn_real *restrict d0, nn_real *restrict d1, const nn_real *restrict a0,
               const nn_real *restrict a1, const nn_real *restrict dy, int Q)
{
    for (int q = 0; q < Q; q++) {
        nn_real a = a0[2 * q], b = a0[2 * q + 1], c = a1[2 * q], d = a1[2 * q + 1];
        nn_real m1 = b > a ? b : a, m2 = d > c ? d : c, m = m2 > m1 ? m2 : m1;
        int ia = a == m, ib = !ia && b == m, ic = !ia && !ib && c == m;
        int id = !ia && !ib && !ic;
        nn_real g = dy[q];
        d0[2 * q] += ia ? g : 0;
        d0[2 * q + 1] += ib ? g : 0;
        d1[2 * q] += ic ? g : 0;
        d1[2 * q + 1] += id ? g : 0;
    }
}

static void pool2_bwd_narrow(nn_real *restrict d0, nn_real *restrict d1,
                             const nn_real *restrict a0, const nn_real *restrict a1,
                             const nn_real *restrict dy, int Q)
{
    pool2_bwd_body(d0, d1, a0, a1, dy, Q);
}

NN_SIMD
static void pool2_bwd_wide(nn_real *restrict d0, nn_real *restrict d1,
                           const nn_real *restrict a0, const nn_real *restrict a1,
                           const nn_real *restrict dy, int Q)
{
    pool2_bwd_body(d0, d1, a0, a1, dy, Q);
}

nn_status nn_maxpool_forward_fast(nn_tensor *out, const nn_tensor *inp,
                                  const nn_pool_params *p, char *err)
{
    geom g;
    NN_TRY(pool_check(&g, out, inp, p, "maxpool output", err));
    const size_t planes = (size_t)g.N * g.C;
    if (g.PH == 2 && g.PW == 2 && g.stride == 2) {
        for (size_t pl = 0; pl < planes; pl++) {
            const nn_real *x = inp->data + pl * g.H * g.W;
            nn_real *y = out->data + pl * g.P * g.Q;
            for (int oh = 0; oh < g.P; oh++) {
                const nn_real *r0 = x + (size_t)(2 * oh) * g.W, *r1 = r0 + g.W;
                nn_real *yo = y + (size_t)oh * g.Q;
                for (int ow = 0; ow < g.Q; ow++) {
                    nn_real a = r0[2 * ow] > r0[2 * ow + 1] ? r0[2 * ow] : r0[2 * ow + 1];
                    nn_real b = r1[2 * ow] > r1[2 * ow + 1] ? r1[2 * ow] : r1[2 * ow + 1];
                    yo[ow] = a > b ? a : b;
                }
            }
        }
        return NN_OK;
    }
    for (size_t pl = 0; pl < planes; pl++) {
        const nn_real *x = inp->data + pl * g.H * g.W;
        nn_real *y = out->data + pl * g.P * g.Q;
        for (int oh = 0; oh < g.P; oh++) {
            nn_real *yo = y + (size_t)oh * g.Q;
            /* Row by row over the window: the first row initialises. */
            const nn_real *row = x + (size_t)(oh * g.stride) * g.W;
            for (int ow = 0; ow < g.Q; ow++) {
                const nn_real *w0 = row + ow * g.stride;
                nn_real m = w0[0];
                for (int s = 1; s < g.PW; s++)
                    m = w0[s] > m ? w0[s] : m;
                yo[ow] = m;
            }
            for (int r = 1; r < g.PH; r++) {
                row += g.W;
                for (int ow = 0; ow < g.Q; ow++) {
                    const nn_real *w0 = row + ow * g.stride;
                    nn_real m = yo[ow];
                    for (int s = 0; s < g.PW; s++)
                        m = w0[s] > m ? w0[s] : m;
                    yo[ow] = m;
                }
            }
        }
    }
    return NN_OK;
}

nn_status nn_maxpool_backward_fast(nn_tensor *dinp, const nn_tensor *dout,
                                   const nn_tensor *inp, const nn_pool_params *p,
                                   char *err)
{
    geom g;
    NN_TRY(pool_check(&g, dout, inp, p, "maxpool dout", err));
    NN_TRY(nn_tensor_check(dinp, "maxpool dinp", 4,
                           (int[]){ g.N, g.C, g.H, g.W }, err));
    const size_t planes = (size_t)g.N * g.C;
    if (g.PH == 2 && g.PW == 2 && g.stride == 2) {
        for (size_t pl = 0; pl < planes; pl++) {
            const nn_real *x = inp->data + pl * g.H * g.W;
            const nn_real *dy = dout->data + pl * g.P * g.Q;
            nn_real *dx = dinp->data + pl * g.H * g.W;
            for (int oh = 0; oh < g.P; oh++) {
                size_t top = (size_t)(2 * oh) * g.W;
                (g.Q >= 16 ? pool2_bwd_wide : pool2_bwd_narrow)(
                    dx + top, dx + top + g.W, x + top, x + top + g.W, dy + (size_t)oh * g.Q, g.Q);
            }
        }
        return NN_OK;
    }
    for (size_t pl = 0; pl < planes; pl++) {
        const nn_real *x = inp->data + pl * g.H * g.W;
        const nn_real *dy = dout->data + pl * g.P * g.Q;
        nn_real *dx = dinp->data + pl * g.H * g.W;
        for (int oh = 0; oh < g.P; oh++)
            for (int ow = 0; ow < g.Q; ow++)
                dx[window_argmax(x, &g, oh, ow)] += dy[(size_t)oh * g.Q + ow];
    }
    return NN_OK;
}
