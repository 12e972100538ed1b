/* backend.c: the nn_backend object and the dispatchers that route each
 * operation through its backend's table. Backend-neutral: knows no device. */
#include <stdlib.h>
#include <string.h>
#include "nn/backend_impl.h"
#include "internal.h"

struct nn_backend {
    const nn_backend_ops *ops;
    void *ctx;
    char err[NN_ERRLEN];
};

nn_status nn_backend_new(const nn_backend_ops *ops, void *ctx, nn_backend **out)
{
    if (!ops || !out)
        return NN_ERR_ARG;
    nn_backend *b = calloc(1, sizeof *b);
    if (!b)
        return NN_ERR_NOMEM;
    b->ops = ops;
    b->ctx = ctx;
    *out = b;
    return NN_OK;
}

void nn_backend_free(nn_backend *b)
{
    if (!b)
        return;
    if (b->ops->free_ctx)
        b->ops->free_ctx(b->ctx);
    free(b);
}

const char *nn_backend_name(const nn_backend *b) { return b->ops->name; }
nn_device nn_backend_device(const nn_backend *b) { return b->ops->device; }
const char *nn_backend_errmsg(const nn_backend *b) { return b->err; }

int nn_backend_supports(const nn_backend *b, nn_op op)
{
    const nn_backend_ops *o = b->ops;
    switch (op) {
    case NN_OP_CONV2D_FWD: return o->conv2d_fwd != NULL;
    case NN_OP_CONV2D_BWD: return o->conv2d_bwd != NULL;
    case NN_OP_MAXPOOL_FWD: return o->maxpool_fwd != NULL;
    case NN_OP_MAXPOOL_BWD: return o->maxpool_bwd != NULL;
    case NN_OP_RELU_FWD: return o->relu_fwd != NULL;
    case NN_OP_RELU_BWD: return o->relu_bwd != NULL;
    case NN_OP_LINEAR_FWD: return o->linear_fwd != NULL;
    case NN_OP_LINEAR_BWD: return o->linear_bwd != NULL;
    case NN_OP_SOFTMAX_LOSS: return o->softmax_loss != NULL;
    case NN_OP_BATCHNORM_FWD: return o->batchnorm_fwd != NULL;
    case NN_OP_BATCHNORM_BWD: return o->batchnorm_bwd != NULL;
    case NN_OP_DROPOUT_FWD: return o->dropout_fwd != NULL;
    case NN_OP_DROPOUT_BWD: return o->dropout_bwd != NULL;
    case NN_OP_OPTIM_STEP: return o->optim_step != NULL;
    case NN_OP_L2_REG: return o->l2_reg != NULL;
    case NN_OP_GATHER: return o->gather != NULL;
    case NN_OP_COUNT: break;
    }
    return 0;
}

/* Calls b's op, or fails with NN_ERR_UNSUPPORTED naming it. Clears the
 * message first so nn_backend_errmsg() always speaks of the last call. */
#define DISPATCH(b, op, ...)                                                   \
    do {                                                                       \
        if (!(b))                                                              \
            return NN_ERR_ARG;                                                 \
        (b)->err[0] = 0;                                                       \
        if (!(b)->ops->op)                                                     \
            return nn_fail((b)->err, NN_ERR_UNSUPPORTED,                       \
                           "backend %s does not implement " #op,               \
                           (b)->ops->name);                                    \
        return (b)->ops->op((b)->ctx, __VA_ARGS__, (b)->err);                  \
    } while (0)

nn_status nn_backend_alloc(nn_backend *b, nn_tensor *t) { DISPATCH(b, alloc, t); }

void nn_backend_release(nn_backend *b, nn_tensor *t)
{
    if (b && t && t->data)
        b->ops->release(b->ctx, t);
}

nn_status nn_tensor_copy(nn_backend *b, nn_tensor *dst, const nn_tensor *src)
{
    if (!b || !dst || !src || !dst->data || !src->data)
        return NN_ERR_ARG;
    if (dst->size != src->size)
        return nn_fail(b->err, NN_ERR_SHAPE, "copy of %zu elements into %zu",
                       src->size, dst->size);
    if (dst->device == NN_DEVICE_CPU && src->device == NN_DEVICE_CPU) {
        memmove(dst->data, src->data, src->size * sizeof(nn_real));
        return NN_OK;
    }
    if (src->device == NN_DEVICE_CPU)
        DISPATCH(b, copy_to_device, dst, src);
    if (dst->device == NN_DEVICE_CPU)
        DISPATCH(b, copy_to_host, dst, src);
    DISPATCH(b, copy_on_device, dst, src);
}

nn_status nn_backend_synchronize(nn_backend *b)
{
    if (!b)
        return NN_ERR_ARG;
    b->err[0] = 0;
    return b->ops->synchronize ? b->ops->synchronize(b->ctx, b->err) : NN_OK;
}

