/* testcore.c: RNG, CHECK bookkeeping and summaries for the test programs.
 * Not part of nn; exits on allocation failure because a test cannot go on. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include "testcore.h"

static int nfail;

void tu_rng_seed(tu_rng *r, uint64_t seed)
{
    r->state = seed ? seed : 0x9E3779B97F4A7C15ull;
}

uint64_t tu_rng_u64(tu_rng *r)
{
    r->state ^= r->state >> 12;
    r->state ^= r->state << 25;
    r->state ^= r->state >> 27;
    return r->state * 0x2545F4914F6CDD1Dull;
}

double tu_rng_uniform(tu_rng *r)
{
    return (double)(tu_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
}

double tu_rng_gauss(tu_rng *r)
{
    double u1 = tu_rng_uniform(r), u2 = tu_rng_uniform(r);
    if (u1 < 1e-300)
        u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

int tu_rng_int(tu_rng *r, int n)
{
    return (int)(tu_rng_u64(r) % (uint64_t)n);
}

int tu_check(int ok, const char *file, int line, const char *fmt, ...)
{
    if (ok)
        return 1;
    nfail++;
    fprintf(stderr, "FAIL %s:%d: ", file, line);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 0;
}

static int check_cmp(const char *file, int line, const char *what, double v,
                     double tol, int ok, const char *op)
{
    printf("  %-44s %.3e (%s %.0e) %s\n", what, v, op, tol, ok ? "ok" : "FAIL");
    return tu_check(ok, file, line, "%s = %.6e, want %s %.1e", what, v, op, tol);
}

int tu_check_lt(const char *file, int line, const char *what, double value, double tol)
{
    return check_cmp(file, line, what, value, tol, value < tol, "<");
}

int tu_check_le(const char *file, int line, const char *what, double value, double tol)
{
    return check_cmp(file, line, what, value, tol, value <= tol, "<=");
}

int tu_failures(void)
{
    return nfail;
}

int tu_finish(const char *name)
{
    if (nfail)
        printf("%s: %d check(s) FAILED\n", name, nfail);
    else
        printf("%s: all checks passed\n", name);
    fflush(stdout);
    return nfail ? 1 : 0;
}

void *tu_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) {
        fprintf(stderr, "test: out of memory (%zu x %zu bytes)\n", n, size);
        exit(2);
    }
    return p;
}
