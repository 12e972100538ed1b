/* sandwich.c: the report's convenience layers, conv-relu, conv-relu-pool
 * and linear-relu, composed from the fast kernels. They exist for the
 * report's gradient checks and for small programs; models compose layers
 * themselves. */
#include <string.h>
#include "nn/layers.h"
#include "internal.h"

/* Checks that t is a host tensor shaped like `like` and zeroes it: the
 * scratch a sandwich's backward accumulates into. Runs before anything is
 * written, so a bad scratch tensor fails cleanly. */
static nn_status zero_like(nn_tensor *t, const nn_tensor *like, const char *what,
                           char *err)
{
    if (!like || !like->data)
        return nn_fail(err, NN_ERR_ARG, "activation for %s is NULL", what);
    NN_TRY(nn_tensor_check(t, what, like->ndim, like->shape, err));
    memset(t->data, 0, t->size * sizeof(nn_real));
    return NN_OK;
}

/* The conv output shape (N,K,P,Q) for inp and weight, or a message. */
static nn_status conv_shape(int *shape, const nn_tensor *inp, const nn_tensor *weight,
                            const nn_conv2d_params *p, char *err)
{
    NN_TRY(nn_tensor_check(inp, "conv2d input", 4, NULL, err));
    NN_TRY(nn_tensor_check(weight, "conv2d weight", 4, NULL, err));
    if (!p)
        return nn_fail(err, NN_ERR_ARG, "conv2d params are NULL");
    shape[0] = inp->shape[0];
    shape[1] = weight->shape[0];
    shape[2] = nn_conv2d_out_dim(inp->shape[2], weight->shape[2], p->stride, p->pad);
    shape[3] = nn_conv2d_out_dim(inp->shape[3], weight->shape[3], p->stride, p->pad);
    if (!shape[2] || !shape[3])
        return nn_fail(err, NN_ERR_ARG, "conv2d stride %d / pad %d / kernel %dx%d do not "
                       "fit the input", p->stride, p->pad, weight->shape[2], weight->shape[3]);
    return NN_OK;
}

/* d[i] = 0 where act[i] <= 0: ReLU's backward in place. */
static nn_status relu_mask(nn_tensor *d, const nn_tensor *act, char *err)
{
    if (d->size != act->size)
        return nn_fail(err, NN_ERR_SHAPE, "scratch has %zu elements, activation %zu",
                       d->size, act->size);
    for (size_t i = 0; i < d->size; i++)
        if (!(act->data[i] > 0))
            d->data[i] = 0;
    return NN_OK;
}

nn_status nn_conv_relu_forward(nn_tensor *out, const nn_tensor *inp,
                               const nn_tensor *weight, const nn_tensor *bias,
                               const nn_conv2d_params *p, nn_tensor *workspace,
                               char *err)
{
    NN_TRY(nn_conv2d_forward_gemm(out, inp, weight, bias, p, workspace, err));
    return nn_relu_forward(out, out, err);
}

nn_status nn_conv_relu_backward(nn_tensor *dinp, nn_tensor *dweight,
                                nn_tensor *dbias, const nn_tensor *dout,
                                const nn_tensor *inp, const nn_tensor *weight,
                                const nn_tensor *out, const nn_conv2d_params *p,
                                nn_tensor *dact, nn_tensor *workspace, char *err)
{
    NN_TRY(zero_like(dact, out, "conv-relu dact", err));
    NN_TRY(nn_relu_backward(dact, dout, out, err));
    return nn_conv2d_backward_gemm(dinp, dweight, dbias, dact, inp, weight, p,
                                   workspace, err);
}

nn_status nn_conv_relu_pool_forward(nn_tensor *out, nn_tensor *act,
                                    const nn_tensor *inp, const nn_tensor *weight,
                                    const nn_tensor *bias,
                                    const nn_conv2d_params *cp,
                                    const nn_pool_params *pp,
                                    nn_tensor *workspace, char *err)
{
    int shape[4];
    NN_TRY(conv_shape(shape, inp, weight, cp, err));
    NN_TRY(nn_tensor_check(act, "conv-relu-pool act", 4, shape, err));
    if (!pp)
        return nn_fail(err, NN_ERR_ARG, "maxpool params are NULL");
    if (pp->pool_h < 1 || pp->pool_w < 1 || pp->stride < 1 || pp->pool_h > shape[2] ||
        pp->pool_w > shape[3])
        return nn_fail(err, NN_ERR_ARG, "maxpool window %dx%d stride %d does not fit the "
                       "%dx%d activation", pp->pool_h, pp->pool_w, pp->stride, shape[2],
                       shape[3]);
    const int pooled[4] = { shape[0], shape[1], 1 + (shape[2] - pp->pool_h) / pp->stride,
                            1 + (shape[3] - pp->pool_w) / pp->stride };
    NN_TRY(nn_tensor_check(out, "conv-relu-pool output", 4, pooled, err));
    NN_TRY(nn_conv_relu_forward(act, inp, weight, bias, cp, workspace, err));
    return nn_maxpool_forward_fast(out, act, pp, err);
}

nn_status nn_conv_relu_pool_backward(nn_tensor *dinp, nn_tensor *dweight,
                                     nn_tensor *dbias, const nn_tensor *dout,
                                     const nn_tensor *inp, const nn_tensor *weight,
                                     const nn_tensor *act,
                                     const nn_conv2d_params *cp,
                                     const nn_pool_params *pp, nn_tensor *dact,
                                     nn_tensor *workspace, char *err)
{
    NN_TRY(zero_like(dact, act, "conv-relu-pool dact", err));
    NN_TRY(nn_maxpool_backward_fast(dact, dout, act, pp, err));
    NN_TRY(relu_mask(dact, act, err));
    return nn_conv2d_backward_gemm(dinp, dweight, dbias, dact, inp, weight, cp,
                                   workspace, err);
}

nn_status nn_linear_relu_forward(nn_tensor *out, const nn_tensor *inp,
                                 const nn_tensor *weight, const nn_tensor *bias,
                                 char *err)
{
    NN_TRY(nn_linear_forward(out, inp, weight, bias, err));
    return nn_relu_forward(out, out, err);
}

nn_status nn_linear_relu_backward(nn_tensor *dinp, nn_tensor *dweight,
                                  nn_tensor *dbias, const nn_tensor *dout,
                                  const nn_tensor *inp, const nn_tensor *weight,
                                  const nn_tensor *out, nn_tensor *dact,
                                  char *err)
{
    NN_TRY(zero_like(dact, out, "linear-relu dact", err));
    NN_TRY(nn_relu_backward(dact, dout, out, err));
    return nn_linear_backward(dinp, dweight, dbias, dact, inp, weight, err);
}
