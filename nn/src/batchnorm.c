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

#define CHECK_VEC(t, name) NN_TRY(nn_tensor_check(t, name, 1, (int[]){ C }, err))

nn_status nn_batchnorm_forward(nn_tensor *out, nn_tensor *save_mean,
                               nn_tensor *save_invstd, nn_tensor *running_mean,
                               nn_tensor *running_var, const nn_tensor *inp,
                               const nn_tensor *gamma, const nn_tensor *beta,
                               const nn_batchnorm_params *p, char *err)
{
    int N, C;
    size_t L;
    NN_TRY(bn_check(&N, &C, &L, inp, out, "batchnorm output", err));
    if (!p)
        return nn_fail(err, NN_ERR_ARG, "batchnorm params are NULL");
    if (!(p->eps > 0))
        return nn_fail(err, NN_ERR_ARG, "batchnorm eps must be > 0, got %g", p->eps);
    if (!(p->momentum >= 0 && p->momentum <= 1))
        return nn_fail(err, NN_ERR_ARG, "batchnorm momentum must be in [0,1], got %g",
                       p->momentum);
    CHECK_VEC(gamma, "batchnorm gamma");
    CHECK_VEC(beta, "batchnorm beta");
    CHECK_VEC(running_mean, "batchnorm running_mean");
    CHECK_VEC(running_var, "batchnorm running_var");
    if (p->training) {
        CHECK_VEC(save_mean, "batchnorm save_mean");
        CHECK_VEC(save_invstd, "batchnorm save_invstd");
    }
    const size_t cl = (size_t)C * L;
    for (int c = 0; c < C; c++) {
        double mean, invstd;
        if (p->training) {
            double s = 0, ss = 0;
            for (int n = 0; n < N; n++) {
                const nn_real *x = inp->data + n * cl + c * L;
                for (size_t l = 0; l < L; l++)
                    s += x[l];
            }
            const double M = (double)N * (double)L;
            mean = s / M;
            for (int n = 0; n < N; n++) {
                const nn_real *x = inp->data + n * cl + c * L;
                for (size_t l = 0; l < L; l++)
                    ss += (x[l] - mean) * (x[l] - mean);
            }
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
        for (int n = 0; n < N; n++) {
            const nn_real *x = inp->data + n * cl + c * L;
            nn_real *y = out->data + n * cl + c * L;
            for (size_t l = 0; l < L; l++)
                y[l] = x[l] * scale + shift;
        }
    }
    return NN_OK;
}

nn_status nn_batchnorm_backward(nn_tensor *dinp, nn_tensor *dgamma,
                                nn_tensor *dbeta, const nn_tensor *dout,
                                const nn_tensor *inp, const nn_tensor *gamma,
                                const nn_tensor *save_mean,
                                const nn_tensor *save_invstd, char *err)
{
    int N, C;
    size_t L;
    NN_TRY(bn_check(&N, &C, &L, inp, dout, "batchnorm dout", err));
    if (dinp)
        NN_TRY(bn_check(&N, &C, &L, inp, dinp, "batchnorm dinp", err));
    CHECK_VEC(dgamma, "batchnorm dgamma");
    CHECK_VEC(dbeta, "batchnorm dbeta");
    CHECK_VEC(gamma, "batchnorm gamma");
    CHECK_VEC(save_mean, "batchnorm save_mean");
    CHECK_VEC(save_invstd, "batchnorm save_invstd");
    const size_t cl = (size_t)C * L;
    const double M = (double)N * (double)L;
    for (int c = 0; c < C; c++) {
        const double mean = save_mean->data[c], invstd = save_invstd->data[c];
        double sd = 0, sdx = 0; /* sum dout, sum dout * xhat */
        for (int n = 0; n < N; n++) {
            const nn_real *x = inp->data + n * cl + c * L;
            const nn_real *dy = dout->data + n * cl + c * L;
            for (size_t l = 0; l < L; l++) {
                sd += dy[l];
                sdx += dy[l] * (x[l] - mean) * invstd;
            }
        }
        dbeta->data[c] += (nn_real)sd;
        dgamma->data[c] += (nn_real)sdx;
        if (!dinp)
            continue;
        /* dx = gamma * invstd / M * (M * dy - sum(dy) - xhat * sum(dy * xhat)) */
        const double k = gamma->data[c] * invstd / M;
        for (int n = 0; n < N; n++) {
            const nn_real *x = inp->data + n * cl + c * L;
            const nn_real *dy = dout->data + n * cl + c * L;
            nn_real *dx = dinp->data + n * cl + c * L;
            for (size_t l = 0; l < L; l++) {
                double xhat = (x[l] - mean) * invstd;
                dx[l] += (nn_real)(k * (M * dy[l] - sd - xhat * sdx));
            }
        }
    }
    return NN_OK;
}
