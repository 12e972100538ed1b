/* threadpool.h: the CPU backend's fork-join pool (private to nn). */
#ifndef NN_THREADPOOL_H
#define NN_THREADPOOL_H

#include "nn/status.h"

typedef struct nn_threadpool nn_threadpool;
/* Runs on every thread of a task; tid in 0..nthreads-1. */
typedef void (*nn_task_fn)(void *ctx, int tid, int nthreads);

/* A pool of nthreads (the caller counts as one: nthreads-1 are started). */
nn_status nn_threadpool_create(nn_threadpool **out, int nthreads);
void nn_threadpool_free(nn_threadpool *p);
int nn_threadpool_size(const nn_threadpool *p);
/* Runs fn(ctx, tid, n) on all n threads, the caller as tid 0, and returns
 * when every one has finished. One task at a time: not reentrant. */
void nn_threadpool_run(nn_threadpool *p, nn_task_fn fn, void *ctx);
/* The share [lo, hi) of n items for thread tid of nthreads. */
void nn_chunk(int n, int tid, int nthreads, int *lo, int *hi);

#endif
