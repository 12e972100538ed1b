/* threadpool.c: a fork-join pool for the CPU backend: run one function on
 * every thread (the caller is thread 0) and wait for all. Workers spin for
 * a few microseconds after a task, since the next one usually follows at
 * once inside a training step, then sleep on a condition variable, so an
 * idle daemon costs no CPU. Not a general task queue. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include "threadpool.h"

#define SPIN 20000 /* polls before sleeping: tens of microseconds */

struct nn_threadpool {
    int n;
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t work, done;
    atomic_uint gen;          /* bumped once per task */
    atomic_int pending;       /* workers still running the task */
    atomic_int stop;
    nn_task_fn fn;
    void *ctx;
};

typedef struct worker_arg {
    nn_threadpool *p;
    int tid;
} worker_arg;

static inline void relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void *worker(void *arg)
{
    worker_arg *wa = arg;
    nn_threadpool *p = wa->p;
    const int tid = wa->tid;
    free(wa);
    unsigned seen = 0;
    for (;;) {
        for (int i = 0; i < SPIN && atomic_load_explicit(&p->gen, memory_order_acquire) == seen &&
                        !atomic_load(&p->stop); i++)
            relax();
        if (atomic_load_explicit(&p->gen, memory_order_acquire) == seen) {
            pthread_mutex_lock(&p->mu);
            while (atomic_load(&p->gen) == seen && !atomic_load(&p->stop))
                pthread_cond_wait(&p->work, &p->mu);
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->stop))
            return NULL;
        seen = atomic_load_explicit(&p->gen, memory_order_acquire);
        p->fn(p->ctx, tid, p->n);
        if (atomic_fetch_sub_explicit(&p->pending, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->done);
            pthread_mutex_unlock(&p->mu);
        }
    }
}

nn_status nn_threadpool_create(nn_threadpool **out, int nthreads)
{
    *out = NULL;
    if (nthreads < 1)
        nthreads = 1;
    nn_threadpool *p = calloc(1, sizeof *p);
    if (!p)
        return NN_ERR_NOMEM;
    p->n = nthreads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work, NULL);
    pthread_cond_init(&p->done, NULL);
    p->threads = calloc((size_t)nthreads, sizeof(pthread_t));
    if (!p->threads)
        goto fail;
    for (int i = 1; i < nthreads; i++) {
        worker_arg *wa = malloc(sizeof *wa);
        if (!wa)
            goto fail;
        wa->p = p;
        wa->tid = i;
        if (pthread_create(&p->threads[i], NULL, worker, wa) != 0) {
            free(wa);
            goto fail;
        }
        p->n = i + 1; /* threads started so far, for cleanup */
    }
    p->n = nthreads;
    *out = p;
    return NN_OK;
fail:
    nn_threadpool_free(p);
    return NN_ERR_NOMEM;
}

void nn_threadpool_free(nn_threadpool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stop, 1);
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; p->threads && i < p->n; i++)
        if (p->threads[i])
            pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->work);
    pthread_cond_destroy(&p->done);
    free(p->threads);
    free(p);
}

int nn_threadpool_size(const nn_threadpool *p) { return p ? p->n : 1; }

void nn_threadpool_run(nn_threadpool *p, nn_task_fn fn, void *ctx)
{
    if (!p || p->n == 1) {
        fn(ctx, 0, 1);
        return;
    }
    p->fn = fn;
    p->ctx = ctx;
    atomic_store(&p->pending, p->n - 1);
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
    fn(ctx, 0, p->n);
    for (int i = 0; i < SPIN && atomic_load_explicit(&p->pending, memory_order_acquire) > 0; i++)
        relax();
    if (atomic_load_explicit(&p->pending, memory_order_acquire) > 0) {
        pthread_mutex_lock(&p->mu);
        while (atomic_load(&p->pending) > 0)
            pthread_cond_wait(&p->done, &p->mu);
        pthread_mutex_unlock(&p->mu);
    }
}

void nn_chunk(int n, int tid, int nthreads, int *lo, int *hi)
{
    int q = n / nthreads, r = n % nthreads;
    *lo = tid * q + (tid < r ? tid : r);
    *hi = *lo + q + (tid < r);
}
