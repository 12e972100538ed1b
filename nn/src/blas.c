/* blas.c: run-time selection and loading of OpenBLAS, and nn_gemm on top.
 *
 * Why dlopen and not a link: OpenBLAS chooses its kernel once, in a library
 * constructor, from the CPU or from OPENBLAS_CORETYPE. Debian's 0.3.21 does
 * not know AMD Zen 4/5 and picks a generic SSE3 kernel there (34 GFLOP/s
 * instead of ~190 on 2 cores). Linking would run that constructor before any
 * of our code; loading by hand lets us look at the CPU first and set the
 * variable to the best family it supports. Not a general BLAS abstraction:
 * OpenBLAS's cblas_{s,d}gemm and its thread/kernel queries, nothing more. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "nn/blas.h"
#include "internal.h"

enum { ROW_MAJOR = 101, NO_TRANS = 111, TRANS = 112 };

typedef void (*sgemm_fn)(int, int, int, int, int, int, float, const float *,
                         int, const float *, int, float, float *, int);
typedef void (*dgemm_fn)(int, int, int, int, int, int, double, const double *,
                         int, const double *, int, double, double *, int);

static struct {
    pthread_once_t once;
    void *lib;
    sgemm_fn sgemm;
    dgemm_fn dgemm;
    void (*set_threads)(int);
    int (*get_threads)(void);
    char *(*corename)(void);
    char *(*config)(void);
    char why[128];
    char info[NN_ERRLEN + 64];
    char err[NN_ERRLEN];
} blas = { .once = PTHREAD_ONCE_INIT };

/* The OpenBLAS kernel family for this CPU, or NULL to let OpenBLAS decide.
 * AVX-512 (F, BW, DQ, VL) means SkylakeX's kernels run; AVX2 + FMA means
 * Haswell's. Both are what OpenBLAS itself picks on CPUs it knows. */
static const char *best_coretype(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
        return "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return "Haswell";
#endif
    return NULL;
}

/* Kernel families ranked, to tell whether an inherited setting is weaker
 * than what the CPU supports. */
static int rank(const char *core)
{
    static const char *const order[] = { "Prescott", "Nehalem", "Sandybridge",
                                         "Haswell", "Zen", "SkylakeX",
                                         "Cooperlake", "SapphireRapids" };
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++)
        if (core && strcasecmp(core, order[i]) == 0)
            return (int)i;
    return -1;
}

static void load(void)
{
    /* Policy: NN_BLAS_CORETYPE, if set, wins (the user's explicit choice for
     * this library). Otherwise we set OPENBLAS_CORETYPE to the best family
     * the CPU runs, also over an inherited weaker value: some hosts export
     * OPENBLAS_CORETYPE=Haswell for other programs' old OpenBLAS builds, and
     * we must not run at half speed for that. We only ever raise it to a
     * family the CPU verifiably supports. */
    const char *forced = getenv("NN_BLAS_CORETYPE");
    const char *inherited = getenv("OPENBLAS_CORETYPE");
    const char *best = best_coretype();
    if (forced && *forced) {
        setenv("OPENBLAS_CORETYPE", forced, 1);
        snprintf(blas.why, sizeof blas.why, "forced by NN_BLAS_CORETYPE");
    } else if (best && (!inherited || rank(inherited) < rank(best))) {
        setenv("OPENBLAS_CORETYPE", best, 1);
        snprintf(blas.why, sizeof blas.why, "chosen: cpu has %s%s%s",
                 strcmp(best, "SkylakeX") == 0 ? "AVX-512" : "AVX2",
                 inherited ? ", was " : "", inherited ? inherited : "");
    } else {
        snprintf(blas.why, sizeof blas.why, "%s",
                 inherited ? "from OPENBLAS_CORETYPE" : "OpenBLAS's own choice");
    }

    static const char *const names[] = { "libopenblas.so.0", "libopenblas.so" };
    for (size_t i = 0; i < 2 && !blas.lib; i++)
        blas.lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!blas.lib) {
        snprintf(blas.err, sizeof blas.err,
                 "cannot load OpenBLAS (libopenblas.so.0): %s; install libopenblas0",
                 dlerror());
        snprintf(blas.info, sizeof blas.info, "none (%s)", blas.err);
        return;
    }
    /* POSIX allows this cast from void * to a function pointer. */
    *(void **)&blas.sgemm = dlsym(blas.lib, "cblas_sgemm");
    *(void **)&blas.dgemm = dlsym(blas.lib, "cblas_dgemm");
    *(void **)&blas.set_threads = dlsym(blas.lib, "openblas_set_num_threads");
    *(void **)&blas.get_threads = dlsym(blas.lib, "openblas_get_num_threads");
    *(void **)&blas.corename = dlsym(blas.lib, "openblas_get_corename");
    *(void **)&blas.config = dlsym(blas.lib, "openblas_get_config");
    if (!blas.sgemm || !blas.dgemm) {
        snprintf(blas.err, sizeof blas.err,
                 "libopenblas.so.0 lacks cblas_sgemm/cblas_dgemm");
        snprintf(blas.info, sizeof blas.info, "none (%s)", blas.err);
        blas.sgemm = NULL;
        blas.dgemm = NULL;
        return;
    }
    char cfg[96] = "OpenBLAS";
    if (blas.config) {
        /* "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Zen MAX_THREADS=64":
         * keep the first two words. */
        const char *c = blas.config();
        int words = 0;
        size_t n = 0;
        while (c[n] && n < sizeof cfg - 1 && !(c[n] == ' ' && ++words == 2))
            n++;
        memcpy(cfg, c, n);
        cfg[n] = 0;
    }
    snprintf(blas.info, sizeof blas.info, "%s (kernel %s, %s)", cfg,
             blas.corename ? blas.corename() : "?", blas.why);
}

nn_status nn_blas_init(char *err)
{
    pthread_once(&blas.once, load);
    if (!blas.sgemm)
        return nn_fail(err, NN_ERR_UNSUPPORTED, "%s", blas.err);
    return NN_OK;
}

const char *nn_blas_info(void)
{
    pthread_once(&blas.once, load);
    return blas.info;
}

void nn_blas_set_threads(int threads)
{
    pthread_once(&blas.once, load);
    if (threads > 0 && blas.set_threads)
        blas.set_threads(threads);
}

nn_status nn_gemm(int trans_a, int trans_b, int M, int N, int K, nn_real alpha,
                  const nn_real *A, int lda, const nn_real *B, int ldb,
                  nn_real beta, nn_real *C, int ldc)
{
    pthread_once(&blas.once, load);
    if (M < 0 || N < 0 || K < 0 || !A || !B || !C)
        return NN_ERR_ARG;
#ifdef NN_DOUBLE
    if (!blas.dgemm)
        return NN_ERR_UNSUPPORTED;
    blas.dgemm(ROW_MAJOR, trans_a ? TRANS : NO_TRANS, trans_b ? TRANS : NO_TRANS,
               M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#else
    if (!blas.sgemm)
        return NN_ERR_UNSUPPORTED;
    blas.sgemm(ROW_MAJOR, trans_a ? TRANS : NO_TRANS, trans_b ? TRANS : NO_TRANS,
               M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#endif
    return NN_OK;
}
