/* jobs.c: the job manager (see jobs.h): per-device FIFO queues, the running
 * job of each device with its pending request and progress, and the
 * condition variables workers and event streams wait on.
 *
 * Queues are short linked lists (max-queued bounds them), searched
 * linearly: a cancel walks at most a few hundred nodes. */
#include "jobs.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "util.h"

static const char *const state_names[JOB_NSTATES] = {
    [JOB_QUEUED] = "queued",       [JOB_RUNNING] = "running",
    [JOB_PAUSED] = "paused",       [JOB_SUCCEEDED] = "succeeded",
    [JOB_FAILED] = "failed",       [JOB_CANCELLED] = "cancelled",
};

const char *job_state_name(job_state s)
{
    return (unsigned)s < JOB_NSTATES ? state_names[s] : "failed";
}

int job_state_parse(const char *s)
{
    for (int i = 0; s != NULL && i < JOB_NSTATES; i++)
        if (strcmp(s, state_names[i]) == 0)
            return i;
    return -1;
}

int job_state_terminal(job_state s)
{
    return s == JOB_SUCCEEDED || s == JOB_FAILED || s == JOB_CANCELLED;
}

/* ---- progress ---- */

void job_progress_init(job_progress *p, long num_iterations, int num_epochs)
{
    memset(p, 0, sizeof *p);
    p->num_iterations = num_iterations;
    p->num_epochs = num_epochs;
    p->loss = NAN;
    p->learning_rate = NAN;
    p->train_acc = p->val_acc = p->best_val_acc = -1;
    p->eta_s = -1;
}

/* Adds a number, or null when v is unknown (NaN or negative). */
static void add_opt(cJSON *o, const char *key, double v, int negative_unknown)
{
    if (!isfinite(v) || (negative_unknown && v < 0))
        cJSON_AddNullToObject(o, key);
    else
        cJSON_AddNumberToObject(o, key, v);
}

cJSON *job_progress_json(const job_progress *p)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "iteration", (double)p->iteration);
    cJSON_AddNumberToObject(o, "num_iterations", (double)p->num_iterations);
    cJSON_AddNumberToObject(o, "epoch", p->epoch);
    cJSON_AddNumberToObject(o, "num_epochs", p->num_epochs);
    add_opt(o, "loss", p->loss, 0);
    add_opt(o, "learning_rate", p->learning_rate, 0);
    add_opt(o, "train_acc", p->train_acc, 1);
    add_opt(o, "val_acc", p->val_acc, 1);
    add_opt(o, "best_val_acc", p->best_val_acc, 1);
    cJSON_AddNumberToObject(o, "elapsed_s", p->elapsed_s);
    cJSON_AddNumberToObject(o, "images_per_s", p->images_per_s);
    add_opt(o, "eta_s", p->eta_s, 1);
    return o;
}

static double num_or(const cJSON *o, const char *key, double def)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : def;
}

void job_progress_parse(job_progress *p, const char *json)
{
    cJSON *o = json != NULL ? cJSON_Parse(json) : NULL;
    job_progress_init(p, 0, 0);
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return;
    }
    p->iteration = (long)num_or(o, "iteration", 0);
    p->num_iterations = (long)num_or(o, "num_iterations", 0);
    p->epoch = (int)num_or(o, "epoch", 0);
    p->num_epochs = (int)num_or(o, "num_epochs", 0);
    p->loss = num_or(o, "loss", NAN);
    p->learning_rate = num_or(o, "learning_rate", NAN);
    p->train_acc = num_or(o, "train_acc", -1);
    p->val_acc = num_or(o, "val_acc", -1);
    p->best_val_acc = num_or(o, "best_val_acc", -1);
    p->elapsed_s = num_or(o, "elapsed_s", 0);
    p->images_per_s = num_or(o, "images_per_s", 0);
    p->eta_s = num_or(o, "eta_s", -1);
    cJSON_Delete(o);
}

