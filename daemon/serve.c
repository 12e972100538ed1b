/* serve.c: inference queues, the per-device model cache and evaluations
 * (see serve.h).
 *
 * One mutex guards the queues, the evaluation list and the counters. A
 * request is owned by the queue until the worker completes it; the HTTP
 * thread that queued it waits on the request's own condition variable. A
 * thread that gives up (timeout) takes a queued request back, or marks a
 * running one abandoned, and the worker frees it then: nobody ever writes
 * into memory its owner has freed. The model cache and the buffers of a
 * device are touched only by that device's worker, so they need no lock. */
#include "serve.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <nn/data.h>
#include <nn/model.h>
#include <nn/solver.h>

#include "datasets.h"
#include "jobs.h"
#include "log.h"
#include "util.h"

/* ---- types ---- */

enum { REQ_QUEUED, REQ_RUNNING, REQ_DONE };

typedef struct req {
    struct req *next;
    long id;                      /* model (job) id */
    long iteration;               /* of the checkpoint the input was prepared for */
    char path[MODELS_PATH_MAX];
    int n, c, h, w, k;
    nn_real *x;                   /* n*c*h*w, owned */
    float *scores;                /* n*k, owned */
    int state;
    int abandoned;                /* the HTTP thread left: the worker frees it */
    int skip;                     /* failed before its forward pass */
    serve_rc rc;
    char err[NN_ERRLEN + 96];
    pthread_cond_t cond;
} req;

typedef struct cached_model {
    long id;                      /* 0: empty slot */
    long iteration;
    nn_model *m;
    nn_model_info info;
    unsigned long long used;
} cached_model;

typedef struct eval_task {
    struct eval_task *next;
    long id;
    int device;
    char path[MODELS_PATH_MAX];
    serve_eval_state state;
    long done, total;
    char error[512];
    /* The worker's, while RUNNING. */
    nn_model *model;
    nn_model_info info;
    char dataset[NN_DATASET_NAME_LEN];
    int held;                     /* dataset acquired */
    nn_split split;
    char split_name[16];
    long *confusion;              /* k*k, rows: true class */
    double t0;
} eval_task;

typedef struct dev_q {
    req *head, *tail;
    int n;
    int closed;                   /* the worker left */
    /* The worker's own. */
    cached_model cache[SERVE_CACHE_MODELS];
    unsigned long long clock;
    nn_real *xbuf, *sbuf, *lbuf;
    size_t xcap, scap;
} dev_q;

struct serve {
    app *a;
    pthread_mutex_t mu;
    pthread_cond_t eval_changed;
    int ndev;
    dev_q dev[APP_MAX_DEVICES];
    eval_task *evals;             /* queued, running and failed, oldest first */
    serve_stats st;
    int big_decodes;              /* serve_decode_enter's count */
    pthread_cond_t decode_done;
};

static void cond_init_mono(pthread_cond_t *c)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(c, &ca);
    pthread_condattr_destroy(&ca);
}

