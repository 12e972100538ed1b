/* layers.h: the layer kernels of the nn library, forward and backward, as
 * pure functions on host tensors: no allocation, no global state.
 *
 * Shape letters, fixed here once for the whole library:
 *   N batch, C in-channels, H/W input height/width, K out-channels (filters),
 *   R/S kernel height/width, P/Q output height/width.
 * All tensors are row-major: an image batch is (N,C,H,W).
 *
 * Conventions kept by every kernel:
 * - Arguments: outputs, then inputs, then hyperparameters, then workspace
 *   and the optional error buffer `err` (NN_ERRLEN bytes, may be NULL).
 * - Backward kernels ACCUMULATE (+=) into dinp, dweight and dbias; the caller
 *   zeroes them first (nn_model_zero_grad does this for models). Gradients
 *   are true gradients: optimizers subtract them.
 * - A `_ref` kernel (explicit loops, the report's algorithm) and its fast
 *   twin (`_gemm`, `_fast`) have identical signatures and results to within
 *   rounding, so tests and backends can swap them.
 * - Every kernel validates its arguments (NULL, device, shapes, parameters)
 *   and returns NN_ERR_ARG or NN_ERR_SHAPE with a message instead of
 *   touching memory. */
#ifndef NN_LAYERS_H
#define NN_LAYERS_H

#include <stdint.h>
#include "nn/tensor.h"

/* ---- convolution ------------------------------------------------------ */

/* inp (N,C,H,W), weight (K,C,R,S), bias (K) or NULL (no bias: a conv
 * followed by batch norm has no use for one), out (N,K,P,Q) with
 * P = 1 + (H + 2*pad - R) / stride, Q = 1 + (W + 2*pad - S) / stride (floor).
 * Zero padding. stride >= 1, pad >= 0, R <= H + 2*pad, S <= W + 2*pad. */
typedef struct nn_conv2d_params {
    int stride;
    int pad;
} nn_conv2d_params;

/* Output height or width for an input extent, kernel extent, stride, pad;
 * 0 when the parameters admit no output. */
int nn_conv2d_out_dim(int in, int kernel, int stride, int pad);

/* Elements of nn_real the fast kernels need as `workspace` for this shape
 * (the _ref kernels need none and accept NULL). 0 on bad arguments. */
size_t nn_conv2d_workspace_size(const nn_tensor *inp, const nn_tensor *weight,
                                const nn_conv2d_params *p);

nn_status nn_conv2d_forward_ref(nn_tensor *out, const nn_tensor *inp,
                                const nn_tensor *weight, const nn_tensor *bias,
                                const nn_conv2d_params *p, nn_tensor *workspace,
                                char *err);
/* im2col + one GEMM per image through the BLAS. */
nn_status nn_conv2d_forward_gemm(nn_tensor *out, const nn_tensor *inp,
                                 const nn_tensor *weight, const nn_tensor *bias,
                                 const nn_conv2d_params *p, nn_tensor *workspace,
                                 char *err);

/* dout (N,K,P,Q). dinp may be NULL: the first layer of a net has no use for
 * the gradient of its input and skips that work. dbias may be NULL (a conv
 * without bias). */
nn_status nn_conv2d_backward_ref(nn_tensor *dinp, nn_tensor *dweight,
                                 nn_tensor *dbias, const nn_tensor *dout,
                                 const nn_tensor *inp, const nn_tensor *weight,
                                 const nn_conv2d_params *p, nn_tensor *workspace,
                                 char *err);
nn_status nn_conv2d_backward_gemm(nn_tensor *dinp, nn_tensor *dweight,
                                  nn_tensor *dbias, const nn_tensor *dout,
                                  const nn_tensor *inp, const nn_tensor *weight,
                                  const nn_conv2d_params *p, nn_tensor *workspace,
                                  char *err);

/* ---- max pooling ------------------------------------------------------ */

/* inp (N,C,H,W), out (N,C,P,Q), P = 1 + (H - pool_h) / stride, likewise Q.
 * No padding. Backward routes each dout element to the first maximum of its
 * window in row-major order (as argmax does), accumulating. */
typedef struct nn_pool_params {
    int pool_h;
    int pool_w;
    int stride;
} nn_pool_params;

nn_status nn_maxpool_forward_ref(nn_tensor *out, const nn_tensor *inp,
                                 const nn_pool_params *p, char *err);
nn_status nn_maxpool_forward_fast(nn_tensor *out, const nn_tensor *inp,
                                  const nn_pool_params *p, char *err);
nn_status nn_maxpool_backward_ref(nn_tensor *dinp, const nn_tensor *dout,
                                  const nn_tensor *inp, const nn_pool_params *p,
                                  char *err);
nn_status nn_maxpool_backward_fast(nn_tensor *dinp, const nn_tensor *dout,
                                   const nn_tensor *inp, const nn_pool_params *p,
                                   char *err);

/* ---- linear (affine), ReLU, softmax loss ------------------------------ */

/* inp (N, D...) is read as (N,D) with D the product of its other dims;
 * weight (D,M), bias (M), out (N,M): out = inp @ weight + bias. */
nn_status nn_linear_forward(nn_tensor *out, const nn_tensor *inp,
                            const nn_tensor *weight, const nn_tensor *bias,
                            char *err);
/* dinp (same shape as inp) may be NULL. */
nn_status nn_linear_backward(nn_tensor *dinp, nn_tensor *dweight,
                             nn_tensor *dbias, const nn_tensor *dout,
                             const nn_tensor *inp, const nn_tensor *weight,
                             char *err);

