/* backend_cpu.c: the CPU backend: host memory, the fast kernels of
 * layers.h, GEMM through the BLAS (blas.h). Copies are memmoves. */
#include <stdlib.h>
#include <string.h>
#include "nn/backend_impl.h"
#include "nn/blas.h"
#include "nn/optim.h"
#include "internal.h"

static nn_status cpu_alloc(void *ctx, nn_tensor *t, char *err)
{
    (void)ctx;
    size_t n = 1;
    for (int i = 0; i < t->ndim; i++) {
        if (t->shape[i] < 1)
            return nn_fail(err, NN_ERR_SHAPE, "cannot allocate a tensor with dim %d = %d",
                           i, t->shape[i]);
        n *= (size_t)t->shape[i];
    }
    size_t bytes = (n * sizeof(nn_real) + 63) & ~(size_t)63;
    nn_real *p = aligned_alloc(64, bytes);
    if (!p)
        return nn_fail(err, NN_ERR_NOMEM, "out of memory allocating %zu bytes", bytes);
    memset(p, 0, bytes);
    t->data = p;
    t->size = n;
    t->device = NN_DEVICE_CPU;
    return NN_OK;
}

static void cpu_release(void *ctx, nn_tensor *t)
{
    (void)ctx;
    free(t->data);
    t->data = NULL;
}

static nn_status cpu_copy(void *ctx, nn_tensor *dst, const nn_tensor *src, char *err)
{
    (void)ctx;
    (void)err;
    memmove(dst->data, src->data, src->size * sizeof(nn_real));
    return NN_OK;
}

static nn_status cpu_zero(void *ctx, nn_tensor *t, char *err)
{
    (void)ctx;
    (void)err;
    memset(t->data, 0, t->size * sizeof(nn_real));
    return NN_OK;
}

static void cpu_free_ctx(void *ctx) { (void)ctx; }

/* The kernels already have the op signature apart from the context. */
#define WRAP(name, kernel, params, args)                                        \
    static nn_status name params { (void)ctx; return kernel args; }

WRAP(cpu_conv2d_fwd, nn_conv2d_forward_gemm,
     (void *ctx, nn_tensor *out, const nn_tensor *inp, const nn_tensor *w,
      const nn_tensor *bias, const nn_conv2d_params *p, nn_tensor *ws, char *err),
     (out, inp, w, bias, p, ws, err))
WRAP(cpu_conv2d_bwd, nn_conv2d_backward_gemm,
     (void *ctx, nn_tensor *dinp, nn_tensor *dw, nn_tensor *db, const nn_tensor *dout,
      const nn_tensor *inp, const nn_tensor *w, const nn_conv2d_params *p,
      nn_tensor *ws, char *err),
     (dinp, dw, db, dout, inp, w, p, ws, err))
WRAP(cpu_maxpool_fwd, nn_maxpool_forward_fast,
     (void *ctx, nn_tensor *out, const nn_tensor *inp, const nn_pool_params *p, char *err),
     (out, inp, p, err))
WRAP(cpu_maxpool_bwd, nn_maxpool_backward_fast,
     (void *ctx, nn_tensor *dinp, const nn_tensor *dout, const nn_tensor *inp,
      const nn_pool_params *p, char *err),
     (dinp, dout, inp, p, err))
WRAP(cpu_relu_fwd, nn_relu_forward,
     (void *ctx, nn_tensor *out, const nn_tensor *inp, char *err), (out, inp, err))
WRAP(cpu_relu_bwd, nn_relu_backward,
     (void *ctx, nn_tensor *dinp, const nn_tensor *dout, const nn_tensor *out, char *err),
     (dinp, dout, out, err))
WRAP(cpu_linear_fwd, nn_linear_forward,
     (void *ctx, nn_tensor *out, const nn_tensor *inp, const nn_tensor *w,
      const nn_tensor *bias, char *err),
     (out, inp, w, bias, err))
