/* backend.h: a compute device behind one table of operations.
 *
 * Models, the solver and the optimizers are written once against an
 * nn_backend; nn/ implements it for the CPU (BLAS for GEMM), nn_cuda/ for an
 * NVIDIA GPU. An nn_backend is opaque here; backend_impl.h is for backends.
 * A backend object is used by one thread at a time (the daemon gives each
 * device one worker thread). */
#ifndef NN_BACKEND_H
#define NN_BACKEND_H

#include "nn/layers.h"

typedef struct nn_backend nn_backend;

/* The operations a backend may implement; nn_backend_supports() tells. */
typedef enum nn_op {
    NN_OP_CONV2D_FWD,
    NN_OP_CONV2D_BWD,
    NN_OP_MAXPOOL_FWD,
    NN_OP_MAXPOOL_BWD,
    NN_OP_RELU_FWD,
    NN_OP_RELU_BWD,
    NN_OP_LINEAR_FWD,
    NN_OP_LINEAR_BWD,
    NN_OP_SOFTMAX_LOSS,
    NN_OP_COUNT
} nn_op;

/* The CPU backend. threads <= 0 keeps the BLAS default. Loads the BLAS
 * (blas.h) and fails with its message if none can be loaded. */
nn_status nn_cpu_backend_create(int threads, nn_backend **out, char *err);

/* nn_backend_free(NULL) is a no-op. */
void nn_backend_free(nn_backend *b);

const char *nn_backend_name(const nn_backend *b);
nn_device nn_backend_device(const nn_backend *b);
int nn_backend_supports(const nn_backend *b, nn_op op);

/* The message of the last failed call on b ("" if none). Valid until the
 * next call on b. */
const char *nn_backend_errmsg(const nn_backend *b);

/* Allocates memory for t (shape set by the caller, e.g. from a view with
 * NULL data) on b's device, zero-filled; sets t->data and t->device. */
nn_status nn_backend_alloc(nn_backend *b, nn_tensor *t);
/* Frees what nn_backend_alloc gave t; NULL data is a no-op. */
void nn_backend_release(nn_backend *b, nn_tensor *t);

/* The one way to move data between host and device: copies src to dst
 * (same size), in whichever direction their device tags say. */
nn_status nn_tensor_copy(nn_backend *b, nn_tensor *dst, const nn_tensor *src);

/* Waits until all work queued on b is done. */
nn_status nn_backend_synchronize(nn_backend *b);

/* ---- operations: the layers.h kernels on b's device --------------------
 * Same arguments and conventions as layers.h; tensors must live on b's
 * device. NN_ERR_UNSUPPORTED when b lacks the op. */
nn_status nn_backend_conv2d_forward(nn_backend *b, nn_tensor *out,
                                    const nn_tensor *inp, const nn_tensor *weight,
                                    const nn_tensor *bias,
                                    const nn_conv2d_params *p,
                                    nn_tensor *workspace);
nn_status nn_backend_conv2d_backward(nn_backend *b, nn_tensor *dinp,
                                     nn_tensor *dweight, nn_tensor *dbias,
                                     const nn_tensor *dout, const nn_tensor *inp,
                                     const nn_tensor *weight,
                                     const nn_conv2d_params *p,
                                     nn_tensor *workspace);
nn_status nn_backend_maxpool_forward(nn_backend *b, nn_tensor *out,
                                     const nn_tensor *inp,
                                     const nn_pool_params *p);
nn_status nn_backend_maxpool_backward(nn_backend *b, nn_tensor *dinp,
                                      const nn_tensor *dout, const nn_tensor *inp,
                                      const nn_pool_params *p);
nn_status nn_backend_relu_forward(nn_backend *b, nn_tensor *out,
                                  const nn_tensor *inp);
nn_status nn_backend_relu_backward(nn_backend *b, nn_tensor *dinp,
                                   const nn_tensor *dout, const nn_tensor *out);
nn_status nn_backend_linear_forward(nn_backend *b, nn_tensor *out,
                                    const nn_tensor *inp, const nn_tensor *weight,
                                    const nn_tensor *bias);
nn_status nn_backend_linear_backward(nn_backend *b, nn_tensor *dinp,
                                     nn_tensor *dweight, nn_tensor *dbias,
                                     const nn_tensor *dout, const nn_tensor *inp,
                                     const nn_tensor *weight);
/* labels: N ints in b's device memory (nn_backend_alloc'd for CUDA). */
nn_status nn_backend_softmax_loss(nn_backend *b, double *loss,
                                  nn_tensor *dscores, const nn_tensor *scores,
                                  const int *labels);

#endif