nn_status nn_backend_conv2d_forward(nn_backend *b, nn_tensor *out,
                                    const nn_tensor *inp, const nn_tensor *weight,
                                    const nn_tensor *bias,
                                    const nn_conv2d_params *p, nn_tensor *workspace)
{
    DISPATCH(b, conv2d_fwd, out, inp, weight, bias, p, workspace);
}

nn_status nn_backend_conv2d_backward(nn_backend *b, nn_tensor *dinp,
                                     nn_tensor *dweight, nn_tensor *dbias,
                                     const nn_tensor *dout, const nn_tensor *inp,
                                     const nn_tensor *weight,
                                     const nn_conv2d_params *p, nn_tensor *workspace)
{
    DISPATCH(b, conv2d_bwd, dinp, dweight, dbias, dout, inp, weight, p, workspace);
}

nn_status nn_backend_maxpool_forward(nn_backend *b, nn_tensor *out,
                                     const nn_tensor *inp, const nn_pool_params *p)
{
    DISPATCH(b, maxpool_fwd, out, inp, p);
}

nn_status nn_backend_maxpool_backward(nn_backend *b, nn_tensor *dinp,
                                      const nn_tensor *dout, const nn_tensor *inp,
                                      const nn_pool_params *p)
{
    DISPATCH(b, maxpool_bwd, dinp, dout, inp, p);
}

nn_status nn_backend_relu_forward(nn_backend *b, nn_tensor *out, const nn_tensor *inp)
{
    DISPATCH(b, relu_fwd, out, inp);
}

nn_status nn_backend_relu_backward(nn_backend *b, nn_tensor *dinp,
                                   const nn_tensor *dout, const nn_tensor *out)
{
    DISPATCH(b, relu_bwd, dinp, dout, out);
}

nn_status nn_backend_linear_forward(nn_backend *b, nn_tensor *out,
                                    const nn_tensor *inp, const nn_tensor *weight,
                                    const nn_tensor *bias)
{
    DISPATCH(b, linear_fwd, out, inp, weight, bias);
}

nn_status nn_backend_linear_backward(nn_backend *b, nn_tensor *dinp,
                                     nn_tensor *dweight, nn_tensor *dbias,
                                     const nn_tensor *dout, const nn_tensor *inp,
                                     const nn_tensor *weight)
{
    DISPATCH(b, linear_bwd, dinp, dweight, dbias, dout, inp, weight);
}

nn_status nn_backend_softmax_loss(nn_backend *b, double *loss, nn_tensor *dscores,
                                  const nn_tensor *scores, const nn_tensor *labels)
{
    DISPATCH(b, softmax_loss, loss, dscores, scores, labels);
}

nn_status nn_backend_batchnorm_forward(nn_backend *b, nn_tensor *out,
                                       nn_tensor *save_mean, nn_tensor *save_invstd,
                                       nn_tensor *running_mean, nn_tensor *running_var,
                                       const nn_tensor *inp, const nn_tensor *gamma,
                                       const nn_tensor *beta,
                                       const nn_batchnorm_params *p)
{
    DISPATCH(b, batchnorm_fwd, out, save_mean, save_invstd, running_mean,
             running_var, inp, gamma, beta, p);
}

nn_status nn_backend_batchnorm_backward(nn_backend *b, nn_tensor *dinp,
                                        nn_tensor *dgamma, nn_tensor *dbeta,
                                        const nn_tensor *dout, const nn_tensor *inp,
                                        const nn_tensor *gamma,
                                        const nn_tensor *save_mean,
                                        const nn_tensor *save_invstd)
{
    DISPATCH(b, batchnorm_bwd, dinp, dgamma, dbeta, dout, inp, gamma, save_mean,
             save_invstd);
}

nn_status nn_backend_dropout_forward(nn_backend *b, nn_tensor *out, nn_tensor *mask,
                                     const nn_tensor *inp, double p, uint64_t seed)
{
    DISPATCH(b, dropout_fwd, out, mask, inp, p, seed);
}

nn_status nn_backend_dropout_backward(nn_backend *b, nn_tensor *dinp,
                                      const nn_tensor *dout, const nn_tensor *mask)
{
    DISPATCH(b, dropout_bwd, dinp, dout, mask);
}

nn_status nn_backend_optim_step(nn_backend *b, nn_tensor *param, nn_tensor *state,
                                const nn_tensor *grad, const nn_optim_params *p,
                                long t)
{
    DISPATCH(b, optim_step, param, state, grad, p, t);
}

nn_status nn_backend_l2_reg(nn_backend *b, double *sumsq, nn_tensor *grad,
                            const nn_tensor *param, double reg)
{
    DISPATCH(b, l2_reg, sumsq, grad, param, reg);
}

nn_status nn_backend_gather(nn_backend *b, nn_tensor *x, nn_tensor *y,
                            const nn_tensor *images, const nn_tensor *labels,
                            const nn_tensor *plan)
{
    DISPATCH(b, gather, x, y, images, labels, plan);
}

nn_status nn_backend_zero(nn_backend *b, nn_tensor *t) { DISPATCH(b, zero, t); }
