/* tensor.h: nn_real, and tensors as small non-owning views of memory.
 *
 * A tensor is a pointer, a shape of up to 4 dims (row-major, the last dim
 * contiguous) and the device its memory lives on. Tensors are passed by
 * pointer; the views returned by nn_tensor_4d() and friends are plain values
 * that own nothing. Only nn_tensor_create() owns memory (host memory). */
#ifndef NN_TENSOR_H
#define NN_TENSOR_H

#include <stddef.h>
#include "nn/status.h"

/* The library is compiled twice from one source: `nn` with float for
 * training and serving, `nn_f64` with double for gradient checks. A client
 * gets the right definition from the target it links (PUBLIC NN_DOUBLE). */
#ifdef NN_DOUBLE
typedef double nn_real;
#define NN_REAL_NAME "double"
#else
typedef float nn_real;
#define NN_REAL_NAME "float"
#endif

#define NN_MAX_DIMS 4

typedef enum nn_device { NN_DEVICE_CPU = 0, NN_DEVICE_CUDA = 1 } nn_device;

typedef struct nn_tensor {
    nn_real *data;
    int ndim;
    int shape[NN_MAX_DIMS];
    size_t size;        /* product of the shape */
    nn_device device;
} nn_tensor;

/* Views over host memory the caller owns. Shapes must be >= 1 (a view with a
 * dim < 1 gets size 0, which every kernel rejects as NN_ERR_SHAPE). */
nn_tensor nn_tensor_1d(nn_real *data, int d0);
nn_tensor nn_tensor_2d(nn_real *data, int d0, int d1);
nn_tensor nn_tensor_4d(nn_real *data, int d0, int d1, int d2, int d3);

/* An owned host tensor, zero-filled, data 64-byte aligned in one block with
 * the header. Returns NULL on bad shape or out of memory. nn_tensor_free(NULL)
 * is a no-op. */
nn_tensor *nn_tensor_create(int ndim, const int *shape);
void nn_tensor_free(nn_tensor *t);

/* 1 if a and b have the same ndim and shape. */
int nn_tensor_same_shape(const nn_tensor *a, const nn_tensor *b);

/* Checks that t is non-NULL, has data, lives on the host, has ndim dims and
 * (where want[i] > 0) shape[i] == want[i]. On failure writes a message naming
 * `what` into err (may be NULL) and returns NN_ERR_ARG or NN_ERR_SHAPE. */
nn_status nn_tensor_check(const nn_tensor *t, const char *what, int ndim,
                          const int *want, char *err);
/* The same for a tensor that must live on device dev (backends use this). */
nn_status nn_tensor_check_on(const nn_tensor *t, nn_device dev, const char *what,
                             int ndim, const int *want, char *err);

#endif