/* ---- the manager ---- */

typedef struct qnode {
    long id;
    struct qnode *next;
} qnode;

typedef struct run_slot {
    long id;                 /* 0: the device is idle */
    job_want want;
    job_progress p;
    int has_progress;
} run_slot;

struct jobs {
    app *a;
    pthread_mutex_t mu;
    pthread_cond_t work;     /* workers: a job was queued, or stop */
    pthread_cond_t change;   /* listeners: anything changed */
    unsigned long seq;       /* bumped with every broadcast on change */
    int stopping;
    int ndev;
    qnode *head[APP_MAX_DEVICES], *tail[APP_MAX_DEVICES];
    run_slot run[APP_MAX_DEVICES];
    int wake[APP_MAX_DEVICES];   /* jobs_wake was called; jobs_next returns -1 */
    int nqueued;
    long long iterations;
};

/* Both with the mutex held. */
static void changed(jobs *jm)
{
    jm->seq++;
    pthread_cond_broadcast(&jm->change);
}

static void enqueue(jobs *jm, int dev, long id)
{
    qnode *n = xcalloc(1, sizeof *n);
    n->id = id;
    if (jm->tail[dev] != NULL)
        jm->tail[dev]->next = n;
    else
        jm->head[dev] = n;
    jm->tail[dev] = n;
    jm->nqueued++;
    pthread_cond_broadcast(&jm->work);
    changed(jm);
}

/* Removes id from whichever queue holds it; 1 if it was queued. */
static int dequeue(jobs *jm, long id)
{
    for (int d = 0; d < jm->ndev; d++) {
        qnode *prev = NULL;
        for (qnode *n = jm->head[d]; n != NULL; prev = n, n = n->next) {
            if (n->id != id)
                continue;
            if (prev != NULL)
                prev->next = n->next;
            else
                jm->head[d] = n->next;
            if (jm->tail[d] == n)
                jm->tail[d] = prev;
            free(n);
            jm->nqueued--;
            return 1;
        }
    }
    return 0;
}

static int queued(const jobs *jm, long id)
{
    for (int d = 0; d < jm->ndev; d++)
        for (const qnode *n = jm->head[d]; n != NULL; n = n->next)
            if (n->id == id)
                return 1;
    return 0;
}

static run_slot *running(jobs *jm, long id)
{
    for (int d = 0; d < jm->ndev; d++)
        if (jm->run[d].id == id)
            return &jm->run[d];
    return NULL;
}

/* An absolute CLOCK_MONOTONIC deadline timeout_ms from now. */
static struct timespec deadline_in(int timeout_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

jobs *jobs_create(app *a)
{
    jobs *jm = xcalloc(1, sizeof *jm);
    pthread_condattr_t ca;

    jm->a = a;
    jm->ndev = a->ndevices;
    pthread_mutex_init(&jm->mu, NULL);
    /* Timed waits measure on the monotonic clock, so setting the wall
     * clock cannot stretch or cut them. */
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&jm->work, &ca);
    pthread_cond_init(&jm->change, &ca);
    pthread_condattr_destroy(&ca);
    return jm;
}

void jobs_free(jobs *jm)
{
    if (jm == NULL)
        return;
    for (int d = 0; d < jm->ndev; d++) {
        qnode *n = jm->head[d];
        while (n != NULL) {
            qnode *next = n->next;
            free(n);
            n = next;
        }
    }
    pthread_cond_destroy(&jm->work);
    pthread_cond_destroy(&jm->change);
    pthread_mutex_destroy(&jm->mu);
    free(jm);
}

/* ---- recovery ---- */

typedef struct active_row {
    long id;
    char device[16];
    int running;
} active_row;

typedef struct active_list {
    active_row *rows;
    int n;
} active_list;