/* out = max(inp, 0), any shape; out may alias inp. */
nn_status nn_relu_forward(nn_tensor *out, const nn_tensor *inp, char *err);
/* dinp += dout where out > 0; `out` is the forward output. */
nn_status nn_relu_backward(nn_tensor *dinp, const nn_tensor *dout,
                           const nn_tensor *out, char *err);

/* scores (N,M), labels[N] in 0..M-1. *loss = mean over N of -log softmax at
 * the label. dscores (N,M) may be NULL; when given it is OVERWRITTEN (it is
 * the head of the backward pass) with (softmax - onehot) / N. */
nn_status nn_softmax_loss(double *loss, nn_tensor *dscores,
                          const nn_tensor *scores, const int *labels,
                          char *err);

/* ---- sandwich layers -------------------------------------------------- */
/* The report's convenience layers. Intermediate activations the backward
 * pass needs are caller-provided tensors (`act`), filled by forward and read
 * by backward; `dact` is scratch of the same shape for backward. The fast
 * (gemm) kernels run inside. */

/* out = relu(conv(inp)); out (N,K,P,Q). */
nn_status nn_conv_relu_forward(nn_tensor *out, const nn_tensor *inp,
                               const nn_tensor *weight, const nn_tensor *bias,
                               const nn_conv2d_params *p, nn_tensor *workspace,
                               char *err);
/* out is the forward output; dact is scratch (N,K,P,Q). */
nn_status nn_conv_relu_backward(nn_tensor *dinp, nn_tensor *dweight,
                                nn_tensor *dbias, const nn_tensor *dout,
                                const nn_tensor *inp, const nn_tensor *weight,
                                const nn_tensor *out, const nn_conv2d_params *p,
                                nn_tensor *dact, nn_tensor *workspace, char *err);

/* act = relu(conv(inp)) (N,K,P,Q); out = maxpool(act). */
nn_status nn_conv_relu_pool_forward(nn_tensor *out, nn_tensor *act,
                                    const nn_tensor *inp, const nn_tensor *weight,
                                    const nn_tensor *bias,
                                    const nn_conv2d_params *cp,
                                    const nn_pool_params *pp,
                                    nn_tensor *workspace, char *err);
nn_status nn_conv_relu_pool_backward(nn_tensor *dinp, nn_tensor *dweight,
                                     nn_tensor *dbias, const nn_tensor *dout,
                                     const nn_tensor *inp, const nn_tensor *weight,
                                     const nn_tensor *act,
                                     const nn_conv2d_params *cp,
                                     const nn_pool_params *pp, nn_tensor *dact,
                                     nn_tensor *workspace, char *err);

/* out = relu(inp @ weight + bias). */
nn_status nn_linear_relu_forward(nn_tensor *out, const nn_tensor *inp,
                                 const nn_tensor *weight, const nn_tensor *bias,
                                 char *err);
/* dact is scratch of out's shape. */
nn_status nn_linear_relu_backward(nn_tensor *dinp, nn_tensor *dweight,
                                  nn_tensor *dbias, const nn_tensor *dout,
                                  const nn_tensor *inp, const nn_tensor *weight,
                                  const nn_tensor *out, nn_tensor *dact,
                                  char *err);

/* ---- batch normalisation ---------------------------------------------- */

/* inp is (N,C,H,W) for spatial batch norm (statistics per channel over N, H
 * and W) or (N,C) for the 1-d kind (per feature over N). gamma, beta,
 * running_mean, running_var, save_mean, save_invstd are (C).
 * training: normalises with the batch's mean and biased variance, writes
 *   save_mean and save_invstd = 1/sqrt(var + eps) for backward, and updates
 *   running = momentum * running + (1 - momentum) * batch (CS231n's rule;
 *   the running variance is the biased one too).
 * testing: normalises with the running statistics; save_* are not written
 *   and may be NULL. */
typedef struct nn_batchnorm_params {
    double eps;       /* e.g. 1e-5 */
    double momentum;  /* e.g. 0.9 */
    int training;
} nn_batchnorm_params;

nn_status nn_batchnorm_forward(nn_tensor *out, nn_tensor *save_mean,
                               nn_tensor *save_invstd, nn_tensor *running_mean,
                               nn_tensor *running_var, const nn_tensor *inp,
                               const nn_tensor *gamma, const nn_tensor *beta,
                               const nn_batchnorm_params *p, char *err);
/* After a training-mode forward. dinp may be NULL. Accumulates. */
nn_status nn_batchnorm_backward(nn_tensor *dinp, nn_tensor *dgamma,
                                nn_tensor *dbeta, const nn_tensor *dout,
                                const nn_tensor *inp, const nn_tensor *gamma,
                                const nn_tensor *save_mean,
                                const nn_tensor *save_invstd, char *err);

/* ---- dropout (inverted) ----------------------------------------------- */

/* Keeps each element with probability 1 - p and scales it by 1/(1 - p):
 * mask[i] = nn_hash_uniform(seed, i) >= p ? 1/(1-p) : 0 (rng.h), out = inp
 * * mask. Any shape; mask has inp's size. 0 <= p < 1. The mask depends only
 * on (seed, i), so every backend draws the same one. */
nn_status nn_dropout_forward(nn_tensor *out, nn_tensor *mask,
                             const nn_tensor *inp, double p, uint64_t seed,
                             char *err);
/* dinp += dout * mask. */
nn_status nn_dropout_backward(nn_tensor *dinp, const nn_tensor *dout,
                              const nn_tensor *mask, char *err);

#endif
