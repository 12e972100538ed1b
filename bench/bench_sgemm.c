/* bench_sgemm.c: GFLOP/s of float nn_gemm on an n x n x n product.
 *
 * One warm-up call (it also loads OpenBLAS and starts its threads), then
 * `reps` timed calls; GFLOP/s is reported for the best rep and the average.
 * --compare-fallback re-runs the same measurement in a child process with
 * NN_BLAS_CORETYPE=Prescott, OpenBLAS's generic SSE3 kernel, for contrast:
 * OpenBLAS fixes its kernel when it is loaded, so this cannot be done in
 * one process. Not a test: it checks a few sampled entries and prints the
 * error, but asserts no speed. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include "bench_common.h"
#include "nn/blas.h"

#ifdef NN_DOUBLE
#error "bench_sgemm times float GEMM: link it against nn, not nn_f64"
#endif

extern char **environ;

/* ---- helpers ---------------------------------------------------------- */

/* xorshift32, seeded: the same matrices on every run (STYLE.md: no rand()). */
static float rand_unit(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return (float)(*s >> 8) / 16777216.0f * 2.0f - 1.0f;
}

/* Re-runs this program with NN_BLAS_CORETYPE=Prescott and without
 * --compare-fallback; returns the child's exit status (or -1). The new
 * environment is built before spawning: the parent already runs BLAS
 * threads, so nothing but exec may happen in the child. */
static int run_fallback(int argc, char **argv)
{
    size_t nenv = 0;
    while (environ[nenv])
        nenv++;
    char **envp = calloc(nenv + 2, sizeof *envp);
    char **args = calloc((size_t)argc + 1, sizeof *args);
    int rc = -1;
    if (!envp || !args)
        goto done;
    size_t e = 0;
    for (size_t i = 0; i < nenv; i++)
        if (strncmp(environ[i], "NN_BLAS_CORETYPE=", 17) != 0)
            envp[e++] = environ[i];
    envp[e++] = "NN_BLAS_CORETYPE=Prescott";
    int a = 0;
    for (int i = 0; i < argc; i++)
        if (strcmp(argv[i], "--compare-fallback") != 0)
            args[a++] = argv[i];

    fflush(stdout);
    pid_t pid;
    /* /proc/self/exe: argv[0] need not be a path we can exec. */
    int err = posix_spawn(&pid, "/proc/self/exe", NULL, NULL, args, envp);
    if (err) {
        fprintf(stderr, "bench_sgemm: cannot re-exec for the fallback: %s\n",
                strerror(err));
        goto done;
    }
    int st;
    if (waitpid(pid, &st, 0) == pid && WIFEXITED(st))
        rc = WEXITSTATUS(st);
done:
    free(envp);
    free(args);
    return rc;
}

/* ---- main ------------------------------------------------------------- */

static void usage(void)
{
    fprintf(stderr, "usage: bench_sgemm [--n 2048] [--threads 2] [--reps 5] "
                    "[--compare-fallback]\n");
}

int main(int argc, char **argv)
{
    int n = 2048, threads = 2, reps = 5, fallback = 0;
    for (int i = 1; i < argc; i++) {
        int *dst = NULL, lo = 1, hi = 1;
        if (strcmp(argv[i], "--n") == 0)
            dst = &n, hi = 16384;
        else if (strcmp(argv[i], "--threads") == 0)
            dst = &threads, hi = 1024;
        else if (strcmp(argv[i], "--reps") == 0)
            dst = &reps, hi = 100000;
        else if (strcmp(argv[i], "--compare-fallback") == 0) {
            fallback = 1;
            continue;
        } else {
            usage();
            return 2;
        }
        if (i + 1 >= argc || bench_parse_int(argv[++i], lo, hi, dst) != 0) {
            usage();
            return 2;
        }
    }

    char err[NN_ERRLEN];
    if (nn_blas_init(err) != NN_OK) {
        fprintf(stderr, "bench_sgemm: %s\n", err);
        return 1;
    }
    nn_blas_set_threads(threads);
    char kernel[64];
    if (bench_blas_kernel(kernel, sizeof kernel) == 0)
        snprintf(kernel, sizeof kernel, "unknown");
    printf("blas: %s\n", nn_blas_info());

    size_t nn2 = (size_t)n * (size_t)n;
    size_t bytes = (nn2 * sizeof(float) + 63) / 64 * 64;
    float *A = aligned_alloc(64, bytes);
    float *B = aligned_alloc(64, bytes);
    float *C = aligned_alloc(64, bytes);
    if (!A || !B || !C) {
        fprintf(stderr, "bench_sgemm: out of memory for n=%d\n", n);
        free(A);
        free(B);
        free(C);
        return 1;
    }
    uint32_t seed = 0x12345678u;
    for (size_t i = 0; i < nn2; i++) {
        A[i] = rand_unit(&seed);
        B[i] = rand_unit(&seed);
    }
    memset(C, 0, bytes);

    int rc = 0;
    if (nn_gemm(0, 0, n, n, n, 1.0f, A, n, B, n, 0.0f, C, n) != NN_OK) {
        fprintf(stderr, "bench_sgemm: nn_gemm failed\n");
        rc = 1;
        goto out;
    }
    double best = INFINITY, sum = 0.0;
    for (int r = 0; r < reps; r++) {
        double t0 = bench_now_s();
        nn_gemm(0, 0, n, n, n, 1.0f, A, n, B, n, 0.0f, C, n);
        double t = bench_now_s() - t0;
        sum += t;
        if (t < best)
            best = t;
    }

    /* Spot check 16 entries against a double dot product, so a fast but
     * wrong kernel cannot pass unnoticed. */
    double max_rel = 0.0;
    for (int s = 0; s < 16; s++) {
        size_t i = (size_t)(s * 7919) % (size_t)n, j = (size_t)(s * 104729) % (size_t)n;
        double ref = 0.0, mag = 0.0;
        for (size_t k = 0; k < (size_t)n; k++) {
            ref += (double)A[i * (size_t)n + k] * (double)B[k * (size_t)n + j];
            mag += fabs((double)A[i * (size_t)n + k] * (double)B[k * (size_t)n + j]);
        }
        double rel = fabs((double)C[i * (size_t)n + j] - ref) / (mag > 0 ? mag : 1.0);
        if (rel > max_rel)
            max_rel = rel;
    }

    double flop = 2.0 * (double)n * (double)n * (double)n;
    printf("sgemm %dx%dx%d, %d threads, %d reps: best %.4f s, avg %.4f s, "
           "spot-check rel err %.1e\n",
           n, n, n, threads, reps, best, sum / reps, max_rel);
    printf("bench=sgemm n=%d threads=%d gflops=%.1f gflops_avg=%.1f kernel=%s\n",
           n, threads, flop / best * 1e-9, flop / (sum / reps) * 1e-9, kernel);
    if (max_rel > 1e-3) {
        fprintf(stderr, "bench_sgemm: result check failed (rel err %.2e)\n", max_rel);
        rc = 1;
    }

out:
    free(A);
    free(B);
    free(C);
    if (rc == 0 && fallback && run_fallback(argc, argv) != 0)
        rc = 1;
    return rc;
}