static int collect_active(void *user, const store_job *j)
{
    active_list *l = user;
    l->rows = xrealloc(l->rows, sizeof *l->rows * (size_t)(l->n + 1));
    l->rows[l->n].id = j->id;
    snprintf(l->rows[l->n].device, sizeof l->rows[l->n].device, "%s", j->device);
    l->rows[l->n].running = strcmp(j->status, "running") == 0;
    l->n++;
    return 0;
}

int jobs_recover(jobs *jm, store *db)
{
    active_list l = { 0 };
    int n = 0;

    if (store_job_list_active(db, collect_active, &l) != 0)
        return -1;
    pthread_mutex_lock(&jm->mu);
    for (int i = 0; i < l.n; i++) {
        int dev = -1;
        for (int d = 0; d < jm->ndev; d++)
            if (strcmp(jm->a->devices[d].name, l.rows[i].device) == 0)
                dev = d;
        if (dev < 0) {
            char msg[128];
            snprintf(msg, sizeof msg, "device %s is not available since the restart; "
                     "submit the job again", l.rows[i].device);
            if (store_job_transition(db, l.rows[i].id, NULL, "failed", msg) == 0)
                log_warn("job %ld failed: %s", l.rows[i].id, msg);
            continue;
        }
        enqueue(jm, dev, l.rows[i].id);
        log_info("job %ld %s on %s after a restart", l.rows[i].id,
                 l.rows[i].running ? "resumes" : "is queued again", l.rows[i].device);
        n++;
    }
    pthread_mutex_unlock(&jm->mu);
    free(l.rows);
    return n;
}

/* ---- HTTP side ---- */

jobs_rc jobs_submit(jobs *jm, store *db, const char *name, const char *spec, int device,
                    const char *progress, long *id)
{
    jobs_rc rc = JOBS_OK;

    pthread_mutex_lock(&jm->mu);
    if (jm->nqueued >= jm->a->cfg->max_queued) {
        rc = JOBS_FULL;
    } else if (device < 0 || device >= jm->ndev) {
        rc = JOBS_ERROR;
    } else if (store_job_insert(db, name, spec, jm->a->devices[device].name, progress,
                                now_wall(), id) != 0) {
        rc = JOBS_ERROR;
    } else {
        enqueue(jm, device, *id);
    }
    pthread_mutex_unlock(&jm->mu);
    return rc;
}

/* The stored state of a job that is not active; -1 not found, -2 error. */
static int stored_state(store *db, long id)
{
    store_job j;
    int rc = store_job_get(db, id, &j), st;
    if (rc == STORE_NOTFOUND)
        return -1;
    if (rc != 0)
        return -2;
    st = job_state_parse(j.status);
    store_job_clear(&j);
    return st < 0 ? JOB_FAILED : st;
}

/* Moves a job that is not running from `from` to `to` in the store. */
static jobs_rc move(store *db, long id, job_state from, job_state to)
{
    int rc = store_job_transition(db, id, job_state_name(from), job_state_name(to), NULL);
    if (rc == 0)
        return JOBS_OK;
    return rc == STORE_NOTFOUND ? JOBS_CONFLICT : JOBS_ERROR;
}

jobs_rc jobs_cancel(jobs *jm, store *db, long id)
{
    jobs_rc rc;
    run_slot *r;
    int st;

    pthread_mutex_lock(&jm->mu);
    if ((r = running(jm, id)) != NULL) {
        r->want = JOB_WANT_CANCEL;
        rc = JOBS_PENDING;
    } else if (queued(jm, id)) {
        rc = move(db, id, JOB_QUEUED, JOB_CANCELLED);
        if (rc == JOBS_OK)
            dequeue(jm, id);
    } else if ((st = stored_state(db, id)) < 0) {
        rc = st == -1 ? JOBS_NOTFOUND : JOBS_ERROR;
    } else if (st == JOB_PAUSED) {
        rc = move(db, id, JOB_PAUSED, JOB_CANCELLED);
    } else {
        rc = JOBS_CONFLICT;
    }
    if (rc == JOBS_OK || rc == JOBS_PENDING)
        changed(jm);
    pthread_mutex_unlock(&jm->mu);
    return rc;
}

