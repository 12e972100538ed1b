/* conv2d.c: 2-d convolution, forward and backward, two ways.
 *
 * _ref is the report's algorithm as explicit loops over N, K, P, Q: the
 * reference every fast path is tested against and the left column of the
 * layer table. _gemm lowers each image to a matrix (im2col) and does one
 * GEMM through the BLAS; backward uses the same workspace for the column
 * matrix of dweight and then for the input gradient (col2im). */
#include <string.h>
#include "nn/blas.h"
#include "nn/backend_impl.h"
#include "internal.h"

typedef nn_conv2d_geom geom;

int nn_conv2d_out_dim(int in, int kernel, int stride, int pad)
{
    if (in < 1 || kernel < 1 || stride < 1 || pad < 0 || kernel > in + 2 * pad)
        return 0;
    return 1 + (in + 2 * pad - kernel) / stride;
}

nn_status nn_conv2d_geometry(nn_conv2d_geom *g, const nn_tensor *out,
                             const nn_tensor *inp, const nn_tensor *weight,
                             const nn_conv2d_params *p, nn_device dev,
                             const char *outname, char *err)
{
    if (!p)
        return nn_fail(err, NN_ERR_ARG, "conv2d params are NULL");
    if (p->stride < 1)
        return nn_fail(err, NN_ERR_ARG, "conv2d stride must be >= 1, got %d", p->stride);
    if (p->pad < 0)
        return nn_fail(err, NN_ERR_ARG, "conv2d pad must be >= 0, got %d", p->pad);
    NN_TRY(nn_tensor_check_on(inp, dev, "conv2d input", 4, NULL, err));
    NN_TRY(nn_tensor_check_on(weight, dev, "conv2d weight", 4, NULL, err));
    g->N = inp->shape[0];
    g->C = inp->shape[1];
    g->H = inp->shape[2];
    g->W = inp->shape[3];
    g->K = weight->shape[0];
    g->R = weight->shape[2];
    g->S = weight->shape[3];
    g->stride = p->stride;
    g->pad = p->pad;
    if (weight->shape[1] != g->C)
        return nn_fail(err, NN_ERR_SHAPE,
                       "conv2d weight has %d input channels, input has %d",
                       weight->shape[1], g->C);
    if (g->R > g->H + 2 * g->pad || g->S > g->W + 2 * g->pad)
        return nn_fail(err, NN_ERR_SHAPE,
                       "conv2d kernel %dx%d is larger than the padded input %dx%d",
                       g->R, g->S, g->H + 2 * g->pad, g->W + 2 * g->pad);
    g->P = nn_conv2d_out_dim(g->H, g->R, g->stride, g->pad);
    g->Q = nn_conv2d_out_dim(g->W, g->S, g->stride, g->pad);
    return nn_tensor_check_on(out, dev, outname, 4, (int[]){ g->N, g->K, g->P, g->Q }, err);
}

static nn_status conv_check(geom *g, const nn_tensor *out, const nn_tensor *inp,
                            const nn_tensor *weight, const nn_conv2d_params *p,
                            const char *outname, char *err)
{
    return nn_conv2d_geometry(g, out, inp, weight, p, NN_DEVICE_CPU, outname, err);
}

static nn_status conv_check_grads(const geom *g, const nn_tensor *dinp,
                                  const nn_tensor *dweight, const nn_tensor *dbias,
                                  char *err)
{
    if (dinp)
        NN_TRY(nn_tensor_check(dinp, "conv2d dinp", 4,
                               (int[]){ g->N, g->C, g->H, g->W }, err));
    NN_TRY(nn_tensor_check(dweight, "conv2d dweight", 4,
                           (int[]){ g->K, g->C, g->R, g->S }, err));
    return dbias ? nn_tensor_check(dbias, "conv2d dbias", 1, (int[]){ g->K }, err) : NN_OK;
}

size_t nn_conv2d_workspace_size(const nn_tensor *inp, const nn_tensor *weight,
                                const nn_conv2d_params *p)
{
    if (!inp || !weight || !p || inp->ndim != 4 || weight->ndim != 4)
        return 0;
    int P = nn_conv2d_out_dim(inp->shape[2], weight->shape[2], p->stride, p->pad);
    int Q = nn_conv2d_out_dim(inp->shape[3], weight->shape[3], p->stride, p->pad);
    return (size_t)weight->shape[1] * weight->shape[2] * weight->shape[3] * P * Q;
}

