/* blas.h: GEMM through the system BLAS (OpenBLAS), chosen and loaded at run
 * time so that the fast kernel runs without the user setting anything.
 *
 * Debian's OpenBLAS 0.3.21 does not recognise newer CPUs (AMD Zen 4/5 among
 * them) and falls back to an SSE3 kernel, 5x slower. OpenBLAS picks its
 * kernel in a constructor when it is loaded, from OPENBLAS_CORETYPE, so nn
 * does not link it: on first use it looks at the CPU (cpuid), sets
 * OPENBLAS_CORETYPE to the best kernel family the CPU supports, and only
 * then dlopen()s the library. nn_blas_info() says what runs. */
#ifndef NN_BLAS_H
#define NN_BLAS_H

#include "nn/tensor.h"

/* Loads the BLAS if not yet loaded. Thread-safe (pthread_once). Returns
 * NN_ERR_UNSUPPORTED with a message when no BLAS library can be loaded.
 * Every GEMM-using kernel calls this itself; calling it early just moves the
 * cost and the log line to start-up. */
nn_status nn_blas_init(char *err);

/* One line describing the BLAS in use, e.g. "OpenBLAS 0.3.21 (kernel
 * SkylakeX, chosen: cpu has AVX-512; 2 threads)". Static storage. */
const char *nn_blas_info(void);

/* Sets the BLAS's thread count (<= 0: leave its default). */
void nn_blas_set_threads(int threads);

/* Row-major C (M,N) = alpha * op(A) (M,K) * op(B) (K,N) + beta * C, with
 * op(X) = X or X^T as trans_a/trans_b say; lda/ldb/ldc are row strides of
 * the stored matrices. Host memory. Returns NN_ERR_UNSUPPORTED when the BLAS
 * cannot be loaded, NN_ERR_ARG on bad sizes. */
nn_status nn_gemm(int trans_a, int trans_b, int M, int N, int K, nn_real alpha,
                  const nn_real *A, int lda, const nn_real *B, int ldb,
                  nn_real beta, nn_real *C, int ldc);

#endif