jobs_rc jobs_pause(jobs *jm, store *db, long id)
{
    jobs_rc rc;
    run_slot *r;
    int st;

    pthread_mutex_lock(&jm->mu);
    if ((r = running(jm, id)) != NULL) {
        /* A cancel already asked for wins: pausing would keep the job. */
        if (r->want == JOB_WANT_CANCEL)
            rc = JOBS_CONFLICT;
        else {
            r->want = JOB_WANT_PAUSE;
            rc = JOBS_PENDING;
        }
    } else if (queued(jm, id)) {
        rc = move(db, id, JOB_QUEUED, JOB_PAUSED);
        if (rc == JOBS_OK)
            dequeue(jm, id);
    } else if ((st = stored_state(db, id)) < 0) {
        rc = st == -1 ? JOBS_NOTFOUND : JOBS_ERROR;
    } else {
        rc = JOBS_CONFLICT;   /* already paused, or finished */
    }
    if (rc == JOBS_OK || rc == JOBS_PENDING)
        changed(jm);
    pthread_mutex_unlock(&jm->mu);
    return rc;
}

jobs_rc jobs_resume(jobs *jm, store *db, long id)
{
    jobs_rc rc;
    store_job j;
    int got, dev = -1;

    pthread_mutex_lock(&jm->mu);
    if (running(jm, id) != NULL || queued(jm, id)) {
        rc = JOBS_CONFLICT;
        goto out;
    }
    got = store_job_get(db, id, &j);
    if (got != 0) {
        rc = got == STORE_NOTFOUND ? JOBS_NOTFOUND : JOBS_ERROR;
        goto out;
    }
    for (int d = 0; d < jm->ndev; d++)
        if (strcmp(jm->a->devices[d].name, j.device) == 0)
            dev = d;
    if (strcmp(j.status, "paused") != 0) {
        rc = JOBS_CONFLICT;
    } else if (dev < 0) {
        log_warn("job %ld cannot resume: its device %s is not available", id, j.device);
        rc = JOBS_CONFLICT;
    } else {
        rc = move(db, id, JOB_PAUSED, JOB_QUEUED);
        if (rc == JOBS_OK)
            enqueue(jm, dev, id);
    }
    store_job_clear(&j);
out:
    pthread_mutex_unlock(&jm->mu);
    return rc;
}

int jobs_wait_idle(jobs *jm, long id, int timeout_ms)
{
    struct timespec dl = deadline_in(timeout_ms);
    int idle;

    pthread_mutex_lock(&jm->mu);
    while (running(jm, id) != NULL && !jm->stopping) {
        if (pthread_cond_timedwait(&jm->change, &jm->mu, &dl) == ETIMEDOUT)
            break;
    }
    idle = running(jm, id) == NULL;
    pthread_mutex_unlock(&jm->mu);
    return idle;
}

int jobs_live(jobs *jm, long id, job_state *state, job_progress *p, int *has_progress)
{
    run_slot *r;
    int active = 1;

    *has_progress = 0;
    pthread_mutex_lock(&jm->mu);
    if ((r = running(jm, id)) != NULL) {
        *state = JOB_RUNNING;
        if (r->has_progress) {
            *p = r->p;
            *has_progress = 1;
        }
    } else if (queued(jm, id)) {
        *state = JOB_QUEUED;
    } else {
        active = 0;
    }
    pthread_mutex_unlock(&jm->mu);
    return active;
}

unsigned long jobs_wait_change(jobs *jm, unsigned long seen, int timeout_ms)
{
    struct timespec dl = deadline_in(timeout_ms);
    unsigned long seq;

    pthread_mutex_lock(&jm->mu);
    while (jm->seq == seen && !jm->stopping) {
        if (pthread_cond_timedwait(&jm->change, &jm->mu, &dl) == ETIMEDOUT)
            break;
    }
    seq = jm->seq;
    pthread_mutex_unlock(&jm->mu);
    return seq;
}

