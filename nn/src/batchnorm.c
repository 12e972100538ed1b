/* batchnorm.c: batch normalisation, spatial (N,C,H,W) and 1-d (N,C), one
 * code path: both are read as (N, C, L) with L = H*W or 1. Statistics are
 * accumulated in double. */
#include <math.h>
#include "nn/layers.h"
#include "internal.h"

static nn_status bn_check(int *N, int *C, size_t *L, const nn_tensor *inp,
                          const nn_tensor *other, const char *othername, char *err)
{
    if (!inp || !inp->data)
        return nn_fail(err, NN_ERR_ARG, "batchnorm input is NULL");
    if (inp->device != NN_DEVICE_CPU)
        return nn_fail(err, NN_ERR_ARG, "batchnorm input is not in host memory");
    if (inp->ndim != 2 && inp->ndim != 4)
        return nn_fail(err, NN_ERR_SHAPE, "batchnorm input must be (N,C) or (N,C,H,W), has %d dims",
                       inp->ndim);
    if (inp->size == 0)
        return nn_fail(err, NN_ERR_SHAPE, "batchnorm input is empty");
    *N = inp->shape[0];
    *C = inp->shape[1];
    *L = inp->size / ((size_t)*N * (size_t)*C);
    if (other) {
        if (!other->data || other->device != NN_DEVICE_CPU)
            return nn_fail(err, NN_ERR_ARG, "%s is NULL or not in host memory", othername);
        if (!nn_tensor_same_shape(other, inp))
            return nn_fail(err, NN_ERR_SHAPE, "%s must have the input's shape", othername);
    }
    return NN_OK;
}

/* Row helpers over the L contiguous elements of one (image, channel):
 * partial sums in nn_real (a row is at most one image plane), the totals
 * over the batch in double. Each sum keeps LANES independent partial sums:
 * with one accumulator every add waits for the previous one (IEEE order
 * forbids the compiler to split it), with 16 the loop is one vector add
 * per 16 elements. */
#define LANES 16
#define LANE_SUM(L, term)                                                       \
    nn_real acc_[LANES] = { 0 }, s_ = 0;                                       \
    size_t l = 0;                                                              \
    for (; l + LANES <= (L); l += LANES)                                       \
        for (int j_ = 0; j_ < LANES; j_++) {                                   \
            size_t i = l + (size_t)j_;                                         \
            acc_[j_] += (term);                                                \
        }                                                                      \
    for (size_t i = l; i < (L); i++)                                           \
        s_ += (term);                                                          \
    for (int j_ = 0; j_ < LANES; j_++)                                         \
        s_ += acc_[j_];                                                        \
    return s_

NN_SIMD
nn_real nn_sum(const nn_real *restrict x, size_t L)
{
    LANE_SUM(L, x[i]);
}

NN_SIMD
static nn_real row_sqdev(const nn_real *restrict x, size_t L, nn_real mean)
{
    LANE_SUM(L, (x[i] - mean) * (x[i] - mean));
}

NN_SIMD
static void row_affine(nn_real *restrict y, const nn_real *restrict x, size_t L,
                       nn_real scale, nn_real shift)
{
    for (size_t l = 0; l < L; l++)
        y[l] = x[l] * scale + shift;
}

NN_SIMD
static nn_real row_dot_dev(const nn_real *restrict dy, const nn_real *restrict x,
                           size_t L, nn_real mean)
{
    LANE_SUM(L, dy[i] * (x[i] - mean));
}

/* dx += k * (M dy - sd - xhat sdx), xhat = (x - mean) invstd */
NN_SIMD
static void row_dx(nn_real *restrict dx, const nn_real *restrict dy,
                   const nn_real *restrict x, size_t L, nn_real k, nn_real M,
                   nn_real sd, nn_real mean, nn_real invstd_sdx)
{
    for (size_t l = 0; l < L; l++)
        dx[l] += k * (M * dy[l] - sd - (x[l] - mean) * invstd_sdx);
}

#define CHECK_VECP(t, name) NN_TRY(nn_tensor_check(t, name, 1, (int[]){ *C }, err))

nn_status nn_batchnorm_check_fwd(int *N, int *C, size_t *L, const nn_tensor *out,
                                 const nn_tensor *save_mean, const nn_tensor *save_invstd,
                                 const nn_tensor *running_mean,
                                 const nn_tensor *running_var, const nn_tensor *inp,
                                 const nn_tensor *gamma, const nn_tensor *beta,
                                 const nn_batchnorm_params *p, char *err)
{
    NN_TRY(bn_check(N, C, L, inp, out, "batchnorm output", err));
    if (!p)
        return nn_fail(err, NN_ERR_ARG, "batchnorm params are NULL");
    if (!(p->eps > 0))
        return nn_fail(err, NN_ERR_ARG, "batchnorm eps must be > 0, got %g", p->eps);
    if (!(p->momentum >= 0 && p->momentum <= 1))
        return nn_fail(err, NN_ERR_ARG, "batchnorm momentum must be in [0,1], got %g",
                       p->momentum);
    CHECK_VECP(gamma, "batchnorm gamma");
    CHECK_VECP(beta, "batchnorm beta");
    CHECK_VECP(running_mean, "batchnorm running_mean");
    CHECK_VECP(running_var, "batchnorm running_var");
    if (p->training) {
        CHECK_VECP(save_mean, "batchnorm save_mean");
        CHECK_VECP(save_invstd, "batchnorm save_invstd");
    }
    return NN_OK;
}

