/* sandwich.c: the report's convenience layers, conv-relu, conv-relu-pool
 * and linear-relu, composed from the fast kernels. They exist for the
 * report's gradient checks and for small programs; models compose layers
 * themselves. */
#include <string.h>
#include "nn/layers.h"
#include "internal.h"

static nn_status zero(nn_tensor *t, const char *what, char *err)
{
    if (!t || !t->data || t->device != NN_DEVICE_CPU)
        return nn_fail(err, NN_ERR_ARG, "%s is NULL or not in host memory", what);
    memset(t->data, 0, t->size * sizeof(nn_real));
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
    NN_TRY(zero(dact, "conv-relu scratch", err));
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
    NN_TRY(zero(dact, "conv-relu-pool scratch", err));
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
    NN_TRY(zero(dact, "linear-relu scratch", err));
    NN_TRY(nn_relu_backward(dact, dout, out, err));
    return nn_linear_backward(dinp, dweight, dbias, dact, inp, weight, err);
}
