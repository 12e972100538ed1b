/* test_blas.c: nn_gemm of the float library against a naive triple loop in
 * double, for all four transpose combinations on odd sizes with row strides
 * larger than the minimum, alpha and beta not 0/1. Also checks that the
 * padding columns of C are left alone and that bad sizes are refused. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include "nn/blas.h"
#include "testcore.h"

#define PAD_VALUE 314.0f

/* op(X)[i][j] of a matrix stored row-major with stride ld. */
static double at(const float *X, int ld, int trans, int i, int j)
{
    return trans ? X[(size_t)j * ld + i] : X[(size_t)i * ld + j];
}

static void gemm_case(tu_rng *rng, int ta, int tb, int M, int N, int K)
{
    /* stored shapes: A is (M,K) or (K,M), B is (K,N) or (N,K); strides padded */
    int arows = ta ? K : M, acols = ta ? M : K;
    int brows = tb ? N : K, bcols = tb ? K : N;
    int lda = acols + 5, ldb = bcols + 3, ldc = N + 7;
    float *A = tu_xcalloc((size_t)arows * lda, sizeof *A);
    float *B = tu_xcalloc((size_t)brows * ldb, sizeof *B);
    float *C = tu_xcalloc((size_t)M * ldc, sizeof *C);
    double *want = tu_xcalloc((size_t)M * N, sizeof *want);
    const float alpha = 1.5f, beta = -0.5f;
    for (size_t i = 0; i < (size_t)arows * lda; i++)
        A[i] = (float)(2 * tu_rng_uniform(rng) - 1);
    for (size_t i = 0; i < (size_t)brows * ldb; i++)
        B[i] = (float)(2 * tu_rng_uniform(rng) - 1);
    for (int i = 0; i < M; i++)
        for (int j = 0; j < ldc; j++)
            C[(size_t)i * ldc + j] = j < N ? (float)(2 * tu_rng_uniform(rng) - 1) : PAD_VALUE;

    double scale = 0;  /* the magnitude the error is measured against */
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double acc = 0, mag = 0;
            for (int k = 0; k < K; k++) {
                double p = at(A, lda, ta, i, k) * at(B, ldb, tb, k, j);
                acc += p;
                mag += fabs(p);
            }
            double c0 = C[(size_t)i * ldc + j];
            want[(size_t)i * N + j] = alpha * acc + beta * c0;
            mag = fabs(alpha) * mag + fabs(beta) * fabs(c0);
            scale = mag > scale ? mag : scale;
        }

    nn_status s = nn_gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    char what[96];
    snprintf(what, sizeof what, "gemm %c%c %dx%dx%d (max abs err / magnitude)",
             ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K);
    if (CHECK(s == NN_OK, "%s: status %d", what, (int)s)) {
        double worst = 0;
        int pad_ok = 1;
        for (int i = 0; i < M; i++)
            for (int j = 0; j < ldc; j++) {
                float c = C[(size_t)i * ldc + j];
                if (j >= N) {
                    pad_ok &= c == PAD_VALUE;
                    continue;
                }
                double e = fabs(c - want[(size_t)i * N + j]);
                worst = e > worst || e != e ? e : worst;
            }
        CHECK_LT(what, worst / scale, 1e-4);
        CHECK(pad_ok, "%s: wrote into C's padding columns (ldc > N)", what);
    }
    free(A); free(B); free(C); free(want);
}

int main(void)
{
    char err[256] = "";
    nn_status s = nn_blas_init(err);
    if (!CHECK(s == NN_OK, "nn_blas_init: %d %s", (int)s, err))
        return tu_finish("test_blas");
    printf("blas: %s\n", nn_blas_info());
    tu_rng rng;
    tu_rng_seed(&rng, 12345);
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            gemm_case(&rng, ta, tb, 37, 23, 19);
            gemm_case(&rng, ta, tb, 1, 29, 3);
            gemm_case(&rng, ta, tb, 13, 1, 31);
        }
    float a = 1, b = 1, c = 0;
    CHECK(nn_gemm(0, 0, -1, 1, 1, 1, &a, 1, &b, 1, 0, &c, 1) == NN_ERR_ARG,
          "nn_gemm with M = -1 is not NN_ERR_ARG");
    CHECK(nn_gemm(0, 0, 1, 1, 1, 1, NULL, 1, &b, 1, 0, &c, 1) == NN_ERR_ARG,
          "nn_gemm with A = NULL is not NN_ERR_ARG");
    CHECK(c == 0, "nn_gemm wrote C on a refused call");
    return tu_finish("test_blas");
}