void nn_batchnorm_fwd_range(nn_tensor *out, nn_tensor *save_mean,
                            nn_tensor *save_invstd, nn_tensor *running_mean,
                            nn_tensor *running_var, const nn_tensor *inp,
                            const nn_tensor *gamma, const nn_tensor *beta,
                            const nn_batchnorm_params *p, int N, int C, size_t L,
                            int c0, int c1)
{
    const size_t cl = (size_t)C * L;
    for (int c = c0; c < c1; c++) {
        double mean, invstd;
        if (p->training) {
            double s = 0, ss = 0;
            for (int n = 0; n < N; n++)
                s += nn_sum(inp->data + n * cl + c * L, L);
            const double M = (double)N * (double)L;
            mean = s / M;
            for (int n = 0; n < N; n++)
                ss += row_sqdev(inp->data + n * cl + c * L, L, (nn_real)mean);
            double var = ss / M;
            invstd = 1.0 / sqrt(var + p->eps);
            save_mean->data[c] = (nn_real)mean;
            save_invstd->data[c] = (nn_real)invstd;
            running_mean->data[c] = (nn_real)(p->momentum * running_mean->data[c] +
                                              (1 - p->momentum) * mean);
            running_var->data[c] = (nn_real)(p->momentum * running_var->data[c] +
                                             (1 - p->momentum) * var);
        } else {
            mean = running_mean->data[c];
            invstd = 1.0 / sqrt(running_var->data[c] + p->eps);
        }
        const nn_real scale = (nn_real)(gamma->data[c] * invstd);
        const nn_real shift = (nn_real)(beta->data[c] - mean * gamma->data[c] * invstd);
        for (int n = 0; n < N; n++)
            row_affine(out->data + n * cl + c * L, inp->data + n * cl + c * L, L, scale,
                       shift);
    }
}

nn_status nn_batchnorm_forward(nn_tensor *out, nn_tensor *save_mean,
                               nn_tensor *save_invstd, nn_tensor *running_mean,
                               nn_tensor *running_var, const nn_tensor *inp,
                               const nn_tensor *gamma, const nn_tensor *beta,
                               const nn_batchnorm_params *p, char *err)
{
    int N = 0, C = 0;
    size_t L = 0;
    NN_TRY(nn_batchnorm_check_fwd(&N, &C, &L, out, save_mean, save_invstd, running_mean,
                                  running_var, inp, gamma, beta, p, err));
    nn_batchnorm_fwd_range(out, save_mean, save_invstd, running_mean, running_var, inp,
                           gamma, beta, p, N, C, L, 0, C);
    return NN_OK;
}

nn_status nn_batchnorm_check_bwd(int *N, int *C, size_t *L, const nn_tensor *dinp,
                                 const nn_tensor *dgamma, const nn_tensor *dbeta,
                                 const nn_tensor *dout, const nn_tensor *inp,
                                 const nn_tensor *gamma, const nn_tensor *save_mean,
                                 const nn_tensor *save_invstd, char *err)
{
    NN_TRY(bn_check(N, C, L, inp, dout, "batchnorm dout", err));
    if (dinp)
        NN_TRY(bn_check(N, C, L, inp, dinp, "batchnorm dinp", err));
    CHECK_VECP(dgamma, "batchnorm dgamma");
    CHECK_VECP(dbeta, "batchnorm dbeta");
    CHECK_VECP(gamma, "batchnorm gamma");
    CHECK_VECP(save_mean, "batchnorm save_mean");
    CHECK_VECP(save_invstd, "batchnorm save_invstd");
    return NN_OK;
}

void nn_batchnorm_bwd_range(nn_tensor *dinp, nn_tensor *dgamma, nn_tensor *dbeta,
                            const nn_tensor *dout, const nn_tensor *inp,
                            const nn_tensor *gamma, const nn_tensor *save_mean,
                            const nn_tensor *save_invstd, int N, int C, size_t L,
                            int c0, int c1)
{
    const size_t cl = (size_t)C * L;
    const double M = (double)N * (double)L;
    for (int c = c0; c < c1; c++) {
        const double mean = save_mean->data[c], invstd = save_invstd->data[c];
        double sd = 0, sdx = 0; /* sum dout, sum dout * xhat */
        for (int n = 0; n < N; n++) {
            const nn_real *x = inp->data + n * cl + c * L;
            const nn_real *dy = dout->data + n * cl + c * L;
            sd += nn_sum(dy, L);
            sdx += row_dot_dev(dy, x, L, (nn_real)mean);
        }
        sdx *= invstd;
        dbeta->data[c] += (nn_real)sd;
        dgamma->data[c] += (nn_real)sdx;
        if (!dinp)
            continue;
        /* dx = gamma * invstd / M * (M * dy - sum(dy) - xhat * sum(dy * xhat)) */
        const double k = gamma->data[c] * invstd / M;
        for (int n = 0; n < N; n++)
            row_dx(dinp->data + n * cl + c * L, dout->data + n * cl + c * L,
                   inp->data + n * cl + c * L, L, (nn_real)k, (nn_real)M, (nn_real)sd,
                   (nn_real)mean, (nn_real)(invstd * sdx));
    }
}

nn_status nn_batchnorm_backward(nn_tensor *dinp, nn_tensor *dgamma,
                                nn_tensor *dbeta, const nn_tensor *dout,
                                const nn_tensor *inp, const nn_tensor *gamma,
                                const nn_tensor *save_mean,
                                const nn_tensor *save_invstd, char *err)
{
    int N = 0, C = 0;
    size_t L = 0;
    NN_TRY(nn_batchnorm_check_bwd(&N, &C, &L, dinp, dgamma, dbeta, dout, inp, gamma,
                                  save_mean, save_invstd, err));
    nn_batchnorm_bwd_range(dinp, dgamma, dbeta, dout, inp, gamma, save_mean, save_invstd,
                           N, C, L, 0, C);
    return NN_OK;
}