void jobs_notify(jobs *jm)
{
    pthread_mutex_lock(&jm->mu);
    changed(jm);
    pthread_mutex_unlock(&jm->mu);
}

int jobs_stopping(jobs *jm)
{
    int s;
    pthread_mutex_lock(&jm->mu);
    s = jm->stopping;
    pthread_mutex_unlock(&jm->mu);
    return s;
}

void jobs_stats(jobs *jm, long long *iterations, double *images_per_s)
{
    double ips = 0;
    pthread_mutex_lock(&jm->mu);
    for (int d = 0; d < jm->ndev; d++)
        if (jm->run[d].id != 0 && jm->run[d].has_progress)
            ips += jm->run[d].p.images_per_s;
    *iterations = jm->iterations;
    pthread_mutex_unlock(&jm->mu);
    *images_per_s = ips;
}

/* ---- worker side ---- */

long jobs_next(jobs *jm, int device)
{
    long id = 0;
    qnode *n;

    pthread_mutex_lock(&jm->mu);
    while (!jm->stopping && jm->head[device] == NULL && !jm->wake[device])
        pthread_cond_wait(&jm->work, &jm->mu);
    if (!jm->stopping && jm->head[device] == NULL) {
        jm->wake[device] = 0;
        id = -1;
    } else if (!jm->stopping) {
        n = jm->head[device];
        jm->head[device] = n->next;
        if (jm->tail[device] == n)
            jm->tail[device] = NULL;
        jm->nqueued--;
        id = n->id;
        free(n);
        memset(&jm->run[device], 0, sizeof jm->run[device]);
        jm->run[device].id = id;
        changed(jm);
    }
    pthread_mutex_unlock(&jm->mu);
    return id;
}

void jobs_wake(jobs *jm, int device)
{
    if (device < 0 || device >= jm->ndev)
        return;
    pthread_mutex_lock(&jm->mu);
    if (!jm->wake[device]) {
        jm->wake[device] = 1;
        /* One condition variable for all workers: each rechecks its own
         * flag, so a broadcast is needed (a handful of threads). */
        pthread_cond_broadcast(&jm->work);
    }
    pthread_mutex_unlock(&jm->mu);
}

/* The request that applies now, with the mutex held: the client's own
 * request wins over the daemon's stop, cancel over pause. */
static job_want want_locked(const jobs *jm, const run_slot *r)
{
    if (r->want == JOB_WANT_CANCEL || r->want == JOB_WANT_PAUSE)
        return r->want;
    return jm->stopping ? JOB_WANT_STOP : JOB_WANT_NONE;
}

job_want jobs_report(jobs *jm, int device, const job_progress *p)
{
    run_slot *r = &jm->run[device];
    job_want w;

    pthread_mutex_lock(&jm->mu);
    r->p = *p;
    r->has_progress = 1;
    jm->iterations++;   /* one report per iteration */
    w = want_locked(jm, r);
    changed(jm);
    pthread_mutex_unlock(&jm->mu);
    return w;
}

job_want jobs_want(jobs *jm, int device)
{
    job_want w;
    pthread_mutex_lock(&jm->mu);
    w = want_locked(jm, &jm->run[device]);
    pthread_mutex_unlock(&jm->mu);
    return w;
}

void jobs_finish(jobs *jm, int device, long id, job_state state)
{
    (void)state;
    pthread_mutex_lock(&jm->mu);
    if (jm->run[device].id == id)
        memset(&jm->run[device], 0, sizeof jm->run[device]);
    changed(jm);
    pthread_mutex_unlock(&jm->mu);
}

void jobs_shutdown(jobs *jm)
{
    pthread_mutex_lock(&jm->mu);
    jm->stopping = 1;
    pthread_cond_broadcast(&jm->work);
    changed(jm);
    pthread_mutex_unlock(&jm->mu);
}
