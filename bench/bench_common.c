/* bench_common.c: the helpers of bench_common.h (clock, integer parsing,
 * the BLAS kernel name, PyTorch child processes). Shared by bench_sgemm,
 * bench_layers and bench_train; it links against whichever nn variant the
 * benchmark does (it only calls nn_blas_info()). */
#define _POSIX_C_SOURCE 200809L
#include "bench_common.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "nn/blas.h"

double bench_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int bench_parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

size_t bench_blas_kernel(char *out, size_t cap)
{
    if (cap == 0)
        return 0;
    const char *k = strstr(nn_blas_info(), "(kernel ");
    size_t n = 0;
    if (k) {
        k += strlen("(kernel ");
        /* The name is one word; the quote guards the shell command line
         * bench_python_open() pastes it into. */
        while (k[n] && k[n] != ',' && k[n] != ')' && k[n] != ' ' && k[n] != '\'' &&
               n + 1 < cap)
            n++;
        memcpy(out, k, n);
    }
    out[n] = 0;
    return n;
}

FILE *bench_python_open(const char *script, const char *args, int threads,
                        char *why, size_t whylen)
{
    if (access(BENCH_PYTHON, X_OK) != 0) {
        snprintf(why, whylen, "%s: %s", BENCH_PYTHON, strerror(errno));
        return NULL;
    }
    if (access(script, R_OK) != 0) {
        snprintf(why, whylen, "%s: %s", script, strerror(errno));
        return NULL;
    }
    if (strchr(script, '\'')) {
        snprintf(why, whylen, "script path has a quote: %s", script);
        return NULL;
    }
    char core[64];
    bench_blas_kernel(core, sizeof core);
    char cmd[2048];
    int n = snprintf(cmd, sizeof cmd, "%s%s OMP_NUM_THREADS=%d %s '%s' %s 2>&1",
                     core[0] ? "OPENBLAS_CORETYPE=" : "", core, threads, BENCH_PYTHON,
                     script, args ? args : "");
    if (n < 0 || (size_t)n >= sizeof cmd) {
        snprintf(why, whylen, "command line too long");
        return NULL;
    }
    fflush(stdout);
    FILE *p = popen(cmd, "r");
    if (!p)
        snprintf(why, whylen, "popen: %s", strerror(errno));
    return p;
}

int bench_python_close(FILE *p)
{
    int st = pclose(p);
    return st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}