static nn_status check_workspace(const geom *g, const nn_tensor *ws, char *err)
{
    size_t need = (size_t)g->C * g->R * g->S * g->P * g->Q;
    if (!ws || !ws->data || ws->device != NN_DEVICE_CPU)
        return nn_fail(err, NN_ERR_ARG, "conv2d workspace is NULL or not in host memory");
    if (ws->size < need)
        return nn_fail(err, NN_ERR_SHAPE, "conv2d workspace has %zu elements, needs %zu",
                       ws->size, need);
    return NN_OK;
}

/* ---- reference: the report's loops ------------------------------------ */

nn_status nn_conv2d_forward_ref(nn_tensor *out, const nn_tensor *inp,
                                const nn_tensor *weight, const nn_tensor *bias,
                                const nn_conv2d_params *p, nn_tensor *workspace,
                                char *err)
{
    (void)workspace;
    geom g;
    NN_TRY(conv_check(&g, out, inp, weight, p, "conv2d output", err));
    if (bias)
        NN_TRY(nn_tensor_check(bias, "conv2d bias", 1, (int[]){ g.K }, err));
    const nn_real *x = inp->data, *w = weight->data, *b = bias ? bias->data : NULL;
    nn_real *y = out->data;
    for (int n = 0; n < g.N; n++)
        for (int k = 0; k < g.K; k++)
            for (int oh = 0; oh < g.P; oh++)
                for (int ow = 0; ow < g.Q; ow++) {
                    nn_real sum = b ? b[k] : 0;
                    for (int c = 0; c < g.C; c++)
                        for (int r = 0; r < g.R; r++) {
                            int ih = oh * g.stride - g.pad + r;
                            if (ih < 0 || ih >= g.H)
                                continue; /* zero padding */
                            for (int s = 0; s < g.S; s++) {
                                int iw = ow * g.stride - g.pad + s;
                                if (iw < 0 || iw >= g.W)
                                    continue;
                                sum += x[((size_t)(n * g.C + c) * g.H + ih) * g.W + iw] *
                                       w[((size_t)(k * g.C + c) * g.R + r) * g.S + s];
                            }
                        }
                    y[((size_t)(n * g.K + k) * g.P + oh) * g.Q + ow] = sum;
                }
    return NN_OK;
}

nn_status nn_conv2d_backward_ref(nn_tensor *dinp, nn_tensor *dweight,
                                 nn_tensor *dbias, const nn_tensor *dout,
                                 const nn_tensor *inp, const nn_tensor *weight,
                                 const nn_conv2d_params *p, nn_tensor *workspace,
                                 char *err)
{
    (void)workspace;
    geom g;
    NN_TRY(conv_check(&g, dout, inp, weight, p, "conv2d dout", err));
    NN_TRY(conv_check_grads(&g, dinp, dweight, dbias, err));
    const nn_real *x = inp->data, *w = weight->data, *dy = dout->data;
    nn_real *dx = dinp ? dinp->data : NULL, *dw = dweight->data;
    nn_real *db = dbias ? dbias->data : NULL;
    for (int n = 0; n < g.N; n++)
        for (int k = 0; k < g.K; k++)
            for (int oh = 0; oh < g.P; oh++)
                for (int ow = 0; ow < g.Q; ow++) {
                    nn_real d = dy[((size_t)(n * g.K + k) * g.P + oh) * g.Q + ow];
                    if (db)
                        db[k] += d;
                    for (int c = 0; c < g.C; c++)
                        for (int r = 0; r < g.R; r++) {
                            int ih = oh * g.stride - g.pad + r;
                            if (ih < 0 || ih >= g.H)
                                continue;
                            for (int s = 0; s < g.S; s++) {
                                int iw = ow * g.stride - g.pad + s;
                                if (iw < 0 || iw >= g.W)
                                    continue;
                                size_t xi = ((size_t)(n * g.C + c) * g.H + ih) * g.W + iw;
                                size_t wi = ((size_t)(k * g.C + c) * g.R + r) * g.S + s;
                                dw[wi] += x[xi] * d;
                                if (dx)
                                    dx[xi] += w[wi] * d;
                            }
                        }
                }
    return NN_OK;
}

/* ---- fast: im2col + GEMM ---------------------------------------------- */

/* The output columns q of one kernel column s that read inside the image:
 * iw = q*stride - pad + s in [0, W) for q in [*lo, *hi). */
static void valid_cols(int *lo, int *hi, const geom *g, int s)
{
    int first = g->pad - s; /* smallest q*stride reaching iw >= 0 */
    *lo = first <= 0 ? 0 : (first + g->stride - 1) / g->stride;
    int last = g->W - 1 + g->pad - s; /* largest q*stride with iw < W */
    *hi = last < 0 ? 0 : last / g->stride + 1;
    if (*hi > g->Q)
        *hi = g->Q;
    if (*lo > *hi)
        *lo = *hi;
}

