/* linear.c: the affine layer (through the BLAS), ReLU, and the softmax
 * cross-entropy loss: the dense end of a convnet. */
#include <math.h>
#include <string.h>
#include "nn/blas.h"
#include "nn/layers.h"
#include "internal.h"

/* inp is read as (N, D); weight (D, M); sets *N, *D, *M. */
static nn_status linear_check(int *N, int *D, int *M, const nn_tensor *inp,
                              const nn_tensor *weight, char *err)
{
    if (!inp || !inp->data)
        return nn_fail(err, NN_ERR_ARG, "linear input is NULL");
    if (inp->device != NN_DEVICE_CPU)
        return nn_fail(err, NN_ERR_ARG, "linear input is not in host memory");
    if (inp->ndim < 2 || inp->size == 0)
        return nn_fail(err, NN_ERR_SHAPE, "linear input must have >= 2 dims (N, D...)");
    NN_TRY(nn_tensor_check(weight, "linear weight", 2, NULL, err));
    *N = inp->shape[0];
    *D = (int)(inp->size / (size_t)*N);
    *M = weight->shape[1];
    if (weight->shape[0] != *D)
        return nn_fail(err, NN_ERR_SHAPE, "linear weight has %d rows, input has %d features",
                       weight->shape[0], *D);
    return NN_OK;
}

nn_status nn_linear_check_fwd(int *N, int *D, int *M, const nn_tensor *out,
                              const nn_tensor *inp, const nn_tensor *weight,
                              const nn_tensor *bias, char *err)
{
    NN_TRY(linear_check(N, D, M, inp, weight, err));
    NN_TRY(nn_tensor_check(bias, "linear bias", 1, (int[]){ *M }, err));
    NN_TRY(nn_tensor_check(out, "linear output", 2, (int[]){ *N, *M }, err));
    return nn_blas_init(err);
}

nn_status nn_linear_check_bwd(int *N, int *D, int *M, const nn_tensor *dinp,
                              const nn_tensor *dweight, const nn_tensor *dbias,
                              const nn_tensor *dout, const nn_tensor *inp,
                              const nn_tensor *weight, char *err)
{
    NN_TRY(linear_check(N, D, M, inp, weight, err));
    NN_TRY(nn_tensor_check(dout, "linear dout", 2, (int[]){ *N, *M }, err));
    NN_TRY(nn_tensor_check(dweight, "linear dweight", 2, (int[]){ *D, *M }, err));
    NN_TRY(nn_tensor_check(dbias, "linear dbias", 1, (int[]){ *M }, err));
    if (dinp) {
        if (!dinp->data || dinp->device != NN_DEVICE_CPU)
            return nn_fail(err, NN_ERR_ARG, "linear dinp is NULL or not in host memory");
        if (dinp->size != inp->size)
            return nn_fail(err, NN_ERR_SHAPE, "linear dinp has %zu elements, input %zu",
                           dinp->size, inp->size);
    }
    return nn_blas_init(err);
}

void nn_linear_fwd_cols(nn_real *out, const nn_real *inp, const nn_real *weight,
                        const nn_real *bias, int N, int D, int M, int j0, int j1)
{
    if (j1 <= j0)
        return;
    for (int n = 0; n < N; n++)
        memcpy(out + (size_t)n * M + j0, bias + j0, sizeof(nn_real) * (size_t)(j1 - j0));
    nn_gemm(0, 0, N, j1 - j0, D, 1, inp, D, weight + j0, M, 1, out + j0, M);
}

void nn_linear_dw_cols(nn_real *dweight, nn_real *dbias, const nn_real *dout,
                       const nn_real *inp, int N, int D, int M, int j0, int j1)
{
    if (j1 <= j0)
        return;
    for (int n = 0; n < N; n++)
        for (int m = j0; m < j1; m++)
            dbias[m] += dout[(size_t)n * M + m];
    /* dweight[:, j0:j1) (D, j1-j0) += inp^T (D,N) @ dout[:, j0:j1) (N, j1-j0) */
    nn_gemm(1, 0, D, j1 - j0, N, 1, inp, D, dout + j0, M, 1, dweight + j0, M);
}

void nn_linear_dx_cols(nn_real *dinp, const nn_real *dout, const nn_real *weight,
                       int N, int D, int M, int d0, int d1)
{
    if (d1 <= d0)
        return;
    /* dinp[:, d0:d1) (N, d1-d0) += dout (N,M) @ weight[d0:d1, :]^T (M, d1-d0) */
    nn_gemm(0, 1, N, d1 - d0, M, 1, dout, M, weight + (size_t)d0 * M, M, 1, dinp + d0, D);
}

nn_status nn_linear_forward(nn_tensor *out, const nn_tensor *inp,
                            const nn_tensor *weight, const nn_tensor *bias,
                            char *err)
{
    int N = 0, D = 0, M = 0;
    NN_TRY(nn_linear_check_fwd(&N, &D, &M, out, inp, weight, bias, err));
    nn_linear_fwd_cols(out->data, inp->data, weight->data, bias->data, N, D, M, 0, M);
    return NN_OK;
}

