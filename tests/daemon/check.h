/* check.h: the assertion macro of the daemon tests.
 *
 * CHECK records a failure with file, line and expression and carries on, so
 * one run reports every broken case; a test's main returns check_result().
 * Not a framework: no fixtures, no registration. */
#ifndef CONVNETD_TEST_CHECK_H
#define CONVNETD_TEST_CHECK_H

#include <stdio.h>

static int check_failures;

#define CHECK(cond)                                                              \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
            check_failures++;                                                    \
        }                                                                        \
    } while (0)

/* Like CHECK, with a printf-style note (the value that was wrong). */
#define CHECKF(cond, ...)                                                        \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                        \
            fputc('\n', stderr);                                                 \
            check_failures++;                                                    \
        }                                                                        \
    } while (0)

/* 0 when every check passed, else 1 (after a summary line). */
static inline int check_result(const char *name)
{
    if (check_failures == 0) {
        fprintf(stderr, "%s: all checks passed\n", name);
        return 0;
    }
    fprintf(stderr, "%s: %d check(s) failed\n", name, check_failures);
    return 1;
}

#endif
