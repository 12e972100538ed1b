/* tensor.c: tensor views, owned host tensors, and argument checks. */
#include <stdlib.h>
#include <string.h>
#include "nn/tensor.h"
#include "internal.h"

static nn_tensor view(nn_real *data, int ndim, const int *shape)
{
    nn_tensor t;
    memset(&t, 0, sizeof t);
    t.data = data;
    t.ndim = ndim;
    t.size = 1;
    for (int i = 0; i < ndim; i++) {
        t.shape[i] = shape[i];
        t.size = shape[i] > 0 ? t.size * (size_t)shape[i] : 0;
    }
    t.device = NN_DEVICE_CPU;
    return t;
}

nn_tensor nn_tensor_1d(nn_real *data, int d0)
{
    return view(data, 1, (int[]){ d0 });
}

nn_tensor nn_tensor_2d(nn_real *data, int d0, int d1)
{
    return view(data, 2, (int[]){ d0, d1 });
}

nn_tensor nn_tensor_4d(nn_real *data, int d0, int d1, int d2, int d3)
{
    return view(data, 4, (int[]){ d0, d1, d2, d3 });
}

nn_tensor *nn_tensor_create(int ndim, const int *shape)
{
    if (ndim < 1 || ndim > NN_MAX_DIMS || !shape)
        return NULL;
    size_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 1 || n > ((size_t)1 << 40) / (size_t)shape[i])
            return NULL;
        n *= (size_t)shape[i];
    }
    /* One block: the header, padded to 64 bytes, then the data. */
    size_t head = (sizeof(nn_tensor) + 63) & ~(size_t)63;
    nn_tensor *t = aligned_alloc(64, head + ((n * sizeof(nn_real) + 63) & ~(size_t)63));
    if (!t)
        return NULL;
    *t = view((nn_real *)((char *)t + head), ndim, shape);
    memset(t->data, 0, n * sizeof(nn_real));
    return t;
}

void nn_tensor_free(nn_tensor *t)
{
    free(t);
}

int nn_tensor_same_shape(const nn_tensor *a, const nn_tensor *b)
{
    if (a->ndim != b->ndim)
        return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i])
            return 0;
    return 1;
}

nn_status nn_tensor_check(const nn_tensor *t, const char *what, int ndim,
                          const int *want, char *err)
{
    return nn_tensor_check_on(t, NN_DEVICE_CPU, what, ndim, want, err);
}

nn_status nn_tensor_check_on(const nn_tensor *t, nn_device dev, const char *what,
                             int ndim, const int *want, char *err)
{
    if (!t || !t->data)
        return nn_fail(err, NN_ERR_ARG, "%s is NULL", what);
    if (t->device != dev)
        return nn_fail(err, NN_ERR_ARG, "%s is not in %s memory", what,
                       dev == NN_DEVICE_CPU ? "host" : "CUDA device");
    if (t->ndim != ndim)
        return nn_fail(err, NN_ERR_SHAPE, "%s must have %d dims, has %d",
                       what, ndim, t->ndim);
    for (int i = 0; i < ndim; i++) {
        if (t->shape[i] < 1)
            return nn_fail(err, NN_ERR_SHAPE, "%s dim %d is %d, must be >= 1",
                           what, i, t->shape[i]);
        if (want && want[i] > 0 && t->shape[i] != want[i])
            return nn_fail(err, NN_ERR_SHAPE, "%s dim %d is %d, expected %d",
                           what, i, t->shape[i], want[i]);
    }
    return NN_OK;
}