static struct timespec deadline_in(int ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

serve *serve_create(app *a)
{
    serve *s = xcalloc(1, sizeof *s);
    s->a = a;
    s->ndev = a->ndevices;
    pthread_mutex_init(&s->mu, NULL);
    cond_init_mono(&s->eval_changed);
    cond_init_mono(&s->decode_done);
    return s;
}

static void req_free(req *r)
{
    if (r == NULL)
        return;
    pthread_cond_destroy(&r->cond);
    free(r->x);
    free(r->scores);
    free(r);
}

static void task_free(eval_task *t)
{
    free(t->confusion);
    free(t);
}

void serve_free(serve *s)
{
    if (s == NULL)
        return;
    for (int d = 0; d < APP_MAX_DEVICES; d++) {
        req *r = s->dev[d].head;
        while (r != NULL) {
            req *next = r->next;
            req_free(r);
            r = next;
        }
        free(s->dev[d].xbuf);
        free(s->dev[d].sbuf);
        free(s->dev[d].lbuf);
    }
    while (s->evals != NULL) {
        eval_task *t = s->evals;
        s->evals = t->next;
        task_free(t);
    }
    pthread_cond_destroy(&s->eval_changed);
    pthread_cond_destroy(&s->decode_done);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

int serve_decode_enter(serve *s, unsigned long long pixels, int timeout_ms)
{
    struct timespec dl;
    int rc = 0;

    if (pixels <= SERVE_BIG_IMAGE_PIXELS)
        return 0;
    dl = deadline_in(timeout_ms);
    pthread_mutex_lock(&s->mu);
    while (s->big_decodes >= SERVE_BIG_DECODES) {
        if (pthread_cond_timedwait(&s->decode_done, &s->mu, &dl) == ETIMEDOUT) {
            rc = -1;
            break;
        }
    }
    if (rc == 0)
        s->big_decodes++;
    pthread_mutex_unlock(&s->mu);
    return rc;
}

void serve_decode_leave(serve *s, unsigned long long pixels)
{
    if (pixels <= SERVE_BIG_IMAGE_PIXELS)
        return;
    pthread_mutex_lock(&s->mu);
    s->big_decodes--;
    pthread_cond_signal(&s->decode_done);
    pthread_mutex_unlock(&s->mu);
}

void serve_softmax(float *p, const float *scores, int k)
{
    double max = scores[0], sum = 0;
    for (int i = 1; i < k; i++)
        if (scores[i] > max)
            max = scores[i];
    for (int i = 0; i < k; i++)
        sum += exp((double)scores[i] - max);
    for (int i = 0; i < k; i++)
        p[i] = (float)(exp((double)scores[i] - max) / sum);
}

void serve_stats_get(serve *s, serve_stats *out)
{
    pthread_mutex_lock(&s->mu);
    *out = s->st;
    out->queued = 0;
    for (int d = 0; d < s->ndev; d++)
        out->queued += s->dev[d].n;
    pthread_mutex_unlock(&s->mu);
}

/* ---- HTTP side: inference ---- */

serve_rc serve_infer(serve *s, const model_meta *m, const nn_real *x, int n, float *scores,
                     int timeout_ms, char *err, size_t errlen)
{
    size_t xs, ss;
    struct timespec dl;
    serve_rc rc;
    dev_q *dq;
    req *r;

    if (n < 1 || n > SERVE_MAX_BATCH) {
        snprintf(err, errlen, "a request holds 1..%d images, not %d", SERVE_MAX_BATCH, n);
        return SERVE_FAILED;
    }
    if (m->device < 0 || m->device >= s->ndev) {
        snprintf(err, errlen, "no device serves model %ld", m->id);
        return SERVE_UNAVAILABLE;
    }
    xs = (size_t)n * (size_t)m->c * (size_t)m->h * (size_t)m->w;
    ss = (size_t)n * (size_t)m->num_classes;
    r = xcalloc(1, sizeof *r);
    r->id = m->id;
    r->iteration = m->iteration;
    snprintf(r->path, sizeof r->path, "%s", m->path);
    r->n = n;
    r->c = m->c;
    r->h = m->h;
    r->w = m->w;
    r->k = m->num_classes;
    r->x = xmalloc(xs * sizeof *r->x);
    memcpy(r->x, x, xs * sizeof *r->x);
    r->scores = xcalloc(ss, sizeof *r->scores);
    cond_init_mono(&r->cond);

    dq = &s->dev[m->device];
    pthread_mutex_lock(&s->mu);
    if (dq->closed) {
        pthread_mutex_unlock(&s->mu);
        req_free(r);
        snprintf(err, errlen, "the daemon is stopping");
        return SERVE_UNAVAILABLE;
    }
    if (dq->n >= SERVE_QUEUE_MAX) {
        s->st.rejected_full++;
        pthread_mutex_unlock(&s->mu);
        req_free(r);
        snprintf(err, errlen, "%d requests are waiting for device %s already; try again",
                 SERVE_QUEUE_MAX, s->a->devices[m->device].name);
        return SERVE_FULL;
    }
    r->state = REQ_QUEUED;
    if (dq->tail != NULL)
        dq->tail->next = r;
    else
        dq->head = r;
    dq->tail = r;
    dq->n++;
    pthread_mutex_unlock(&s->mu);

    if (s->a->jobs != NULL)
        jobs_wake(s->a->jobs, m->device);

    dl = deadline_in(timeout_ms);
    pthread_mutex_lock(&s->mu);
    while (r->state != REQ_DONE) {
        if (pthread_cond_timedwait(&r->cond, &s->mu, &dl) == ETIMEDOUT)
            break;
    }
    if (r->state == REQ_DONE) {
        rc = r->rc;
        if (rc == SERVE_OK)
            memcpy(scores, r->scores, ss * sizeof *scores);
        else
            snprintf(err, errlen, "%s", r->err);
        pthread_mutex_unlock(&s->mu);
        req_free(r);
        return rc;
    }
    s->st.timeouts++;
    if (r->state == REQ_QUEUED) {
        /* Still ours to take back. */
        req *prev = NULL;
        for (req *q = dq->head; q != NULL; prev = q, q = q->next) {
            if (q != r)
                continue;
            if (prev != NULL)
                prev->next = q->next;
            else
                dq->head = q->next;
            if (dq->tail == q)
                dq->tail = prev;
            dq->n--;
            break;
        }
        pthread_mutex_unlock(&s->mu);
        req_free(r);
    } else {
        r->abandoned = 1;   /* the worker frees it when it is done */
        pthread_mutex_unlock(&s->mu);
    }
    snprintf(err, errlen, "no answer from device %s within %d ms (busy)",
             s->a->devices[m->device].name, timeout_ms);
    return SERVE_TIMEOUT;
}

/* ---- HTTP side: evaluations ---- */

static eval_task *find_task(serve *s, long id, eval_task **prev_out)
{
    eval_task *prev = NULL;
    for (eval_task *t = s->evals; t != NULL; prev = t, t = t->next) {
        if (t->id == id) {
            if (prev_out != NULL)
                *prev_out = prev;
            return t;
        }
    }
    return NULL;
}

static void unlink_task(serve *s, eval_task *t)
{
    eval_task *prev = NULL;
    if (find_task(s, t->id, &prev) != t)
        return;
    if (prev != NULL)
        prev->next = t->next;
    else
        s->evals = t->next;
}

/* Copies t's state into *st; a failure is consumed (unlinked and freed).
 * With s->mu held. */
static void report_locked(serve *s, eval_task *t, serve_eval_status *st)
{
    memset(st, 0, sizeof *st);
    if (t == NULL) {
        st->state = SERVE_EVAL_NONE;
        return;
    }
    st->state = t->state;
    st->done = t->done;
    st->total = t->total;
    snprintf(st->error, sizeof st->error, "%s", t->error);
    if (t->state == SERVE_EVAL_FAILED) {
        unlink_task(s, t);
        task_free(t);
    }
}

serve_rc serve_evaluate(serve *s, int device, long id, const char *path,
                        serve_eval_status *st)
{
    eval_task *t, *last = NULL;
    int count = 0;

    memset(st, 0, sizeof *st);
    if (device < 0 || device >= s->ndev)
        return SERVE_UNAVAILABLE;
    pthread_mutex_lock(&s->mu);
    t = find_task(s, id, NULL);
    if (t != NULL) {
        report_locked(s, t, st);
        pthread_mutex_unlock(&s->mu);
        return SERVE_OK;
    }
    if (s->dev[device].closed) {
        pthread_mutex_unlock(&s->mu);
        return SERVE_UNAVAILABLE;
    }
    for (eval_task *q = s->evals; q != NULL; q = q->next)
        count++;
    /* Failures nobody asked about (a background evaluation after a job)
     * make room first, oldest first: they must not fill the list. */
    while (count >= SERVE_EVAL_QUEUE_MAX) {
        eval_task *old = NULL;
        for (eval_task *q = s->evals; q != NULL && old == NULL; q = q->next)
            if (q->state == SERVE_EVAL_FAILED)
                old = q;
        if (old == NULL)
            break;
        unlink_task(s, old);
        task_free(old);
        count--;
    }
    if (count >= SERVE_EVAL_QUEUE_MAX) {
        pthread_mutex_unlock(&s->mu);
        return SERVE_FULL;
    }
    for (eval_task *q = s->evals; q != NULL; q = q->next)
        last = q;
    t = xcalloc(1, sizeof *t);
    t->id = id;
    t->device = device;
    t->state = SERVE_EVAL_QUEUED;
    snprintf(t->path, sizeof t->path, "%s", path);
    if (last != NULL)
        last->next = t;
    else
        s->evals = t;
    st->state = SERVE_EVAL_QUEUED;
    pthread_mutex_unlock(&s->mu);
    if (s->a->jobs != NULL)
        jobs_wake(s->a->jobs, device);
    return SERVE_OK;
}

void serve_eval_status_get(serve *s, long id, serve_eval_status *st)
{
    eval_task *t;
    pthread_mutex_lock(&s->mu);
    t = find_task(s, id, NULL);
    memset(st, 0, sizeof *st);
    if (t != NULL) {
        st->state = t->state;
        st->done = t->done;
        st->total = t->total;
        snprintf(st->error, sizeof st->error, "%s", t->error);
    }
    pthread_mutex_unlock(&s->mu);
}

serve_eval_state serve_eval_wait(serve *s, long id, int timeout_ms, serve_eval_status *st)
{
    struct timespec dl = deadline_in(timeout_ms);
    eval_task *t;

    pthread_mutex_lock(&s->mu);
    while ((t = find_task(s, id, NULL)) != NULL &&
           (t->state == SERVE_EVAL_QUEUED || t->state == SERVE_EVAL_RUNNING)) {
        if (pthread_cond_timedwait(&s->eval_changed, &s->mu, &dl) == ETIMEDOUT)
            break;
    }
    report_locked(s, find_task(s, id, NULL), st);
    pthread_mutex_unlock(&s->mu);
    return st->state;
}

/* ---- worker side: the model cache ---- */

static void cache_drop(cached_model *e)
{
    nn_model_free(e->m);
    nn_model_info_free(&e->info);
    memset(e, 0, sizeof *e);
}

/* The loaded model for request r (id, iteration, path), loading it when
 * absent or older than r's checkpoint. NULL with err on failure. */
static cached_model *cache_get(serve *s, dev_q *dq, nn_backend *b, const req *r, char *err,
                               size_t errlen)
{
    cached_model *slot = NULL;
    char nerr[NN_ERRLEN];
    nn_status st;

    for (int i = 0; i < SERVE_CACHE_MODELS; i++) {
        cached_model *e = &dq->cache[i];
        if (e->id != r->id)
            continue;
        if (e->iteration >= r->iteration) {
            e->used = ++dq->clock;
            return e;
        }
        slot = e;   /* a newer checkpoint: reload in place */
        break;
    }
    if (slot == NULL) {
        for (int i = 0; i < SERVE_CACHE_MODELS; i++) {
            cached_model *e = &dq->cache[i];
            if (e->id == 0) {
                slot = e;
                break;
            }
            if (slot == NULL || e->used < slot->used)
                slot = e;
        }
    }
    cache_drop(slot);
    st = nn_model_load(&slot->m, &slot->info, b, r->path, SERVE_MAX_BATCH, 1, nerr);
    pthread_mutex_lock(&s->mu);
    s->st.model_loads++;
    pthread_mutex_unlock(&s->mu);
    if (st != NN_OK) {
        snprintf(err, errlen, "cannot load model %ld: %s", r->id, nerr);
        log_err("%s", err);
        memset(slot, 0, sizeof *slot);
        return NULL;
    }
    slot->id = r->id;
    slot->iteration = slot->info.iteration;
    slot->used = ++dq->clock;
    log_info("model %ld loaded for serving (checkpoint iteration %ld, %s)", r->id,
             slot->iteration, nn_backend_name(b));
    return slot;
}

/* Grows the device's host buffers to hold nx inputs and ns scores. */
static void reserve(dev_q *dq, size_t nx, size_t ns)
{
    if (nx > dq->xcap) {
        free(dq->xbuf);
        dq->xbuf = xmalloc(nx * sizeof *dq->xbuf);
        dq->xcap = nx;
    }
    if (ns > dq->scap) {
        free(dq->sbuf);
        dq->sbuf = xmalloc(ns * sizeof *dq->sbuf);
        dq->scap = ns;
    }
    if (dq->lbuf == NULL)
        dq->lbuf = xmalloc(SERVE_MAX_BATCH * sizeof *dq->lbuf);
}

static void req_fail(req *r, serve_rc rc, const char *msg)
{
    r->rc = rc;
    snprintf(r->err, sizeof r->err, "%s", msg);
}

/* Runs reqs[0..n) of one model as few forward passes as possible. Returns
 * the number of passes. */
static int run_group(serve *s, dev_q *dq, nn_backend *b, req **reqs, int n)
{
    char err[NN_ERRLEN + 64];
    cached_model *e;
    const nn_model_config *mc;
    int passes = 0, i = 0, newest = 0;

    /* Load the newest checkpoint any of them saw. */
    for (int j = 1; j < n; j++)
        if (reqs[j]->iteration > reqs[newest]->iteration)
            newest = j;
    e = cache_get(s, dq, b, reqs[newest], err, sizeof err);
    if (e == NULL) {
        for (int j = 0; j < n; j++)
            req_fail(reqs[j], SERVE_FAILED, err);
        return 0;
    }
    mc = nn_model_cfg(e->m);
    while (i < n) {
        size_t per = (size_t)mc->channels * (size_t)mc->height * (size_t)mc->width;
        int nb = 0, first = i;
        nn_tensor x, sc;
        nn_status st;

        reserve(dq, (size_t)SERVE_MAX_BATCH * per,
                (size_t)SERVE_MAX_BATCH * (size_t)mc->num_classes);
        /* Pack whole requests while they fit into one pass. */
        while (i < n) {
            req *r = reqs[i];
            if (r->c != mc->channels || r->h != mc->height || r->w != mc->width ||
                r->k != mc->num_classes) {
                req_fail(r, SERVE_FAILED, "the model's shape changed; send the request again");
                r->skip = 1;
                i++;
                continue;
            }
            if (nb + r->n > SERVE_MAX_BATCH)
                break;
            memcpy(dq->xbuf + (size_t)nb * per, r->x, (size_t)r->n * per * sizeof *r->x);
            nb += r->n;
            i++;
        }
        if (nb == 0)
            continue;
        x = nn_tensor_4d(dq->xbuf, nb, mc->channels, mc->height, mc->width);
        sc = nn_tensor_2d(dq->sbuf, nb, mc->num_classes);
        st = nn_model_predict(e->m, &sc, &x, err);
        passes++;
        for (int j = first, off = 0; j < i; j++) {
            req *r = reqs[j];
            if (r->skip)
                continue;
            if (st != NN_OK) {
                req_fail(r, SERVE_FAILED, err);
            } else {
                for (size_t q = 0; q < (size_t)r->n * (size_t)r->k; q++)
                    r->scores[q] = (float)dq->sbuf[(size_t)off * (size_t)r->k + q];
                r->rc = SERVE_OK;
            }
            off += r->n;
        }
        if (st != NN_OK)
            log_err("model %ld: forward pass failed: %s", reqs[first]->id, err);
    }
    return passes;
}

/* Answers everything queued on device now. Returns how many requests. */
static int drain(serve *s, int device, nn_backend *b)
{
    dev_q *dq = &s->dev[device];
    req *list[SERVE_QUEUE_MAX], *group[SERVE_QUEUE_MAX];
    int n = 0;

    pthread_mutex_lock(&s->mu);
    for (req *r = dq->head; r != NULL && n < SERVE_QUEUE_MAX; r = r->next) {
        r->state = REQ_RUNNING;
        list[n++] = r;
    }
    dq->head = dq->tail = NULL;
    dq->n = 0;
    pthread_mutex_unlock(&s->mu);
    if (n == 0)
        return 0;

    if (b == NULL) {
        for (int i = 0; i < n; i++)
            req_fail(list[i], SERVE_UNAVAILABLE, "the device is unusable (see the log)");
    } else {
        /* Group by model, keeping arrival order within a model; answer each
         * group as soon as it is done, counting it first so that a client
         * that has its answer sees it in the metrics. */
        for (int i = 0; i < n; i++) {
            int g = 0;
            long id;
            if (list[i] == NULL)
                continue;
            id = list[i]->id;
            for (int j = i; j < n; j++) {
                if (list[j] != NULL && list[j]->id == id) {
                    group[g++] = list[j];
                    list[j] = NULL;
                }
            }
            const int passes = run_group(s, dq, b, group, g);
            pthread_mutex_lock(&s->mu);
            s->st.requests += (unsigned long long)g;
            s->st.batches += (unsigned long long)passes;
            for (int j = 0; j < g; j++) {
                req *r = group[j];
                s->st.images += (unsigned long long)r->n;
                s->st.failures += r->rc != SERVE_OK;
                if (r->abandoned) {
                    req_free(r);
                } else {
                    r->state = REQ_DONE;
                    pthread_cond_signal(&r->cond);
                }
            }
            pthread_mutex_unlock(&s->mu);
        }
        return n;
    }
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < n; i++) {
        req *r = list[i];
        s->st.failures++;
        if (r->abandoned) {
            req_free(r);
        } else {
            r->state = REQ_DONE;
            pthread_cond_signal(&r->cond);
        }
    }
    s->st.requests += (unsigned long long)n;
    pthread_mutex_unlock(&s->mu);
    return n;
}

/* ---- worker side: evaluations ---- */

/* Releases what a running evaluation holds (on the worker's thread). */
static void eval_release(serve *s, eval_task *t)
{
    nn_model_free(t->model);
    t->model = NULL;
    nn_model_info_free(&t->info);
    if (t->held)
        datasets_release(s->a->datasets, t->dataset);
    t->held = 0;
    free(t->confusion);
    t->confusion = NULL;
}

static void eval_fail(serve *s, eval_task *t, const char *msg)
{
    log_warn("evaluation of model %ld failed: %s", t->id, msg);
    eval_release(s, t);
    pthread_mutex_lock(&s->mu);
    t->state = SERVE_EVAL_FAILED;
    snprintf(t->error, sizeof t->error, "%s", msg);
    pthread_cond_broadcast(&s->eval_changed);
    pthread_mutex_unlock(&s->mu);
}

/* Loads the model and the data for t. 0 or -1 with msg. */
static int eval_start(serve *s, eval_task *t, nn_backend *b, char *msg, size_t msglen)
{
    char err[NN_ERRLEN], derr[512];
    const nn_model_config *mc;
    const nn_dataset *d = NULL;
    cJSON *meta, *extra;
    double vf = 0;
    long limit = 0;
    ds_info di;
    const char *name;

    if (nn_model_load(&t->model, &t->info, b, t->path, SERVE_MAX_BATCH, 1, err) != NN_OK) {
        snprintf(msg, msglen, "cannot load model %ld: %s", t->id, err);
        return -1;
    }
    mc = nn_model_cfg(t->model);
    meta = cJSON_Parse(t->info.meta_json);
    extra = cJSON_GetObjectItemCaseSensitive(meta, "extra");
    name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(extra, "dataset"));
    if (cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(extra, "val_fraction")))
        vf = cJSON_GetObjectItemCaseSensitive(extra, "val_fraction")->valuedouble;
    if (cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(extra, "limit")))
        limit = (long)cJSON_GetObjectItemCaseSensitive(extra, "limit")->valuedouble;
    snprintf(t->dataset, sizeof t->dataset, "%s", name != NULL ? name : "");
    cJSON_Delete(meta);
    if (t->dataset[0] == '\0') {
        snprintf(msg, msglen, "the checkpoint does not name its data set");
        return -1;
    }
    if (s->a->datasets == NULL || datasets_info(s->a->datasets, t->dataset, &di) != 0) {
        snprintf(msg, msglen, "data set %s is not available to this daemon", t->dataset);
        return -1;
    }
    if (di.n_test > 0) {
        if (datasets_acquire(s->a->datasets, t->dataset, DS_TEST, &d, derr, sizeof derr) != 0) {
            snprintf(msg, msglen, "%s", derr);
            return -1;
        }
        t->held = 1;
        t->split = nn_dataset_all(d);
        snprintf(t->split_name, sizeof t->split_name, "test");
    } else {
        nn_split train;
        if (!(vf > 0 && vf < 1) || limit < 0 || limit > INT32_MAX) {
            snprintf(msg, msglen, "data set %s has no test split, and the job held out no "
                     "validation split to evaluate on instead", t->dataset);
            return -1;
        }
        if (datasets_acquire(s->a->datasets, t->dataset, DS_TRAIN, &d, derr, sizeof derr) != 0) {
            snprintf(msg, msglen, "%s", derr);
            return -1;
        }
        t->held = 1;
        if (nn_dataset_split(&train, &t->split, d, vf, (int)limit, err) != NN_OK) {
            snprintf(msg, msglen, "data set %s: %s", t->dataset, err);
            return -1;
        }
        snprintf(t->split_name, sizeof t->split_name, "validation");
    }
    if (d->c != mc->channels || d->h != mc->height || d->w != mc->width) {
        snprintf(msg, msglen, "data set %s's images are %dx%dx%d, the model takes %dx%dx%d",
                 t->dataset, d->c, d->h, d->w, mc->channels, mc->height, mc->width);
        return -1;
    }
    if (mc->num_classes > SERVE_EVAL_MAX_CLASSES) {
        snprintf(msg, msglen, "the model has %d classes; evaluations stop at %d",
                 mc->num_classes, SERVE_EVAL_MAX_CLASSES);
        return -1;
    }
    if (t->split.count < 1) {
        snprintf(msg, msglen, "the %s split of %s is empty", t->split_name, t->dataset);
        return -1;
    }
    t->confusion = xcalloc((size_t)mc->num_classes * (size_t)mc->num_classes,
                           sizeof *t->confusion);
    t->t0 = now_mono();
    pthread_mutex_lock(&s->mu);
    t->total = t->split.count;
    t->done = 0;
    pthread_mutex_unlock(&s->mu);
    log_info("evaluating model %ld (checkpoint iteration %ld) on %d images of %s's %s split",
             t->id, t->info.iteration, t->split.count, t->dataset, t->split_name);
    return 0;
}

