/* bench_common.h: small helpers the benchmarks share: a monotonic clock,
 * strict integer parsing, the OpenBLAS kernel nn chose, and starting a
 * PyTorch peer script as a child process with the same BLAS kernel and
 * thread count. Benchmark plumbing only: nothing here belongs in nn/. */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include <stddef.h>
#include <stdio.h>

/* The interpreter Debian's python3-torch is built for. */
#define BENCH_PYTHON "/usr/bin/python3"

/* Seconds on CLOCK_MONOTONIC. */
double bench_now_s(void);

/* Parses all of s as a decimal integer in [lo, hi] into *out; 0 on success,
 * -1 (and *out untouched) otherwise. */
int bench_parse_int(const char *s, int lo, int hi, int *out);

/* The OpenBLAS kernel name out of nn_blas_info()'s "... (kernel NAME, ...)"
 * into out (cap bytes, always terminated when cap > 0); "" when the BLAS is
 * not loaded or names no kernel. Returns the name's length. */
size_t bench_blas_kernel(char *out, size_t cap);

/* Starts `BENCH_PYTHON script args` with stdout and stderr on the returned
 * pipe, OMP_NUM_THREADS=threads and OPENBLAS_CORETYPE set to the kernel nn
 * runs (when known) in its environment: Debian's OpenBLAS inside PyTorch
 * would otherwise take the host's setting or fall back to SSE3, which is no
 * fair baseline. args is pasted into a shell command line and must come
 * from the program, not from a user. Returns NULL with a reason in why
 * (whylen bytes) when the interpreter or script is missing or the pipe
 * cannot be opened. Close with bench_python_close(). */
FILE *bench_python_open(const char *script, const char *args, int threads,
                        char *why, size_t whylen);

/* Closes a pipe from bench_python_open(); the child's exit status, or -1
 * when it did not exit normally. */
int bench_python_close(FILE *p);

#endif
