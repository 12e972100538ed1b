/* serve.h: inference on the device workers. HTTP threads decode and
 * normalise an input, queue it for the worker that owns the model's device
 * and wait; the worker answers the queue between two minibatches of a
 * training job, or at once when it has none, batching the requests that
 * arrived together into one forward pass per model. Models are loaded on
 * the worker (nn_model_load, best-validation weights) and kept in a small
 * per-device LRU cache, reloaded when a newer checkpoint is asked for.
 *
 * Evaluations (test accuracy, per-class accuracy, confusion matrix) run on
 * the worker too, a slice of images at a time so that inference and
 * training keep going, and are written to the store.
 *
 * HTTP threads never touch a device: everything that does runs in
 * serve_worker_run / serve_worker_stop, on the worker's thread. */
#ifndef CONVNETD_SERVE_H
#define CONVNETD_SERVE_H

#include <stddef.h>

#include <nn/backend.h>
#include <nn/tensor.h>

#include "app.h"
#include "models.h"
#include "store.h"

#define SERVE_MAX_BATCH 64         /* images per forward pass and per request */
#define SERVE_QUEUE_MAX 512        /* requests queued per device; beyond: SERVE_FULL */
#define SERVE_CACHE_MODELS 4       /* models kept loaded per device (LRU) */
#define SERVE_TIMEOUT_MS 30000     /* how long an HTTP thread waits for its answer */
#define SERVE_EVAL_SLICE 1024      /* images evaluated between two looks at the queue */
#define SERVE_EVAL_MAX_CLASSES 1000  /* a confusion matrix larger than this is refused */
#define SERVE_EVAL_QUEUE_MAX 64    /* evaluations waiting, all devices */

typedef struct serve serve;

/* The queues for a's devices (a->ndevices, a->jobs to wake workers).
 * Never fails. */
serve *serve_create(app *a);
/* Frees s. Every worker must have called serve_worker_stop and no HTTP
 * thread may be inside serve_*. NULL is a no-op. */
void serve_free(serve *s);

typedef enum serve_rc {
    SERVE_OK = 0,
    SERVE_FULL,          /* the device's queue is full: 503, try again */
    SERVE_TIMEOUT,       /* no answer within the timeout: the device is busy */
    SERVE_UNAVAILABLE,   /* the daemon is stopping or the device has no worker */
    SERVE_FAILED         /* the worker could not run it (err says why) */
} serve_rc;

/* ---- HTTP side ---- */

/* Runs the model m on x: n images (1..SERVE_MAX_BATCH) of m->c x m->h x
 * m->w, normalised as training normalised them, row-major (N,C,H,W).
 * scores (n * m->num_classes floats) receives the class scores (logits).
 * Blocks up to timeout_ms. x and scores are borrowed for the call only
 * (the request keeps its own copies, so a timed-out request never writes
 * into the caller's memory). err (errlen bytes) explains failures.
 * Thread-safe. */
serve_rc serve_infer(serve *s, const model_meta *m, const nn_real *x, int n, float *scores,
                     int timeout_ms, char *err, size_t errlen);

typedef enum serve_eval_state {
    SERVE_EVAL_NONE = 0,   /* not queued, not running (done, or never asked) */
    SERVE_EVAL_QUEUED,
    SERVE_EVAL_RUNNING,
    SERVE_EVAL_FAILED      /* the last attempt failed: error says why */
} serve_eval_state;

typedef struct serve_eval_status {
    serve_eval_state state;
    long done, total;      /* images, while running */
    char error[512];
} serve_eval_status;

/* Queues the evaluation of job id's checkpoint at path on device, unless
 * one is queued or running already, and reports its state in *st. A failed
 * one is reported once (SERVE_EVAL_FAILED), then forgotten, so the next call
 * queues it again. SERVE_OK, SERVE_FULL (too many evaluations waiting) or
 * SERVE_UNAVAILABLE. Thread-safe; the worker itself calls it after a job
 * succeeds. */
serve_rc serve_evaluate(serve *s, int device, long id, const char *path,
                        serve_eval_status *st);

/* The state of job id's evaluation without queueing anything. */
void serve_eval_status_get(serve *s, long id, serve_eval_status *st);

/* Waits up to timeout_ms until job id's evaluation is neither queued nor
 * running; returns its final state (NONE = done and stored, FAILED with the
 * error, or still QUEUED / RUNNING after the timeout), and consumes a
 * failure as serve_evaluate does. */
serve_eval_state serve_eval_wait(serve *s, long id, int timeout_ms, serve_eval_status *st);

/* Admission for decoding uploaded images, so that concurrent uploads
 * cannot together hold more pixel memory than a bound: an image of more
 * than SERVE_BIG_IMAGE_PIXELS (known from its header) waits until fewer than
 * SERVE_BIG_DECODES big ones are being decoded. Small images pass at once.
 * Returns 0 (call serve_decode_leave with the same pixels afterwards) or -1
 * after timeout_ms. Thread-safe. */
#define SERVE_BIG_IMAGE_PIXELS ((unsigned long long)1 << 20)
#define SERVE_BIG_DECODES 2
int serve_decode_enter(serve *s, unsigned long long pixels, int timeout_ms);
void serve_decode_leave(serve *s, unsigned long long pixels);

/* p[0..k) = softmax(scores[0..k)), computed stably (max subtracted, in
 * double). Pure. */
void serve_softmax(float *p, const float *scores, int k);

/* Counters for /metrics. */
typedef struct serve_stats {
    unsigned long long requests, images, batches, rejected_full, timeouts, failures;
    unsigned long long model_loads, evaluations;
    int queued;            /* requests waiting now, all devices */
    int loaded;            /* models loaded now, all devices */
} serve_stats;
void serve_stats_get(serve *s, serve_stats *out);

/* ---- worker side (the device's own thread) ---- */

/* 1 when device has inference requests or evaluations waiting. */
int serve_worker_pending(serve *s, int device);

/* Answers device's queued requests with backend b (NULL: the device is
 * unusable; requests fail) and advances its evaluation by a slice, writing
 * results through db (the worker's store). idle = 0 (between minibatches):
 * one round; idle = 1 (no job): until nothing is left. */
void serve_worker_run(serve *s, int device, nn_backend *b, store *db, int idle);

/* The worker is leaving: fails device's waiting requests and evaluations
 * (SERVE_UNAVAILABLE), refuses new ones, and frees its loaded models (before
 * the caller frees b). */
void serve_worker_stop(serve *s, int device);

#endif