/* Stores t's result; 0 or -1 with msg. */
static int eval_finish(eval_task *t, store *db, char *msg, size_t msglen)
{
    const int k = nn_model_cfg(t->model)->num_classes;
    cJSON *doc = cJSON_CreateObject();
    cJSON *names = cJSON_AddArrayToObject(doc, "class_names");
    cJSON *per = cJSON_AddArrayToObject(doc, "per_class_accuracy");
    cJSON *cm = cJSON_AddArrayToObject(doc, "confusion_matrix");
    store_evaluation e;
    long correct = 0;
    char *text;
    int rc;

    for (int i = 0; i < k; i++) {
        cJSON *row = cJSON_CreateArray();
        long total = 0;
        for (int j = 0; j < k; j++) {
            long v = t->confusion[(size_t)i * (size_t)k + (size_t)j];
            total += v;
            cJSON_AddItemToArray(row, cJSON_CreateNumber((double)v));
        }
        correct += t->confusion[(size_t)i * (size_t)k + (size_t)i];
        cJSON_AddItemToArray(cm, row);
        cJSON_AddItemToArray(names, cJSON_CreateString(t->info.class_names[i]));
        if (total > 0)
            cJSON_AddItemToArray(per, cJSON_CreateNumber(
                (double)t->confusion[(size_t)i * (size_t)k + (size_t)i] / (double)total));
        else
            cJSON_AddItemToArray(per, cJSON_CreateNull());
    }
    text = cJSON_PrintUnformatted(doc);
    cJSON_Delete(doc);
    memset(&e, 0, sizeof e);
    e.job_id = t->id;
    e.iteration = t->info.iteration;
    e.epoch = t->info.epoch;
    snprintf(e.split, sizeof e.split, "%s", t->split_name);
    e.num_samples = t->total;
    e.correct = correct;
    e.accuracy = (double)correct / (double)t->total;
    e.result = text;
    e.duration_s = now_mono() - t->t0;
    rc = store_evaluation_put(db, &e);
    cJSON_free(text);
    if (rc != 0) {
        snprintf(msg, msglen, "cannot store the evaluation (see the log)");
        return -1;
    }
    log_info("model %ld: %s accuracy %.4f (%ld/%ld) in %.2f s", t->id, e.split, e.accuracy,
             correct, t->total, e.duration_s);
    return 0;
}