/* For stride 1 with Q == W (a "same"-width convolution, the common 3x3
 * pad 1 case) output position o = oh*Q + q of kernel tap (r, s) reads input
 * position o + shift, shift = (r - pad)*W + (s - pad), in one flat range:
 * the valid rows [*o0, *o1) become one contiguous copy (or add), and only
 * the invalid columns (q outside valid_cols) need fixing up. The range is
 * clamped to the plane; what the clamp cuts off is invalid columns too. */
static int flat_rows(const geom *g, int r, int s, long *o0, long *o1, long *shift)
{
    if (g->stride != 1 || g->Q != g->W)
        return 0;
    int lo = g->pad - r, hi = g->H + g->pad - r; /* valid oh: ih = oh - pad + r */
    if (lo < 0)
        lo = 0;
    if (hi > g->P)
        hi = g->P;
    if (lo >= hi) {
        *o0 = *o1 = 0;
        *shift = 0;
        return 1;
    }
    *shift = (long)(r - g->pad) * g->W + (s - g->pad);
    *o0 = (long)lo * g->Q;
    *o1 = (long)hi * g->Q;
    if (*o0 + *shift < 0)
        *o0 = -*shift;
    if (*o1 + *shift > (long)g->H * g->W)
        *o1 = (long)g->H * g->W - *shift;
    return 1;
}

/* Zeroes row's invalid columns (q outside [lo, hi)) in output rows
 * [oh0, oh1). */
static void zero_cols(nn_real *row, const geom *g, int oh0, int oh1, int lo, int hi)
{
    for (int oh = oh0; oh < oh1; oh++) {
        nn_real *d = row + (size_t)oh * g->Q;
        for (int q = 0; q < lo; q++)
            d[q] = 0;
        for (int q = hi; q < g->Q; q++)
            d[q] = 0;
    }
}

/* col (C*R*S, P*Q) from one image x (C,H,W). */
static void im2col(nn_real *col, const nn_real *x, const geom *g)
{
    const size_t PQ = (size_t)g->P * g->Q;
    for (int c = 0; c < g->C; c++)
        for (int r = 0; r < g->R; r++)
            for (int s = 0; s < g->S; s++) {
                nn_real *row = col + (size_t)((c * g->R + r) * g->S + s) * PQ;
                const nn_real *plane = x + (size_t)c * g->H * g->W;
                int lo, hi;
                valid_cols(&lo, &hi, g, s);
                long o0, o1, shift;
                if (flat_rows(g, r, s, &o0, &o1, &shift)) {
                    memset(row, 0, sizeof(nn_real) * (size_t)o0);
                    if (o1 > o0)
                        memcpy(row + o0, plane + o0 + shift, sizeof(nn_real) * (size_t)(o1 - o0));
                    memset(row + o1, 0, sizeof(nn_real) * (PQ - (size_t)o1));
                    int oh0 = (int)(o0 / g->Q), oh1 = (int)((o1 + g->Q - 1) / g->Q);
                    zero_cols(row, g, oh0, oh1, lo, hi);
                    continue;
                }
                for (int oh = 0; oh < g->P; oh++) {
                    nn_real *dst = row + (size_t)oh * g->Q;
                    int ih = oh * g->stride - g->pad + r;
                    if (ih < 0 || ih >= g->H) {
                        memset(dst, 0, sizeof(nn_real) * (size_t)g->Q);
                        continue;
                    }
                    /* x[c, ih, q*stride - pad + s]; indices, not a shifted
                     * pointer, since pad - s may point before the array. */
                    const nn_real *src = plane + (size_t)ih * g->W;
                    const int off = s - g->pad;
                    for (int q = 0; q < lo; q++)
                        dst[q] = 0;
                    if (g->stride == 1)
                        memcpy(dst + lo, src + lo + off, sizeof(nn_real) * (size_t)(hi - lo));
                    else
                        for (int q = lo; q < hi; q++)
                            dst[q] = src[q * g->stride + off];
                    for (int q = hi; q < g->Q; q++)
                        dst[q] = 0;
                }
            }
}

/* d[i] += s[i] for i < n: the loop col2im spends its time in. */
NN_SIMD
static void add_to(nn_real *restrict d, const nn_real *restrict s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        d[i] += s[i];
}

/* dx (C,H,W) += the columns of col (C*R*S, P*Q) folded back: im2col's
 * transpose. col is scratch: its invalid columns are zeroed on the way. */
