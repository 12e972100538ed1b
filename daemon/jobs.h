/* jobs.h: the job manager: job states, the queue of each device, the
 * requests (cancel, pause, resume) that reach a running job between two
 * minibatches, and live progress.
 *
 * The store holds every job; this module holds only the active ones
 * (queued or running) plus, for a running job, its latest progress and any
 * pending request. All state is behind one mutex. The rule that keeps the
 * store and memory consistent: a job's store row is written by its owner,
 * the worker while the job is running, else the thread that changes its
 * state here under the mutex. HTTP threads call submit/cancel/pause/resume
 * and the read functions; worker i calls next/report/finish for device i. */
#ifndef CONVNETD_JOBS_H
#define CONVNETD_JOBS_H

#include <cjson/cJSON.h>

#include "app.h"
#include "store.h"

typedef enum job_state {
    JOB_QUEUED, JOB_RUNNING, JOB_PAUSED, JOB_SUCCEEDED, JOB_FAILED, JOB_CANCELLED,
    JOB_NSTATES
} job_state;

/* "queued", ... and back; parse returns -1 for an unknown name. */
const char *job_state_name(job_state s);
int job_state_parse(const char *s);
/* succeeded, failed, cancelled. */
int job_state_terminal(job_state s);

/* A job's progress as the API shows it. Unknown values: loss NAN,
 * accuracies and eta -1. */
typedef struct job_progress {
    long iteration, num_iterations;
    int epoch, num_epochs;
    double loss, learning_rate;
    double train_acc, val_acc, best_val_acc;
    double elapsed_s, images_per_s, eta_s;
} job_progress;

/* An empty progress for a job of num_iterations / num_epochs. */
void job_progress_init(job_progress *p, long num_iterations, int num_epochs);
/* {"iteration":...,"eta_s":...} with nulls for unknowns. Caller owns it. */
cJSON *job_progress_json(const job_progress *p);
/* The reverse, for rows from the store; missing fields stay unknown. */
void job_progress_parse(job_progress *p, const char *json);

/* What a worker is asked to do at its next check. */
typedef enum job_want {
    JOB_WANT_NONE = 0,
    JOB_WANT_PAUSE,      /* checkpoint, status paused, release the device */
    JOB_WANT_CANCEL,     /* status cancelled */
    JOB_WANT_STOP        /* the daemon stops: checkpoint, stay running */
} job_want;

typedef enum jobs_rc {
    JOBS_OK = 0,
    JOBS_PENDING,        /* asked of a running job; it acts between minibatches */
    JOBS_NOTFOUND,
    JOBS_CONFLICT,       /* the transition is impossible from the job's state */
    JOBS_FULL,           /* max-queued jobs are waiting already */
    JOBS_ERROR           /* the store failed (logged) */
} jobs_rc;

typedef struct jobs jobs;

/* A manager for a->ndevices device queues. Never fails. */
jobs *jobs_create(app *a);
void jobs_free(jobs *jm);

/* At start-up, before workers and HTTP: puts every job the store has as
 * running or queued back in its device's queue, running ones first. A job
 * whose device is gone is re-resolved when it asked for "auto", else
 * failed. Returns the number queued, or -1 on a store error. */
int jobs_recover(jobs *jm, store *db);

/* ---- HTTP side; db is the caller's store ---- */

/* Inserts a queued job and wakes device's worker. *id gets its id.
 * JOBS_OK, JOBS_FULL or JOBS_ERROR. */
jobs_rc jobs_submit(jobs *jm, store *db, const char *name, const char *spec, int device,
                    const char *progress, long *id);

/* State changes a client asks for. queued/paused jobs change at once
 * (JOBS_OK); a running one gets the request and JOBS_PENDING (wait with
 * jobs_wait_idle). JOBS_CONFLICT when impossible, JOBS_NOTFOUND, JOBS_ERROR.
 * cancel: queued, running, paused -> cancelled. pause: queued, running ->
 * paused. resume: paused -> queued. */
jobs_rc jobs_cancel(jobs *jm, store *db, long id);
jobs_rc jobs_pause(jobs *jm, store *db, long id);
jobs_rc jobs_resume(jobs *jm, store *db, long id);

/* Waits up to timeout_ms until job id is no longer running, or the daemon
 * stops. Returns 1 when it is not running (any more), 0 otherwise. */
int jobs_wait_idle(jobs *jm, long id, int timeout_ms);

/* If job id is active, its state (queued or running) into *state and, for
 * a running job that has reported, its progress into *p; returns 1. 0 when
 * the job is not active (the store is the truth then). */
int jobs_live(jobs *jm, long id, job_state *state, job_progress *p, int *has_progress);

/* Blocks up to timeout_ms for any change (progress, state, metrics written)
 * after the change counter `seen`; returns the current counter. Returns at
 * once when the daemon is stopping. */
unsigned long jobs_wait_change(jobs *jm, unsigned long seen, int timeout_ms);

/* Tells listeners (SSE streams) that something changed, e.g. metrics were
 * committed. */
void jobs_notify(jobs *jm);

/* 1 once jobs_shutdown was called. */
int jobs_stopping(jobs *jm);

/* For /metrics: iterations run by this process, the sum of running jobs'
 * images/s. */
void jobs_stats(jobs *jm, long long *iterations, double *images_per_s);

/* ---- worker side ---- */

/* Blocks until device's queue has a job, marks it running and returns its
 * id; returns 0 once the daemon stops, and -1 when jobs_wake woke it with
 * no job queued (other work: inference requests, serve.h). A queued job
 * comes first, so that a stream of requests cannot starve training; the
 * worker answers requests between its minibatches anyway. */
long jobs_next(jobs *jm, int device);

/* Wakes device's worker for work that is not a job: its jobs_next returns
 * -1, at once when it is waiting, else the next time it is called. Cheap;
 * thread-safe. */
void jobs_wake(jobs *jm, int device);

/* Records the running job's progress and returns what it should do now. */
job_want jobs_report(jobs *jm, int device, const job_progress *p);

/* The running job's pending request, without reporting. */
job_want jobs_want(jobs *jm, int device);

/* The worker is done with its job, which is now in state (its store row is
 * written already; JOB_RUNNING when the daemon stops and it stays running). */
void jobs_finish(jobs *jm, int device, long id, job_state state);

/* Asks every running job to stop, wakes every waiter; jobs_next returns 0
 * from now on. */
void jobs_shutdown(jobs *jm);

#endif