/* Advances device's current evaluation by up to SERVE_EVAL_SLICE images.
 * Returns 1 when there was evaluation work, 0 when none. */
static int eval_slice(serve *s, int device, nn_backend *b, store *db)
{
    dev_q *dq = &s->dev[device];
    char msg[512], err[NN_ERRLEN];
    eval_task *t = NULL;
    int start = 0, k, did = 0;
    const nn_model_config *mc;

    pthread_mutex_lock(&s->mu);
    for (eval_task *q = s->evals; q != NULL; q = q->next) {
        if (q->device == device &&
            (q->state == SERVE_EVAL_QUEUED || q->state == SERVE_EVAL_RUNNING)) {
            t = q;
            break;
        }
    }
    if (t != NULL && t->state == SERVE_EVAL_QUEUED) {
        t->state = SERVE_EVAL_RUNNING;
        start = 1;
    }
    pthread_mutex_unlock(&s->mu);
    if (t == NULL)
        return 0;
    if (b == NULL) {
        eval_fail(s, t, "the device is unusable (see the log)");
        return 1;
    }
    if (start && eval_start(s, t, b, msg, sizeof msg) != 0) {
        eval_fail(s, t, msg);
        return 1;
    }
    mc = nn_model_cfg(t->model);
    k = mc->num_classes;
    reserve(dq, (size_t)SERVE_MAX_BATCH * (size_t)mc->channels * (size_t)mc->height *
                    (size_t)mc->width,
            (size_t)SERVE_MAX_BATCH * (size_t)k);
    while (did < SERVE_EVAL_SLICE && t->done + did < t->total) {
        int idx[SERVE_MAX_BATCH];
        long at = t->done + did;
        int nb = (int)(t->total - at < SERVE_MAX_BATCH ? t->total - at : SERVE_MAX_BATCH);
        nn_tensor x, sc;

        for (int i = 0; i < nb; i++)
            idx[i] = (int)at + i;
        if (nn_dataset_gather(dq->xbuf, dq->lbuf, &t->split, idx, nb, t->info.mean, NULL,
                              NULL, err) != NN_OK) {
            snprintf(msg, sizeof msg, "data set %s: %s", t->dataset, err);
            eval_fail(s, t, msg);
            return 1;
        }
        x = nn_tensor_4d(dq->xbuf, nb, mc->channels, mc->height, mc->width);
        sc = nn_tensor_2d(dq->sbuf, nb, k);
        if (nn_model_predict(t->model, &sc, &x, err) != NN_OK) {
            snprintf(msg, sizeof msg, "forward pass failed: %s", err);
            eval_fail(s, t, msg);
            return 1;
        }
        for (int i = 0; i < nb; i++) {
            const nn_real *row = dq->sbuf + (size_t)i * (size_t)k;
            int best = 0, label = (int)dq->lbuf[i];
            for (int j = 1; j < k; j++)
                if (row[j] > row[best])
                    best = j;
            if (label >= 0 && label < k)
                t->confusion[(size_t)label * (size_t)k + (size_t)best]++;
        }
        did += nb;
    }
    pthread_mutex_lock(&s->mu);
    t->done += did;
    pthread_mutex_unlock(&s->mu);
    if (t->done < t->total)
        return 1;
    if (eval_finish(t, db, msg, sizeof msg) != 0) {
        eval_fail(s, t, msg);
        return 1;
    }
    eval_release(s, t);
    pthread_mutex_lock(&s->mu);
    unlink_task(s, t);
    task_free(t);
    s->st.evaluations++;
    pthread_cond_broadcast(&s->eval_changed);
    pthread_mutex_unlock(&s->mu);
    return 1;
}

