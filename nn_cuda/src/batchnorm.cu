/* batchnorm.cu: batch normalisation, spatial (N,C,H,W) and 1-d (N,C), read
 * as (N,C,L) as on the CPU. One block per channel does everything for its
 * channel (statistics in double, two passes like the CPU, then the output),
 * so no scratch memory and no second launch. Shortcut: with few channels
 * most of the GPU idles; fine at this library's sizes. */
#include "reduce.cuh"

/* ---- kernels ---------------------------------------------------------- */

/* Element i of channel c's N*L values: n = i / L, l = i % L. */
static __device__ size_t bn_index(size_t i, int c, int C, size_t L)
{
    const size_t n = i / L;
    return (n * C + c) * L + (i - n * L);
}

__global__ void batchnorm_forward_kernel(nn_real *out, nn_real *save_mean,
                                         nn_real *save_invstd, nn_real *running_mean,
                                         nn_real *running_var, const nn_real *inp,
                                         const nn_real *gamma, const nn_real *beta,
                                         int N, int C, size_t L, double eps,
                                         double momentum, int training)
{
    const int c = blockIdx.x;
    const size_t nl = (size_t)N * L;
    double mean, invstd;
    if (training) {
        const double M = (double)N * (double)L;
        double s = 0;
        for (size_t i = threadIdx.x; i < nl; i += blockDim.x)
            s += inp[bn_index(i, c, C, L)];
        mean = block_sum(s) / M;
        double ss = 0;
        for (size_t i = threadIdx.x; i < nl; i += blockDim.x) {
            const double d = inp[bn_index(i, c, C, L)] - mean;
            ss += d * d;
        }
        const double var = block_sum(ss) / M;
        invstd = 1.0 / sqrt(var + eps);
        if (threadIdx.x == 0) {
            save_mean[c] = (nn_real)mean;
            save_invstd[c] = (nn_real)invstd;
            running_mean[c] = (nn_real)(momentum * running_mean[c] + (1 - momentum) * mean);
            running_var[c] = (nn_real)(momentum * running_var[c] + (1 - momentum) * var);
        }
    } else {
        mean = running_mean[c];
        invstd = 1.0 / sqrt(running_var[c] + eps);
    }
    const nn_real scale = (nn_real)(gamma[c] * invstd);
    const nn_real shift = (nn_real)(beta[c] - mean * gamma[c] * invstd);
    for (size_t i = threadIdx.x; i < nl; i += blockDim.x) {
        const size_t j = bn_index(i, c, C, L);
        out[j] = inp[j] * scale + shift;
    }
}

__global__ void batchnorm_backward_kernel(nn_real *dinp, nn_real *dgamma, nn_real *dbeta,
                                          const nn_real *dout, const nn_real *inp,
                                          const nn_real *gamma, const nn_real *save_mean,
                                          const nn_real *save_invstd, int N, int C,
                                          size_t L)
{
    const int c = blockIdx.x;
    const size_t nl = (size_t)N * L;
    const double M = (double)N * (double)L;
    const double mean = save_mean[c], invstd = save_invstd[c];
    double sd = 0, sdx = 0; /* sum dout, sum dout * xhat */
    for (size_t i = threadIdx.x; i < nl; i += blockDim.x) {
        const size_t j = bn_index(i, c, C, L);
        sd += dout[j];
        sdx += dout[j] * (inp[j] - mean) * invstd;
    }
    sd = block_sum(sd);
    sdx = block_sum(sdx);
    if (threadIdx.x == 0) {
        dbeta[c] += (nn_real)sd;
        dgamma[c] += (nn_real)sdx;
    }
    if (!dinp)
        return;
    /* dx = gamma * invstd / M * (M * dy - sum(dy) - xhat * sum(dy * xhat)) */
    const double k = gamma[c] * invstd / M;
    for (size_t i = threadIdx.x; i < nl; i += blockDim.x) {
        const size_t j = bn_index(i, c, C, L);
        const double xhat = (inp[j] - mean) * invstd;
        dinp[j] += (nn_real)(k * (M * dout[j] - sd - xhat * sdx));
    }
}

/* ---- launchers -------------------------------------------------------- */

extern "C" nn_status nn_cuda_batchnorm_forward(nn_cuda_ctx *ctx, nn_real *out,
                                               nn_real *save_mean, nn_real *save_invstd,
                                               nn_real *running_mean, nn_real *running_var,
                                               const nn_real *inp, const nn_real *gamma,
                                               const nn_real *beta, int N, int C, size_t L,
                                               double eps, double momentum, int training,
                                               char *err)
{
    batchnorm_forward_kernel<<<C, NN_CUDA_BLOCK, 0, ctx->stream>>>(
        out, save_mean, save_invstd, running_mean, running_var, inp, gamma, beta, N, C, L,
        eps, momentum, training);
    NN_CUDA_CHECK_LAUNCH();
    return NN_OK;
}

extern "C" nn_status nn_cuda_batchnorm_backward(nn_cuda_ctx *ctx, nn_real *dinp,
                                                nn_real *dgamma, nn_real *dbeta,
                                                const nn_real *dout, const nn_real *inp,
                                                const nn_real *gamma,
                                                const nn_real *save_mean,
                                                const nn_real *save_invstd, int N, int C,
                                                size_t L, char *err)
{
    batchnorm_backward_kernel<<<C, NN_CUDA_BLOCK, 0, ctx->stream>>>(
        dinp, dgamma, dbeta, dout, inp, gamma, save_mean, save_invstd, N, C, L);
    NN_CUDA_CHECK_LAUNCH();
    return NN_OK;
}
