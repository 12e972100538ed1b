/* backend_impl.h: what a backend implements. For backends only (nn's CPU
 * backend, nn_cuda); users of the library include backend.h.
 *
 * Each backend fills a static const nn_backend_ops and creates its object
 * with nn_backend_new(). An op entry left NULL means "unsupported". Ops
 * write detail text into `err` (NN_ERRLEN bytes, never NULL here); the
 * dispatchers in backend.c pass the backend's own message buffer. */
#ifndef NN_BACKEND_IMPL_H
#define NN_BACKEND_IMPL_H

#include "nn/backend.h"

typedef struct nn_backend_ops {
    /* required */
    const char *name;
    nn_device device;
    nn_status (*alloc)(void *ctx, nn_tensor *t, char *err);
    void (*release)(void *ctx, nn_tensor *t);
    nn_status (*copy_to_device)(void *ctx, nn_tensor *dst, const nn_tensor *src, char *err);
    nn_status (*copy_to_host)(void *ctx, nn_tensor *dst, const nn_tensor *src, char *err);
    nn_status (*synchronize)(void *ctx, char *err);
    /* dst and src both on this device, same size (a model's best-params
     * copy). */
    nn_status (*copy_on_device)(void *ctx, nn_tensor *dst, const nn_tensor *src, char *err);
    nn_status (*zero)(void *ctx, nn_tensor *t, char *err);
    void (*free_ctx)(void *ctx);

    /* operations, each optional */
    nn_status (*conv2d_fwd)(void *ctx, nn_tensor *out, const nn_tensor *inp,
                            const nn_tensor *weight, const nn_tensor *bias,
                            const nn_conv2d_params *p, nn_tensor *workspace,
                            char *err);
    nn_status (*conv2d_bwd)(void *ctx, nn_tensor *dinp, nn_tensor *dweight,
                            nn_tensor *dbias, const nn_tensor *dout,
                            const nn_tensor *inp, const nn_tensor *weight,
                            const nn_conv2d_params *p, nn_tensor *workspace,
                            char *err);
    nn_status (*maxpool_fwd)(void *ctx, nn_tensor *out, const nn_tensor *inp,
                             const nn_pool_params *p, char *err);
    nn_status (*maxpool_bwd)(void *ctx, nn_tensor *dinp, const nn_tensor *dout,
                             const nn_tensor *inp, const nn_pool_params *p,
                             char *err);
    nn_status (*relu_fwd)(void *ctx, nn_tensor *out, const nn_tensor *inp, char *err);
    nn_status (*relu_bwd)(void *ctx, nn_tensor *dinp, const nn_tensor *dout,
                          const nn_tensor *out, char *err);
    nn_status (*linear_fwd)(void *ctx, nn_tensor *out, const nn_tensor *inp,
                            const nn_tensor *weight, const nn_tensor *bias,
                            char *err);
    nn_status (*linear_bwd)(void *ctx, nn_tensor *dinp, nn_tensor *dweight,
                            nn_tensor *dbias, const nn_tensor *dout,
                            const nn_tensor *inp, const nn_tensor *weight,
                            char *err);
    nn_status (*softmax_loss)(void *ctx, double *loss, nn_tensor *dscores,
                              const nn_tensor *scores, const nn_tensor *labels,
                              char *err);
    nn_status (*batchnorm_fwd)(void *ctx, nn_tensor *out, nn_tensor *save_mean,
                               nn_tensor *save_invstd, nn_tensor *running_mean,
                               nn_tensor *running_var, const nn_tensor *inp,
                               const nn_tensor *gamma, const nn_tensor *beta,
                               const nn_batchnorm_params *p, char *err);
    nn_status (*batchnorm_bwd)(void *ctx, nn_tensor *dinp, nn_tensor *dgamma,
                               nn_tensor *dbeta, const nn_tensor *dout,
                               const nn_tensor *inp, const nn_tensor *gamma,
                               const nn_tensor *save_mean,
                               const nn_tensor *save_invstd, char *err);
    nn_status (*dropout_fwd)(void *ctx, nn_tensor *out, nn_tensor *mask,
                             const nn_tensor *inp, double p, uint64_t seed,
                             char *err);
    nn_status (*dropout_bwd)(void *ctx, nn_tensor *dinp, const nn_tensor *dout,
                             const nn_tensor *mask, char *err);
    nn_status (*optim_step)(void *ctx, nn_tensor *param, nn_tensor *state,
                            const nn_tensor *grad, const nn_optim_params *p,
                            long t, char *err);
    nn_status (*l2_reg)(void *ctx, double *sumsq, nn_tensor *grad,
                        const nn_tensor *param, double reg, char *err);
    nn_status (*gather)(void *ctx, nn_tensor *x, nn_tensor *y, const nn_tensor *images,
                        const nn_tensor *labels, const nn_tensor *plan, char *err);
} nn_backend_ops;

/* ---- shape rules shared by every backend --------------------------------
 * The argument checks of layers.h's conv and pool kernels, for tensors on
 * device dev: they fill the geometry or fail with the same status and
 * message the CPU kernels give. `out` is the output for forward and dout
 * for backward; bias and gradients are checked by the caller. */
typedef struct nn_conv2d_geom {
    int N, C, H, W, K, R, S, P, Q, stride, pad;
} nn_conv2d_geom;

typedef struct nn_pool_geom {
    int N, C, H, W, PH, PW, stride, P, Q;
} nn_pool_geom;

nn_status nn_conv2d_geometry(nn_conv2d_geom *g, const nn_tensor *out,
                             const nn_tensor *inp, const nn_tensor *weight,
                             const nn_conv2d_params *p, nn_device dev,
                             const char *outname, char *err);
nn_status nn_maxpool_geometry(nn_pool_geom *g, const nn_tensor *out,
                              const nn_tensor *inp, const nn_pool_params *p,
                              nn_device dev, const char *outname, char *err);

/* Creates a backend object around ops and ctx; takes ownership of ctx
 * (released with ops->free_ctx by nn_backend_free). */
nn_status nn_backend_new(const nn_backend_ops *ops, void *ctx, nn_backend **out);

#endif
