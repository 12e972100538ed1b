/* activations.cu: the elementwise ops (ReLU, inverted dropout) and the bias
 * broadcast and bias gradient that the conv and linear layers share.
 *
 * Dropout draws its mask from the same stateless hash as the CPU
 * (rng.h's nn_hash_uniform), ported below bit for bit, so both backends keep
 * the same elements for the same seed. */
#include "reduce.cuh"

/* ---- kernels ---------------------------------------------------------- */

__global__ void relu_forward_kernel(nn_real *out, const nn_real *inp, size_t n)
{
    GRID_STRIDE_LOOP(i, n) {
        const nn_real x = inp[i];
        out[i] = x > 0 ? x : 0;
    }
}

__global__ void relu_backward_kernel(nn_real *dinp, const nn_real *dout,
                                     const nn_real *out, size_t n)
{
    GRID_STRIDE_LOOP(i, n) {
        dinp[i] += out[i] > 0 ? dout[i] : 0;
    }
}

/* nn_hash_uniform (rng.h) on the device: keep the two in step. */
static __device__ double hash_uniform(uint64_t seed, uint64_t counter)
{
    uint64_t z = seed + 0x9e3779b97f4a7c15ULL * (counter + 1);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

__global__ void dropout_forward_kernel(nn_real *out, nn_real *mask, const nn_real *inp,
                                       size_t n, double p, nn_real keep, uint64_t seed)
{
    GRID_STRIDE_LOOP(i, n) {
        const nn_real m = hash_uniform(seed, i) >= p ? keep : (nn_real)0;
        mask[i] = m;
        out[i] = inp[i] * m; /* out may alias inp: read before write */
    }
}

__global__ void dropout_backward_kernel(nn_real *dinp, const nn_real *dout,
                                        const nn_real *mask, size_t n)
{
    GRID_STRIDE_LOOP(i, n) {
        dinp[i] += dout[i] * mask[i];
    }
}

/* y (N,K,L) = bias[k]. */
__global__ void bias_fill_kernel(nn_real *y, const nn_real *bias, int K, size_t L,
                                 size_t total)
{
    GRID_STRIDE_LOOP(i, total) {
        y[i] = bias[(i / L) % (size_t)K];
    }
}

/* One block per k: dbias[k] += sum of dy (N,K,L) over n and l, summed in
 * double in a fixed order. */
__global__ void bias_grad_kernel(nn_real *dbias, const nn_real *dy, int N, int K,
                                 size_t L)
{
    const int k = blockIdx.x;
    const size_t nl = (size_t)N * L;
    double s = 0;
    for (size_t i = threadIdx.x; i < nl; i += blockDim.x) {
        const size_t n = i / L, l = i - n * L;
        s += dy[(n * K + k) * L + l];
    }
    s = block_sum(s);
    if (threadIdx.x == 0)
        dbias[k] += (nn_real)s;
}

/* ---- launchers -------------------------------------------------------- */

extern "C" nn_status nn_cuda_relu_forward(nn_cuda_ctx *ctx, nn_real *out,
                                          const nn_real *inp, size_t n, char *err)
{
    relu_forward_kernel<<<grid_for(n), NN_CUDA_BLOCK, 0, ctx->stream>>>(out, inp, n);
    NN_CUDA_CHECK_LAUNCH();
    return NN_OK;
}

extern "C" nn_status nn_cuda_relu_backward(nn_cuda_ctx *ctx, nn_real *dinp,
                                           const nn_real *dout, const nn_real *out,
                                           size_t n, char *err)
{
    relu_backward_kernel<<<grid_for(n), NN_CUDA_BLOCK, 0, ctx->stream>>>(dinp, dout,
                                                                         out, n);
    NN_CUDA_CHECK_LAUNCH();
    return NN_OK;
}

extern "C" nn_status nn_cuda_dropout_forward(nn_cuda_ctx *ctx, nn_real *out,
                                             nn_real *mask, const nn_real *inp,
                                             size_t n, double p, nn_real keep,
                                             uint64_t seed, char *err)
{
    dropout_forward_kernel<<<grid_for(n), NN_CUDA_BLOCK, 0, ctx->stream>>>(
        out, mask, inp, n, p, keep, seed);
    NN_CUDA_CHECK_LAUNCH();
    return NN_OK;
}

extern "C" nn_status nn_cuda_dropout_backward(nn_cuda_ctx *ctx, nn_real *dinp,
                                              const nn_real *dout, const nn_real *mask,
                                              size_t n, char *err)
{
    dropout_backward_kernel<<<grid_for(n), NN_CUDA_BLOCK, 0, ctx->stream>>>(dinp, dout,
                                                                            mask, n);
    NN_CUDA_CHECK_LAUNCH();
    return NN_OK;
}

extern "C" nn_status nn_cuda_bias_fill(nn_cuda_ctx *ctx, nn_real *y, const nn_real *bias,
                                       int N, int K, size_t L, char *err)
{
    const size_t total = (size_t)N * K * L;
    bias_fill_kernel<<<grid_for(total), NN_CUDA_BLOCK, 0, ctx->stream>>>(y, bias, K, L,
                                                                         total);
    NN_CUDA_CHECK_LAUNCH();
    return NN_OK;
}

extern "C" nn_status nn_cuda_bias_grad(nn_cuda_ctx *ctx, nn_real *dbias,
                                       const nn_real *dy, int N, int K, size_t L,
                                       char *err)
{
    bias_grad_kernel<<<K, NN_CUDA_BLOCK, 0, ctx->stream>>>(dbias, dy, N, K, L);
    NN_CUDA_CHECK_LAUNCH();
    return NN_OK;
}
