/* cublas_v2.h (emulated): the cuBLAS calls nn_cuda makes, as column-major
 * reference GEMMs in runtime.c. Not NVIDIA's header; only for
 * tests/gpu/emu. */
#ifndef EMU_CUBLAS_V2_H
#define EMU_CUBLAS_V2_H

#include "cuda_runtime_api.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { CUBLAS_STATUS_SUCCESS = 0, CUBLAS_STATUS_INVALID_VALUE = 7 } cublasStatus_t;
typedef enum { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1 } cublasOperation_t;
typedef enum { CUBLAS_DEFAULT_MATH = 0, CUBLAS_TF32_TENSOR_OP_MATH = 3 } cublasMath_t;
typedef struct emu_blas *cublasHandle_t;

cublasStatus_t cublasCreate(cublasHandle_t *h);
cublasStatus_t cublasDestroy(cublasHandle_t h);
cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t s);
cublasStatus_t cublasSetMathMode(cublasHandle_t h, cublasMath_t m);
const char *cublasGetStatusString(cublasStatus_t s);
const char *cublasGetStatusName(cublasStatus_t s);

#define EMU_GEMM_DECL(T, name, name_batched)                                          \
    cublasStatus_t name(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, \
                        int m, int n, int k, const T *alpha, const T *A, int lda,     \
                        const T *B, int ldb, const T *beta, T *C, int ldc);           \
    cublasStatus_t name_batched(cublasHandle_t h, cublasOperation_t ta,               \
                                cublasOperation_t tb, int m, int n, int k,            \
                                const T *alpha, const T *A, int lda, long long sA,    \
                                const T *B, int ldb, long long sB, const T *beta,     \
                                T *C, int ldc, long long sC, int batch);
EMU_GEMM_DECL(float, cublasSgemm, cublasSgemmStridedBatched)
EMU_GEMM_DECL(double, cublasDgemm, cublasDgemmStridedBatched)
#undef EMU_GEMM_DECL

#ifdef __cplusplus
}
#endif

#endif
