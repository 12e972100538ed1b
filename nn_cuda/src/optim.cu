/* optim.cu: the update rules and L2 regularisation, each one fused pass over
 * memory, with the CPU's arithmetic: nn_real in the loop, the constants (and
 * Adam's bias corrections, folded into step and vscale) computed on the host
 * exactly as optim.c computes them. */
#include <math.h>
#include "reduce.cuh"

/* ---- kernels ---------------------------------------------------------- */

/* nn_sqrt of optim.c: IEEE sqrtf for float (nvcc's default -prec-sqrt). */
#ifdef NN_DOUBLE
#define real_sqrt sqrt
#else
#define real_sqrt sqrtf
#endif

typedef struct optim_consts {
    nn_real lr, mu;           /* sgd, momentum */
    nn_real decay, eps;       /* rmsprop, adam */
    nn_real b1, b2, step, vscale; /* adam */
} optim_consts;

/* state: rule's slots of n back to back (velocity | cache | m, v). */
__global__ void optim_step_kernel(nn_real *w, nn_real *state, const nn_real *g,
                                  size_t n, int rule, optim_consts k)
{
    GRID_STRIDE_LOOP(i, n) {
        const nn_real gi = g[i];
        switch (rule) {
        case NN_SGD:
            w[i] -= k.lr * gi;
            break;
        case NN_SGD_MOMENTUM: {
            const nn_real v = k.mu * state[i] - k.lr * gi;
            state[i] = v;
            w[i] += v;
            break;
        }
        case NN_RMSPROP: {
            const nn_real c = k.decay * state[i] + (1 - k.decay) * gi * gi;
            state[i] = c;
            w[i] -= k.lr * gi / (real_sqrt(c) + k.eps);
            break;
        }
        case NN_ADAM: {
            const nn_real m = k.b1 * state[i] + (1 - k.b1) * gi;
            const nn_real v = k.b2 * state[n + i] + (1 - k.b2) * gi * gi;
            state[i] = m;
            state[n + i] = v;
            w[i] -= k.step * m / (real_sqrt(v) * k.vscale + k.eps);
            break;
        }
        }
    }
}

/* grad += two_reg * param; part[blockIdx.x] = this block's sum of param^2. */
__global__ void l2_reg_kernel(double *part, nn_real *grad, const nn_real *param,
                              size_t n, nn_real two_reg)
{
    double s = 0;
    GRID_STRIDE_LOOP(i, n) {
        const nn_real p = param[i];
        s += (double)p * p;
        grad[i] += two_reg * p;
    }
    s = block_sum(s);
    if (threadIdx.x == 0)
        part[blockIdx.x] = s;
}

/* One thread folds the partials in order: deterministic. */
__global__ void sum_parts_kernel(double *result, const double *part, int nparts)
{
    if (threadIdx.x != 0 || blockIdx.x != 0)
        return;
    double s = 0;
    for (int b = 0; b < nparts; b++)
        s += part[b];
    *result = s;
}

/* ---- launchers -------------------------------------------------------- */

extern "C" nn_status nn_cuda_optim_step(nn_cuda_ctx *ctx, nn_real *param, nn_real *state,
                                        const nn_real *grad, size_t n,
                                        const nn_optim_params *p, long t, char *err)
{
    optim_consts k;
    k.lr = (nn_real)p->learning_rate;
    k.mu = (nn_real)p->momentum;
    k.decay = (nn_real)p->decay_rate;
    k.eps = (nn_real)p->epsilon;
    k.b1 = (nn_real)p->beta1;
    k.b2 = (nn_real)p->beta2;
    k.step = 0;
    k.vscale = 0;
    if (p->rule == NN_ADAM) {
        /* optim.c: step = lr/(1-b1^t), vscale = 1/sqrt(1-b2^t), in double. */
        k.step = (nn_real)(p->learning_rate / (1 - pow(p->beta1, (double)t)));
        k.vscale = (nn_real)(1 / sqrt(1 - pow(p->beta2, (double)t)));
    }
    optim_step_kernel<<<grid_for(n), NN_CUDA_BLOCK, 0, ctx->stream>>>(param, state, grad, n,
                                                                      (int)p->rule, k);
    NN_CUDA_CHECK_LAUNCH();
    return NN_OK;
}

extern "C" nn_status nn_cuda_l2_reg(nn_cuda_ctx *ctx, double *sumsq, nn_real *grad,
                                    const nn_real *param, size_t n, double reg, char *err)
{
    const unsigned g = grid_for(n);
    const int blocks = g < NN_CUDA_RED_PARTS ? (int)g : NN_CUDA_RED_PARTS;
    double *result;
    NN_CUDA_TRY(nn_cuda_defer(ctx, &result, sumsq, 0, err));
    l2_reg_kernel<<<blocks, NN_CUDA_BLOCK, 0, ctx->stream>>>(ctx->red, grad, param, n,
                                                             (nn_real)(2 * reg));
    NN_CUDA_CHECK_LAUNCH();
    sum_parts_kernel<<<1, 32, 0, ctx->stream>>>(result, ctx->red, blocks);
    NN_CUDA_CHECK_LAUNCH();
    return NN_OK;
}