/* ---- worker side: the loop ---- */

int serve_worker_pending(serve *s, int device)
{
    int pending;
    pthread_mutex_lock(&s->mu);
    pending = s->dev[device].n > 0;
    for (eval_task *t = s->evals; t != NULL && !pending; t = t->next)
        pending = t->device == device &&
                  (t->state == SERVE_EVAL_QUEUED || t->state == SERVE_EVAL_RUNNING);
    pthread_mutex_unlock(&s->mu);
    return pending;
}

void serve_worker_run(serve *s, int device, nn_backend *b, store *db, int idle)
{
    /* Idle, the worker loops while there is work, but only so many rounds:
     * then jobs_next gets a look, so a stream of requests cannot keep a
     * queued job from starting (requests are served between its
     * minibatches anyway). */
    for (int round = 0; round < 256; round++) {
        int took = drain(s, device, b);
        int ev = eval_slice(s, device, b, db);
        int loaded = 0;

        if (round == 0 || took > 0) {
            for (int i = 0; i < SERVE_CACHE_MODELS; i++)
                loaded += s->dev[device].cache[i].id != 0;
            pthread_mutex_lock(&s->mu);
            s->st.loaded = loaded;   /* one device's view; enough for a gauge */
            pthread_mutex_unlock(&s->mu);
        }
        if (!idle)
            return;
        if (took == 0 && ev == 0 && !serve_worker_pending(s, device))
            return;
    }
}