static void col2im(nn_real *dx, nn_real *col, const geom *g)
{
    const size_t PQ = (size_t)g->P * g->Q;
    for (int c = 0; c < g->C; c++)
        for (int r = 0; r < g->R; r++)
            for (int s = 0; s < g->S; s++) {
                nn_real *row = col + (size_t)((c * g->R + r) * g->S + s) * PQ;
                nn_real *plane = dx + (size_t)c * g->H * g->W;
                int lo, hi;
                valid_cols(&lo, &hi, g, s);
                long o0, o1, shift;
                if (flat_rows(g, r, s, &o0, &o1, &shift)) {
                    if (o1 > o0) {
                        int oh0 = (int)(o0 / g->Q), oh1 = (int)((o1 + g->Q - 1) / g->Q);
                        zero_cols(row, g, oh0, oh1, lo, hi);
                        add_to(plane + o0 + shift, row + o0, (size_t)(o1 - o0));
                    }
                    continue;
                }
                for (int oh = 0; oh < g->P; oh++) {
                    int ih = oh * g->stride - g->pad + r;
                    if (ih < 0 || ih >= g->H)
                        continue;
                    const nn_real *src = row + (size_t)oh * g->Q;
                    nn_real *dst = plane + (size_t)ih * g->W;
                    const int off = s - g->pad;
                    if (g->stride == 1 && hi > lo)
                        add_to(dst + lo + off, src + lo, (size_t)(hi - lo));
                    else
                        for (int q = lo; q < hi; q++)
                            dst[q * g->stride + off] += src[q];
                }
            }
}

nn_status nn_conv2d_forward_gemm(nn_tensor *out, const nn_tensor *inp,
                                 const nn_tensor *weight, const nn_tensor *bias,
                                 const nn_conv2d_params *p, nn_tensor *workspace,
                                 char *err)
{
    geom g;
    NN_TRY(conv_check(&g, out, inp, weight, p, "conv2d output", err));
    if (bias)
        NN_TRY(nn_tensor_check(bias, "conv2d bias", 1, (int[]){ g.K }, err));
    NN_TRY(check_workspace(&g, workspace, err));
    NN_TRY(nn_blas_init(err));
    const int CRS = g.C * g.R * g.S, PQ = g.P * g.Q;
    for (int n = 0; n < g.N; n++) {
        const nn_real *x = inp->data + (size_t)n * g.C * g.H * g.W;
        nn_real *y = out->data + (size_t)n * g.K * PQ;
        /* Bias first, then GEMM with beta = 1 adds the convolution. */
        for (int k = 0; k < g.K; k++)
            for (int i = 0; i < PQ; i++)
                y[(size_t)k * PQ + i] = bias ? bias->data[k] : 0;
        im2col(workspace->data, x, &g);
        nn_gemm(0, 0, g.K, PQ, CRS, 1, weight->data, CRS, workspace->data, PQ,
                1, y, PQ);
    }
    return NN_OK;
}

nn_status nn_conv2d_backward_gemm(nn_tensor *dinp, nn_tensor *dweight,
                                  nn_tensor *dbias, const nn_tensor *dout,
                                  const nn_tensor *inp, const nn_tensor *weight,
                                  const nn_conv2d_params *p, nn_tensor *workspace,
                                  char *err)
{
    geom g;
    NN_TRY(conv_check(&g, dout, inp, weight, p, "conv2d dout", err));
    NN_TRY(conv_check_grads(&g, dinp, dweight, dbias, err));
    NN_TRY(check_workspace(&g, workspace, err));
    NN_TRY(nn_blas_init(err));
    const int CRS = g.C * g.R * g.S, PQ = g.P * g.Q;
    nn_real *col = workspace->data;
    for (int n = 0; n < g.N; n++) {
        const nn_real *x = inp->data + (size_t)n * g.C * g.H * g.W;
        const nn_real *dy = dout->data + (size_t)n * g.K * PQ;
        for (int k = 0; dbias && k < g.K; k++)
            dbias->data[k] += nn_sum(dy + (size_t)k * PQ, (size_t)PQ);
        /* dweight (K,CRS) += dy (K,PQ) @ col^T (PQ,CRS) */
        im2col(col, x, &g);
        nn_gemm(0, 1, g.K, CRS, PQ, 1, dy, PQ, col, PQ, 1, dweight->data, CRS);
        if (dinp) {
            /* dcol (CRS,PQ) = weight^T (CRS,K) @ dy (K,PQ), reusing col. */
            nn_gemm(1, 0, CRS, PQ, g.K, 1, weight->data, CRS, dy, PQ, 0, col, PQ);
            col2im(dinp->data + (size_t)n * g.C * g.H * g.W, col, &g);
        }
    }
    return NN_OK;
}
