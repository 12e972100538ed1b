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
#include "nn/optim.h"

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
    NN_OP_BATCHNORM_FWD,
    NN_OP_BATCHNORM_BWD,
    NN_OP_DROPOUT_FWD,
    NN_OP_DROPOUT_BWD,
    NN_OP_OPTIM_STEP,
    NN_OP_L2_REG,
    NN_OP_GATHER,
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

/* Waits until all work queued on b is done, and delivers the results of
 * nn_backend_softmax_loss and nn_backend_l2_reg queued since the last
 * call. */
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
/* labels (N) on b's device holds class indices as nn_real (exact below
 * 2^24), so labels travel as tensors like everything else. *loss is on
 * the host, and like *sumsq below it is written when the work is done: at
 * once on the CPU, by the next nn_backend_synchronize() on a device, so a
 * training step waits for the device once. Keep it valid until then. A
 * label outside 0..M-1 is NN_ERR_ARG, from this call on the CPU and on a
 * device from the call that delivers the loss: that synchronize, or a later
 * softmax_loss or l2_reg that found the backend's result slots full. */
nn_status nn_backend_softmax_loss(nn_backend *b, double *loss,
                                  nn_tensor *dscores, const nn_tensor *scores,
                                  const nn_tensor *labels);
nn_status nn_backend_batchnorm_forward(nn_backend *b, nn_tensor *out,
                                       nn_tensor *save_mean, nn_tensor *save_invstd,
                                       nn_tensor *running_mean, nn_tensor *running_var,
                                       const nn_tensor *inp, const nn_tensor *gamma,
                                       const nn_tensor *beta,
                                       const nn_batchnorm_params *p);
nn_status nn_backend_batchnorm_backward(nn_backend *b, nn_tensor *dinp,
                                        nn_tensor *dgamma, nn_tensor *dbeta,
                                        const nn_tensor *dout, const nn_tensor *inp,
                                        const nn_tensor *gamma,
                                        const nn_tensor *save_mean,
                                        const nn_tensor *save_invstd);
nn_status nn_backend_dropout_forward(nn_backend *b, nn_tensor *out, nn_tensor *mask,
                                     const nn_tensor *inp, double p, uint64_t seed);
nn_status nn_backend_dropout_backward(nn_backend *b, nn_tensor *dinp,
                                      const nn_tensor *dout, const nn_tensor *mask);
nn_status nn_backend_optim_step(nn_backend *b, nn_tensor *param, nn_tensor *state,
                                const nn_tensor *grad, const nn_optim_params *p,
                                long t);
/* *sumsq is on the host, written as softmax_loss's *loss is. */
nn_status nn_backend_l2_reg(nn_backend *b, double *sumsq, nn_tensor *grad,
                            const nn_tensor *param, double reg);

/* A minibatch from a data set kept on b's device, as nn_dataset_gather
 * makes it from the host: for j < n, with i = plan[j][0] an index into the
 * set, x[j] = images[i] shifted by dy = plan[j][1] rows and dx = plan[j][2]
 * columns (x[j][c][y][x'] = images[i][c][y+dy][x'+dx], 0 outside the
 * image), then mirrored left to right when plan[j][3] != 0; y[j] =
 * labels[i]. images (count,C,H,W) already normalised, labels (count), plan
 * (n,4) of small integers (nn_augment_draw's), x (n,C,H,W), y (n). An index
 * outside 0..count-1 gives a zero image and the label -1, which the loss
 * then reports. A device backend's op: the CPU gathers from the host. */
nn_status nn_backend_gather(nn_backend *b, nn_tensor *x, nn_tensor *y,
                            const nn_tensor *images, const nn_tensor *labels,
                            const nn_tensor *plan);

/* Sets every element of t (on b's device) to zero. Required of every
 * backend. */
nn_status nn_backend_zero(nn_backend *b, nn_tensor *t);

#endif
