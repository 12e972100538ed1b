/* testcore.h: the part of the test helpers that does not depend on nn_real:
 * a seeded xorshift RNG (never rand()), the CHECK macro that records failures
 * and the end-of-test summary. Test code, so it may print and it keeps one
 * failure counter per test executable. */
#ifndef NN_TESTCORE_H
#define NN_TESTCORE_H

#include <stdint.h>

/* xorshift64* (as llm.c's random_u32). A zero seed is remapped. */
typedef struct tu_rng {
    uint64_t state;
} tu_rng;

void tu_rng_seed(tu_rng *r, uint64_t seed);
uint64_t tu_rng_u64(tu_rng *r);
/* Uniform in [0, 1), 53 random bits. */
double tu_rng_uniform(tu_rng *r);
/* Standard normal (Box-Muller). */
double tu_rng_gauss(tu_rng *r);
/* Uniform integer in [0, n), n >= 1. */
int tu_rng_int(tu_rng *r, int n);

/* Records a failure and prints "FAIL file:line: message" when !ok. Returns
 * ok, so a caller can skip dependent checks. */
int tu_check(int ok, const char *file, int line, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
#define CHECK(cond, ...) tu_check((cond) ? 1 : 0, __FILE__, __LINE__, __VA_ARGS__)

/* Prints "  what: value (< tol) ok|FAIL" and records a failure unless
 * value < tol (a NaN value fails). */
#define CHECK_LT(what, value, tol) tu_check_lt(__FILE__, __LINE__, (what), (value), (tol))
int tu_check_lt(const char *file, int line, const char *what, double value, double tol);
/* Same with value <= tol. */
#define CHECK_LE(what, value, tol) tu_check_le(__FILE__, __LINE__, (what), (value), (tol))
int tu_check_le(const char *file, int line, const char *what, double value, double tol);

/* Failures recorded so far. */
int tu_failures(void);

/* Prints a one-line summary for the test named `name`; returns the process
 * exit code (0 when no check failed). */
int tu_finish(const char *name);

/* calloc that ends the test on failure (test code: no recovery wanted). */
void *tu_xcalloc(size_t n, size_t size);

#endif
