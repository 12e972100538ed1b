/* testutil.c: nn_real helpers for the tests (double build). */
#include <math.h>
#include <stdlib.h>
#include "testutil.h"

#define SENTINEL ((nn_real)-7.0e33)

void tu_fill_uniform(tu_rng *r, nn_real *x, size_t n, double lo, double hi)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (nn_real)(lo + (hi - lo) * tu_rng_uniform(r));
}

void tu_fill_gauss(tu_rng *r, nn_real *x, size_t n, double mean, double std)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (nn_real)(mean + std * tu_rng_gauss(r));
}

void tu_fill_distinct(tu_rng *r, nn_real *x, size_t n, double lo, double hi)
{
    size_t *perm = tu_xcalloc(n, sizeof *perm);
    for (size_t i = 0; i < n; i++)
        perm[i] = i;
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)(tu_rng_u64(r) % i);
        size_t t = perm[i - 1];
        perm[i - 1] = perm[j];
        perm[j] = t;
    }
    /* slot k holds a value in [k + 0.25, k + 0.75) * width: gaps >= width/2 */
    double width = (hi - lo) / (double)n;
    for (size_t i = 0; i < n; i++)
        x[i] = (nn_real)(lo + ((double)perm[i] + 0.25 + 0.5 * tu_rng_uniform(r)) * width);
    free(perm);
}

void tu_fill_const(nn_real *x, size_t n, double v)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (nn_real)v;
}

double tu_rel_error(const nn_real *x, const nn_real *y, size_t n)
{
    double worst = 0.0;
    for (size_t i = 0; i < n; i++) {
        double a = (double)x[i], b = (double)y[i];
        double den = fabs(a) + fabs(b);
        double e = fabs(a - b) / (den > 1e-8 ? den : 1e-8);
        if (e != e)
            return e;
        if (e > worst)
            worst = e;
    }
    return worst;
}

double tu_max_abs_diff(const nn_real *x, const nn_real *y, size_t n)
{
    double worst = 0.0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)x[i] - (double)y[i]);
        if (e != e)
            return e;
        if (e > worst)
            worst = e;
    }
    return worst;
}

double tu_max_abs(const nn_real *x, size_t n)
{
    double worst = 0.0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)x[i]);
        if (e != e)
            return e;
        if (e > worst)
            worst = e;
    }
    return worst;
}

void tu_numeric_grad(nn_real *grad, nn_real *x, size_t n, tu_scalar_fn f,
                     void *ctx, double h)
{
    for (size_t i = 0; i < n; i++) {
        nn_real old = x[i];
        nn_real hi = (nn_real)((double)old + h);
        nn_real lo = (nn_real)((double)old - h);
        x[i] = hi;
        double fp = f(ctx);
        x[i] = lo;
        double fm = f(ctx);
        x[i] = old;
        /* the stored step, not 2h: old +- h is rounded when stored */
        grad[i] = (nn_real)((fp - fm) / ((double)hi - (double)lo));
    }
}

double tu_dot_delta(const nn_real *y, const nn_real *y0, const nn_real *g, size_t n)
{
    long double s = 0.0L;
    for (size_t i = 0; i < n; i++)
        s += ((long double)y[i] - (long double)y0[i]) * (long double)g[i];
    return (double)s;
}

nn_real *tu_alloc(size_t n)
{
    return tu_xcalloc(n, sizeof(nn_real));
}

nn_real *tu_alloc_guarded(size_t n)
{
    nn_real *p = tu_xcalloc(n + TU_GUARD, sizeof(nn_real));
    for (size_t i = 0; i < TU_GUARD; i++)
        p[n + i] = SENTINEL;
    return p;
}

int tu_guard_intact(const nn_real *p, size_t n)
{
    for (size_t i = 0; i < TU_GUARD; i++)
        if (p[n + i] != SENTINEL)
            return 0;
    return 1;
}
