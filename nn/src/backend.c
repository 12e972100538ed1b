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
    DISPATCH(b, copy_to_host, dst, src);
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
                                  const nn_tensor *scores, const int *labels)
{
    DISPATCH(b, softmax_loss, loss, dscores, scores, labels);
}
