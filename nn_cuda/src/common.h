/* common.h: private to nn_cuda. The backend context, the error macros and
 * the launchers that each .cu file exports to backend_cuda.c.
 *
 * Included from C (backend_cuda.c, cublas.c) and from CUDA C++ (the .cu
 * files), so it holds C only. Launchers take raw device pointers whose
 * shapes backend_cuda.c has already checked; they validate nothing but
 * report every CUDA or cuBLAS failure as NN_ERR_CUDA with file and line. */
#ifndef NN_CUDA_COMMON_H
#define NN_CUDA_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <cuda_runtime_api.h>
#include <cublas_v2.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "nn/backend_impl.h"
#include "nn/tensor.h"
#include "nn/optim.h"

/* Reductions that end on the host (loss, sum of squares) write per-block
 * partials into ctx->red and fold them in a fixed order on the device into
 * a result slot: deterministic, and no copy back until the caller
 * synchronises (nn_cuda_defer). Layout of ctx->red (doubles): [0, RED_PARTS)
 * partials, [RED_PARTS, 2*RED_PARTS) a second set (softmax's bad-label
 * flags), then NN_CUDA_SLOTS result slots. */
#define NN_CUDA_RED_PARTS 1024
#define NN_CUDA_SLOTS 64
#define NN_CUDA_RED_RESULT (2 * NN_CUDA_RED_PARTS)
#define NN_CUDA_RED_LEN (2 * NN_CUDA_RED_PARTS + NN_CUDA_SLOTS)

/* Host copies go through pinned staging buffers, used in turn, so that a
 * copy returns before the device has read it; larger copies than this wait
 * for the device instead. */
#define NN_CUDA_STAGES 2
#define NN_CUDA_STAGE_MAX ((size_t)16 << 20)

/* A result that lands in *dst when the stream is next synchronised; classes
 * > 0 marks a softmax loss over that many classes, whose negative value
 * -(n + 1) says sample n had a bad label. */
typedef struct nn_cuda_pending {
    double *dst;
    int classes;
} nn_cuda_pending;

typedef struct nn_cuda_stage {
    void *buf;               /* pinned host memory */
    size_t bytes;
    cudaEvent_t done;        /* recorded after the copy that reads buf */
    int used;                /* done has been recorded */
} nn_cuda_stage;

/* Threads per block of the elementwise and reduction kernels: a multiple of
 * 32, which the block reductions (reduce.cuh) rely on. */
#define NN_CUDA_BLOCK 256

typedef struct nn_cuda_ctx {
    int device;
    cudaStream_t stream;    /* every kernel, copy and GEMM goes here */
    cublasHandle_t blas;    /* bound to stream */
    nn_real *ws;            /* conv workspace: im2col of several images */
    size_t ws_elems;
    double *red;            /* device, NN_CUDA_RED_LEN doubles */
    double *host;           /* pinned, NN_CUDA_SLOTS doubles: results land here */
    nn_cuda_pending pending[NN_CUDA_SLOTS]; /* slot i's destination */
    int npending;
    nn_cuda_stage stage[NN_CUDA_STAGES];
    int next_stage;
} nn_cuda_ctx;

/* Writes the formatted message into err (NN_ERRLEN bytes; NULL: nothing)
 * and returns s. */
