/* cublas.c: row-major GEMM on top of column-major cuBLAS. The one place
 * that knows cuBLAS's argument order; Sgemm for float, Dgemm for the
 * NN_DOUBLE build. Math mode (FP32 or TF32) is set on the handle at
 * creation, not here.
 *
 * The trick: a row-major (M,N) matrix with row stride ld is, to cuBLAS, a
 * column-major (N,M) matrix with leading dimension ld, i.e. its transpose.
 * So row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: call
 * cuBLAS with the operands swapped and M and N exchanged. */
#include "common.h"

#ifdef NN_DOUBLE
#define GEMM cublasDgemm
#define GEMM_STRIDED cublasDgemmStridedBatched
#else
#define GEMM cublasSgemm
#define GEMM_STRIDED cublasSgemmStridedBatched
#endif

static cublasOperation_t op(int trans) { return trans ? CUBLAS_OP_T : CUBLAS_OP_N; }

nn_status nn_cuda_gemm(nn_cuda_ctx *ctx, int ta, int tb, int M, int N, int K,
                       nn_real alpha, const nn_real *A, int lda,
                       const nn_real *B, int ldb, nn_real beta, nn_real *C,
                       int ldc, char *err)
{
    NN_CUBLAS_CHECK(GEMM(ctx->blas, op(tb), op(ta), N, M, K, &alpha, B, ldb, A, lda,
                         &beta, C, ldc));
    return NN_OK;
}

nn_status nn_cuda_gemm_strided(nn_cuda_ctx *ctx, int ta, int tb, int M, int N,
                               int K, nn_real alpha, const nn_real *A, int lda,
                               long long sA, const nn_real *B, int ldb,
                               long long sB, nn_real beta, nn_real *C, int ldc,
                               long long sC, int batch, char *err)
{
    NN_CUBLAS_CHECK(GEMM_STRIDED(ctx->blas, op(tb), op(ta), N, M, K, &alpha, B, ldb, sB,
                                 A, lda, sA, &beta, C, ldc, sC, batch));
    return NN_OK;
}