nn_status nn_linear_backward(nn_tensor *dinp, nn_tensor *dweight,
                             nn_tensor *dbias, const nn_tensor *dout,
                             const nn_tensor *inp, const nn_tensor *weight,
                             char *err)
{
    int N = 0, D = 0, M = 0;
    NN_TRY(nn_linear_check_bwd(&N, &D, &M, dinp, dweight, dbias, dout, inp, weight, err));
    nn_linear_dw_cols(dweight->data, dbias->data, dout->data, inp->data, N, D, M, 0, M);
    if (dinp)
        nn_linear_dx_cols(dinp->data, dout->data, weight->data, N, D, M, 0, D);
    return NN_OK;
}

static nn_status same_size(const nn_tensor *a, const char *an, const nn_tensor *b,
                           const char *bn, char *err)
{
    if (!a || !a->data || a->device != NN_DEVICE_CPU)
        return nn_fail(err, NN_ERR_ARG, "%s is NULL or not in host memory", an);
    if (!b || !b->data || b->device != NN_DEVICE_CPU)
        return nn_fail(err, NN_ERR_ARG, "%s is NULL or not in host memory", bn);
    if (a->size != b->size || a->size == 0)
        return nn_fail(err, NN_ERR_SHAPE, "%s has %zu elements, %s %zu", an, a->size,
                       bn, b->size);
    return NN_OK;
}

NN_SIMD
static void relu_fwd(nn_real *restrict y, const nn_real *restrict x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] = x[i] > 0 ? x[i] : 0;
}

NN_SIMD
static void relu_bwd(nn_real *restrict dx, const nn_real *restrict dy,
                     const nn_real *restrict y, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dx[i] += y[i] > 0 ? dy[i] : 0;
}

nn_status nn_relu_forward(nn_tensor *out, const nn_tensor *inp, char *err)
{
    NN_TRY(same_size(out, "relu output", inp, "relu input", err));
    if (out->data == inp->data) { /* in place: restrict would lie */
        for (size_t i = 0; i < inp->size; i++)
            out->data[i] = out->data[i] > 0 ? out->data[i] : 0;
        return NN_OK;
    }
    relu_fwd(out->data, inp->data, inp->size);
    return NN_OK;
}

nn_status nn_relu_backward(nn_tensor *dinp, const nn_tensor *dout,
                           const nn_tensor *out, char *err)
{
    NN_TRY(same_size(dinp, "relu dinp", dout, "relu dout", err));
    NN_TRY(same_size(dinp, "relu dinp", out, "relu output", err));
    if (dinp->data == dout->data || dinp->data == out->data) {
        for (size_t i = 0; i < dinp->size; i++)
            dinp->data[i] += out->data[i] > 0 ? dout->data[i] : 0;
        return NN_OK;
    }
    relu_bwd(dinp->data, dout->data, out->data, dinp->size);
    return NN_OK;
}

/* Labels come either as ints or as nn_real-coded ints; exactly one of
 * ilab, rlab is non-NULL. */
static nn_status softmax_loss(double *loss, nn_tensor *dscores,
                              const nn_tensor *scores, const int *ilab,
                              const nn_real *rlab, char *err)
{
    if (!loss || (!ilab && !rlab))
        return nn_fail(err, NN_ERR_ARG, "softmax loss: loss or labels is NULL");
    NN_TRY(nn_tensor_check(scores, "softmax scores", 2, NULL, err));
    const int N = scores->shape[0], M = scores->shape[1];
    if (dscores)
        NN_TRY(nn_tensor_check(dscores, "softmax dscores", 2, (int[]){ N, M }, err));
    for (int n = 0; n < N; n++) {
        double l = ilab ? ilab[n] : rlab[n];
        if (!(l >= 0 && l < M) || l != (int)l)
            return nn_fail(err, NN_ERR_ARG, "label %g of sample %d is outside 0..%d",
                           l, n, M - 1);
    }
#define LABEL(n) (ilab ? ilab[n] : (int)rlab[n])
    double total = 0;
    for (int n = 0; n < N; n++) {
        const nn_real *s = scores->data + (size_t)n * M;
        /* Shift by the row maximum so exp() cannot overflow. */
        double mx = s[0], z = 0;
        for (int m = 1; m < M; m++)
            mx = s[m] > mx ? s[m] : mx;
        for (int m = 0; m < M; m++)
            z += exp(s[m] - mx);
        double logz = log(z);
        total += logz - (s[LABEL(n)] - mx);
        if (dscores) {
            nn_real *d = dscores->data + (size_t)n * M;
            for (int m = 0; m < M; m++)
                d[m] = (nn_real)(exp(s[m] - mx - logz) / N);
            d[LABEL(n)] -= (nn_real)(1.0 / N);
        }
    }
#undef LABEL
    *loss = total / N;
    return NN_OK;
}

nn_status nn_softmax_loss(double *loss, nn_tensor *dscores,
                          const nn_tensor *scores, const int *labels, char *err)
{
    return softmax_loss(loss, dscores, scores, labels, NULL, err);
}

nn_status nn_softmax_loss_real(double *loss, nn_tensor *dscores,
                               const nn_tensor *scores, const nn_tensor *labels,
                               char *err)
{
    if (!labels || !scores)
        return nn_fail(err, NN_ERR_ARG, "softmax loss: scores or labels is NULL");
    NN_TRY(nn_tensor_check(labels, "softmax labels", 1, (int[]){ scores->shape[0] }, err));
    return softmax_loss(loss, dscores, scores, NULL, labels->data, err);
}