nn_status nn_cuda_fail(char *err, nn_status s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* The part of a path after its last '/' (keeps messages short). */
const char *nn_cuda_base(const char *path);

/* Both macros need a `char *err` in scope and return from the enclosing
 * function. On failure the runtime's last-error slot is cleared too, so a
 * handled failure is not reported again by the next launch check. */
#define NN_CUDA_CHECK(expr)                                                    \
    do {                                                                       \
        cudaError_t nn_cuda_e_ = (expr);                                       \
        if (nn_cuda_e_ != cudaSuccess) {                                       \
            (void)cudaGetLastError();                                          \
            return nn_cuda_fail(err, NN_ERR_CUDA, "%s:%d: %s (%s) in %s",      \
                                nn_cuda_base(__FILE__), __LINE__,              \
                                cudaGetErrorString(nn_cuda_e_),                \
                                cudaGetErrorName(nn_cuda_e_), #expr);          \
        }                                                                      \
    } while (0)

#define NN_CUBLAS_CHECK(expr)                                                  \
    do {                                                                       \
        cublasStatus_t nn_cublas_s_ = (expr);                                  \
        if (nn_cublas_s_ != CUBLAS_STATUS_SUCCESS)                             \
            return nn_cuda_fail(err, NN_ERR_CUDA, "%s:%d: cuBLAS %s (%s) in %s", \
                                nn_cuda_base(__FILE__), __LINE__,              \
                                cublasGetStatusString(nn_cublas_s_),           \
                                cublasGetStatusName(nn_cublas_s_), #expr);     \
    } while (0)

/* Returns a failed nn_status early. */
#define NN_CUDA_TRY(expr)                                                      \
    do {                                                                       \
        nn_status nn_cuda_s_ = (expr);                                         \
        if (nn_cuda_s_ != NN_OK)                                               \
            return nn_cuda_s_;                                                 \
    } while (0)

/* After every <<<>>>: a bad launch configuration shows up here; faults
 * inside the kernel surface at the next synchronising call. */
#define NN_CUDA_CHECK_LAUNCH() NN_CUDA_CHECK(cudaGetLastError())

/* A device slot for a reduction's result, to be copied to *dst (which must
 * stay valid) by the next nn_cuda_settle(). classes as nn_cuda_pending.
 * Settles first when every slot is taken. */
nn_status nn_cuda_defer(nn_cuda_ctx *ctx, double **slot, double *dst, int classes,
                        char *err);
/* Waits for the stream, then delivers the deferred results: NN_ERR_ARG when
 * a softmax loss saw a bad label (the other results are still delivered). */
nn_status nn_cuda_settle(nn_cuda_ctx *ctx, char *err);

/* ---- cublas.c: GEMM on row-major matrices ----------------------------- */

/* C (M,N) = alpha * op(A) (M,K) op(B) (K,N) + beta * C, all row-major on the
 * device, lda/ldb/ldc the row strides as stored (nn_gemm's contract). */
nn_status nn_cuda_gemm(nn_cuda_ctx *ctx, int ta, int tb, int M, int N, int K,
                       nn_real alpha, const nn_real *A, int lda,
                       const nn_real *B, int ldb, nn_real beta, nn_real *C,
                       int ldc, char *err);
/* The same for `batch` problems at element strides sA, sB, sC (sA may be 0:
 * one A shared by every problem). */
nn_status nn_cuda_gemm_strided(nn_cuda_ctx *ctx, int ta, int tb, int M, int N,
                               int K, nn_real alpha, const nn_real *A, int lda,
                               long long sA, const nn_real *B, int ldb,
                               long long sB, nn_real beta, nn_real *C, int ldc,
                               long long sC, int batch, char *err);

/* ---- im2col.cu: convolution ------------------------------------------- */

typedef nn_conv2d_geom nn_cuda_conv_geom; /* backend_impl.h's shape rules */

/* out (N,K,P,Q) = conv(inp (N,C,H,W), w (K,C,R,S)) + bias (K). ws holds
 * ws_elems >= C*R*S*P*Q elements; as many images as fit are lowered at once. */
nn_status nn_cuda_conv2d_forward(nn_cuda_ctx *ctx, nn_real *out, const nn_real *inp,
                                 const nn_real *w, const nn_real *bias,
                                 const nn_cuda_conv_geom *g, nn_real *ws,
                                 size_t ws_elems, char *err);
/* Accumulates into dw, dbias and (when not NULL) dinp. */
nn_status nn_cuda_conv2d_backward(nn_cuda_ctx *ctx, nn_real *dinp, nn_real *dw,
                                  nn_real *dbias, const nn_real *dout,
                                  const nn_real *inp, const nn_real *w,
                                  const nn_cuda_conv_geom *g, nn_real *ws,
                                  size_t ws_elems, char *err);

/* ---- pool.cu: max pooling --------------------------------------------- */

typedef nn_pool_geom nn_cuda_pool_geom;

nn_status nn_cuda_maxpool_forward(nn_cuda_ctx *ctx, nn_real *out, const nn_real *inp,
                                  const nn_cuda_pool_geom *g, char *err);
nn_status nn_cuda_maxpool_backward(nn_cuda_ctx *ctx, nn_real *dinp,
                                   const nn_real *dout, const nn_real *inp,
                                   const nn_cuda_pool_geom *g, char *err);

/* ---- activations.cu: relu, dropout, bias ------------------------------ */

nn_status nn_cuda_relu_forward(nn_cuda_ctx *ctx, nn_real *out, const nn_real *inp,
                               size_t n, char *err);
nn_status nn_cuda_relu_backward(nn_cuda_ctx *ctx, nn_real *dinp, const nn_real *dout,
                                const nn_real *out, size_t n, char *err);
/* keep = (nn_real)(1 / (1 - p)), computed by the caller as the CPU does. */
nn_status nn_cuda_dropout_forward(nn_cuda_ctx *ctx, nn_real *out, nn_real *mask,
                                  const nn_real *inp, size_t n, double p,
                                  nn_real keep, uint64_t seed, char *err);
nn_status nn_cuda_dropout_backward(nn_cuda_ctx *ctx, nn_real *dinp,
                                   const nn_real *dout, const nn_real *mask,
                                   size_t n, char *err);
/* y (N,K,L) = bias[k] everywhere (L = P*Q for conv, 1 for linear). */
nn_status nn_cuda_bias_fill(nn_cuda_ctx *ctx, nn_real *y, const nn_real *bias,
                            int N, int K, size_t L, char *err);
/* dbias[k] += sum over n, l of dy (N,K,L). */
nn_status nn_cuda_bias_grad(nn_cuda_ctx *ctx, nn_real *dbias, const nn_real *dy,
                            int N, int K, size_t L, char *err);

/* ---- loss.cu: softmax cross-entropy ----------------------------------- */

/* scores (N,M), labels (N) as nn_real-coded class indices, dscores (N,M) or
 * NULL. *loss is set on the host by the next nn_cuda_settle(), which fails
 * with NN_ERR_ARG when a label is not an integer in 0..M-1 (dscores is then
 * unspecified). */
nn_status nn_cuda_softmax_loss(nn_cuda_ctx *ctx, double *loss, nn_real *dscores,
                               const nn_real *scores, const nn_real *labels,
                               int N, int M, char *err);

/* ---- batchnorm.cu ----------------------------------------------------- */

/* inp read as (N,C,L). save_* may be NULL when !training. */
nn_status nn_cuda_batchnorm_forward(nn_cuda_ctx *ctx, nn_real *out,
                                    nn_real *save_mean, nn_real *save_invstd,
                                    nn_real *running_mean, nn_real *running_var,
                                    const nn_real *inp, const nn_real *gamma,
                                    const nn_real *beta, int N, int C, size_t L,
                                    double eps, double momentum, int training,
                                    char *err);
nn_status nn_cuda_batchnorm_backward(nn_cuda_ctx *ctx, nn_real *dinp,
                                     nn_real *dgamma, nn_real *dbeta,
                                     const nn_real *dout, const nn_real *inp,
                                     const nn_real *gamma, const nn_real *save_mean,
                                     const nn_real *save_invstd, int N, int C,
                                     size_t L, char *err);

/* ---- optim.cu --------------------------------------------------------- */

/* One update over n parameters; state holds nn_optim_state_slots() arrays
 * of n. p and t as nn_optim_step (already validated). */
nn_status nn_cuda_optim_step(nn_cuda_ctx *ctx, nn_real *param, nn_real *state,
                             const nn_real *grad, size_t n,
                             const nn_optim_params *p, long t, char *err);
/* grad += 2 reg param; *sumsq (host) = sum of param^2, set by the next
 * nn_cuda_settle(). */
nn_status nn_cuda_l2_reg(nn_cuda_ctx *ctx, double *sumsq, nn_real *grad,
                         const nn_real *param, size_t n, double reg, char *err);

/* ---- gather.cu --------------------------------------------------------- */

/* nn_backend_gather on checked shapes: x (n,C,H,W), y (n), images
 * (count,C,H,W), labels (count), plan (n,4). */
nn_status nn_cuda_gather(nn_cuda_ctx *ctx, nn_real *x, nn_real *y, const nn_real *images,
                         const nn_real *labels, const nn_real *plan, int n, int count,
                         int C, int H, int W, char *err);

#ifdef __cplusplus
}
#endif

#endif