void serve_worker_stop(serve *s, int device)
{
    dev_q *dq = &s->dev[device];
    eval_task *mine[SERVE_EVAL_QUEUE_MAX];
    int nmine = 0;
    req *r;

    pthread_mutex_lock(&s->mu);
    dq->closed = 1;
    r = dq->head;
    dq->head = dq->tail = NULL;
    dq->n = 0;
    while (r != NULL) {
        req *next = r->next;
        req_fail(r, SERVE_UNAVAILABLE, "the daemon is stopping");
        if (r->abandoned) {
            req_free(r);
        } else {
            r->state = REQ_DONE;
            pthread_cond_signal(&r->cond);
        }
        r = next;
    }
    /* This device's unfinished evaluations: only this worker unlinks
     * them, so the pointers stay valid until eval_fail hands them over. */
    for (eval_task *t = s->evals; t != NULL && nmine < SERVE_EVAL_QUEUE_MAX; t = t->next)
        if (t->device == device &&
            (t->state == SERVE_EVAL_QUEUED || t->state == SERVE_EVAL_RUNNING))
            mine[nmine++] = t;
    pthread_mutex_unlock(&s->mu);
    for (int i = 0; i < nmine; i++)
        eval_fail(s, mine[i], "the daemon is stopping");
    for (int i = 0; i < SERVE_CACHE_MODELS; i++)
        cache_drop(&dq->cache[i]);
}