WRAP(cpu_linear_bwd, nn_linear_backward,
     (void *ctx, nn_tensor *dinp, nn_tensor *dw, nn_tensor *db, const nn_tensor *dout,
      const nn_tensor *inp, const nn_tensor *w, char *err),
     (dinp, dw, db, dout, inp, w, err))
WRAP(cpu_softmax_loss, nn_softmax_loss_real,
     (void *ctx, double *loss, nn_tensor *dscores, const nn_tensor *scores,
      const nn_tensor *labels, char *err),
     (loss, dscores, scores, labels, err))
WRAP(cpu_batchnorm_fwd, nn_batchnorm_forward,
     (void *ctx, nn_tensor *out, nn_tensor *sm, nn_tensor *si, nn_tensor *rm,
      nn_tensor *rv, const nn_tensor *inp, const nn_tensor *gamma,
      const nn_tensor *beta, const nn_batchnorm_params *p, char *err),
     (out, sm, si, rm, rv, inp, gamma, beta, p, err))
WRAP(cpu_batchnorm_bwd, nn_batchnorm_backward,
     (void *ctx, nn_tensor *dinp, nn_tensor *dgamma, nn_tensor *dbeta,
      const nn_tensor *dout, const nn_tensor *inp, const nn_tensor *gamma,
      const nn_tensor *sm, const nn_tensor *si, char *err),
     (dinp, dgamma, dbeta, dout, inp, gamma, sm, si, err))
WRAP(cpu_dropout_fwd, nn_dropout_forward,
     (void *ctx, nn_tensor *out, nn_tensor *mask, const nn_tensor *inp, double p,
      uint64_t seed, char *err),
     (out, mask, inp, p, seed, err))
WRAP(cpu_dropout_bwd, nn_dropout_backward,
     (void *ctx, nn_tensor *dinp, const nn_tensor *dout, const nn_tensor *mask,
      char *err),
     (dinp, dout, mask, err))
WRAP(cpu_optim_step, nn_optim_step,
     (void *ctx, nn_tensor *param, nn_tensor *state, const nn_tensor *grad,
      const nn_optim_params *p, long t, char *err),
     (param, state, grad, p, t, err))
WRAP(cpu_l2_reg, nn_l2_reg,
     (void *ctx, double *sumsq, nn_tensor *grad, const nn_tensor *param,
      double reg, char *err),
     (sumsq, grad, param, reg, err))

static const nn_backend_ops cpu_ops = {
    .name = "cpu",
    .device = NN_DEVICE_CPU,
    .alloc = cpu_alloc,
    .release = cpu_release,
    .copy_to_device = cpu_copy,
    .copy_to_host = cpu_copy,
    .synchronize = NULL,
    .copy_on_device = cpu_copy,
    .zero = cpu_zero,
    .free_ctx = cpu_free_ctx,
    .conv2d_fwd = cpu_conv2d_fwd,
    .conv2d_bwd = cpu_conv2d_bwd,
    .maxpool_fwd = cpu_maxpool_fwd,
    .maxpool_bwd = cpu_maxpool_bwd,
    .relu_fwd = cpu_relu_fwd,
    .relu_bwd = cpu_relu_bwd,
    .linear_fwd = cpu_linear_fwd,
    .linear_bwd = cpu_linear_bwd,
    .softmax_loss = cpu_softmax_loss,
    .batchnorm_fwd = cpu_batchnorm_fwd,
    .batchnorm_bwd = cpu_batchnorm_bwd,
    .dropout_fwd = cpu_dropout_fwd,
    .dropout_bwd = cpu_dropout_bwd,
    .optim_step = cpu_optim_step,
    .l2_reg = cpu_l2_reg,
};

nn_status nn_cpu_backend_create(int threads, nn_backend **out, char *err)
{
    if (!out)
        return nn_fail(err, NN_ERR_ARG, "out is NULL");
    NN_TRY(nn_blas_init(err));
    nn_blas_set_threads(threads);
    return nn_backend_new(&cpu_ops, NULL, out);
}
