/* testutil.h: nn_real helpers for the nn tests, built for double (nn_f64):
 * random fills, the CS231n error measures, and central-difference numeric
 * gradients. Reference kernels are NOT here: each test writes its own, so no
 * expected value ever comes from the code under test. */
#ifndef NN_TESTUTIL_H
#define NN_TESTUTIL_H

#include <stddef.h>
#include "nn/tensor.h"
#include "testcore.h"

/* The step of tu_numeric_grad the tests use unless a comment says why not. */
#define TU_GRAD_H 1e-6

void tu_fill_uniform(tu_rng *r, nn_real *x, size_t n, double lo, double hi);
void tu_fill_gauss(tu_rng *r, nn_real *x, size_t n, double mean, double std);
/* n distinct values in [lo, hi), shuffled, any two at least
 * (hi - lo) / (2n) apart: max-pool inputs without ties or near-ties. */
void tu_fill_distinct(tu_rng *r, nn_real *x, size_t n, double lo, double hi);
void tu_fill_const(nn_real *x, size_t n, double v);

/* max_i |x_i - y_i| / max(1e-8, |x_i| + |y_i|), as in CS231n / EECS498. */
double tu_rel_error(const nn_real *x, const nn_real *y, size_t n);
/* max_i |x_i - y_i| (NaN anywhere gives NaN, so a NaN fails every check). */
double tu_max_abs_diff(const nn_real *x, const nn_real *y, size_t n);
double tu_max_abs(const nn_real *x, size_t n);

/* grad[i] = (f(x + h e_i) - f(x - h e_i)) / step for i < n, computed in
 * double; step is the distance between the two stored points (2h up to
 * rounding). x is restored exactly. f evaluates the scalar through ctx and
 * must read x through the same memory. */
typedef double (*tu_scalar_fn)(void *ctx);
void tu_numeric_grad(nn_real *grad, nn_real *x, size_t n, tu_scalar_fn f,
                     void *ctx, double h);

/* sum_i (y_i - y0_i) * g_i in long double. With y0 the output at the
 * unperturbed point, f = tu_dot_delta(out, out0, dout) has the gradient of
 * sum(out * dout) while the outputs a step does not touch contribute an exact
 * 0 (CS231n's eval_numerical_gradient_array trick). */
double tu_dot_delta(const nn_real *y, const nn_real *y0, const nn_real *g, size_t n);

/* Zeroed host arrays. The guarded form adds TU_GUARD sentinel elements after
 * the n usable ones; tu_guard_intact() says whether a kernel wrote past n. */
#define TU_GUARD 16
nn_real *tu_alloc(size_t n);
nn_real *tu_alloc_guarded(size_t n);
int tu_guard_intact(const nn_real *p, size_t n);

#endif
