/* api_jobs.c: /v1/jobs and /v1/jobs/{id}/...: submitting, listing and
 * reading jobs, their state changes, and their metrics as JSON or CSV.
 *
 * Validation is jobspec.c's, queues and states are jobs.c's, rows are
 * store.c's; this file turns them into HTTP answers. The event stream is
 * in sse.c. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "app.h"
#include "jobs.h"
#include "jobspec.h"
#include "log.h"
#include "store.h"
#include "util.h"

#define LIST_DEFAULT 20
#define LIST_MAX 100
#define METRICS_DEFAULT 10000
#define METRICS_MAX 100000
/* How long a cancel or pause of a running job waits for the worker to act
 * before answering 202 (the request stays pending). */
#define SETTLE_MS 10000

/* ---- documents ---- */

static void add_time(cJSON *o, const char *key, double t)
{
    char buf[40];
    if (t <= 0) {
        cJSON_AddNullToObject(o, key);
        return;
    }
    format_rfc3339(buf, sizeof buf, t);
    cJSON_AddStringToObject(o, key, buf);
}

cJSON *api_job_doc(app *a, const store_job *j, int with_spec)
{
    cJSON *doc = cJSON_CreateObject();
    job_progress p;
    job_state live;
    int has_progress = 0, active = 0;

    job_progress_parse(&p, j->progress);
    if (a->jobs != NULL) {
        job_progress lp;
        active = jobs_live(a->jobs, j->id, &live, &lp, &has_progress);
        if (has_progress)
            p = lp;
    }
    cJSON_AddNumberToObject(doc, "id", (double)j->id);
    cJSON_AddStringToObject(doc, "name", j->name);
    cJSON_AddStringToObject(doc, "status", active ? job_state_name(live) : j->status);
    cJSON_AddStringToObject(doc, "device", j->device);
    add_time(doc, "created_at", j->created_at);
    add_time(doc, "started_at", j->started_at);
    add_time(doc, "finished_at", j->finished_at);
    if (j->error != NULL)
        cJSON_AddStringToObject(doc, "error", j->error);
    else
        cJSON_AddNullToObject(doc, "error");
    cJSON_AddItemToObject(doc, "progress", job_progress_json(&p));
    if (with_spec) {
        cJSON *spec = cJSON_Parse(j->spec);
        cJSON_AddItemToObject(doc, "spec", spec != NULL ? spec : cJSON_CreateNull());
    }
    return doc;
}

int api_job_id(const http_req *req, http_reply *rep, long *id)
{
    const char *s = http_param(&req->params, "id");
    if (s == NULL || parse_long(s, 1, LONG_MAX, id) != 0) {
        http_reply_error(rep, HTTP_ERR_NOT_FOUND, NULL, "no such job: %.64s", s ? s : "");
        return -1;
    }
    return 0;
}

/* Reads job id for a reply; on failure sets 404/500 and returns -1. */
static int load_job(app *a, long id, store_job *j, http_reply *rep)
{
    int rc = store_job_get(a->db, id, j);
    if (rc == STORE_NOTFOUND) {
        http_reply_error(rep, HTTP_ERR_NOT_FOUND, NULL, "no such job: %ld", id);
        return -1;
    }
    if (rc != 0) {
        http_reply_error(rep, HTTP_ERR_INTERNAL, NULL, "the store failed; see the log");
        return -1;
    }
    return 0;
}

/* Answers with job id's document. */
static void reply_job(app *a, long id, unsigned status, http_reply *rep)
{
    store_job j;
    if (load_job(a, id, &j, rep) != 0)
        return;
    http_reply_json(rep, status, api_job_doc(a, &j, 1));
    store_job_clear(&j);
}

/* An optional integer query argument in lo..hi. Returns 0 (with *v set or
 * left at its default), or -1 with a 400 reply naming the argument. */
int api_query_long(const http_req *req, http_reply *rep, const char *name, long lo,
                   long hi, long *v)
{
    const char *s = http_req_query(req, name);
    if (s == NULL)
        return 0;
    if (parse_long(s, lo, hi, v) != 0) {
        http_reply_error(rep, HTTP_ERR_INVALID_ARGUMENT, name,
                         "%s: must be an integer in %ld..%ld, got \"%.32s\"", name, lo, hi, s);
        return -1;
    }
    return 0;
}

/* ---- POST /v1/jobs ---- */

void api_jobs_create(const http_req *req, http_reply *rep)
{
    app *a = req->app;
    jobspec spec;
    jobspec_error e;
    job_progress p;
    store_job j;
    cJSON *pj, *doc;
    char *spec_text, *ptext;
    long id = 0;
    jobs_rc rc;

    if (jobspec_parse(&spec, req->json, a, JOBSPEC_ADMIT, &e) != 0) {
        http_reply_error(rep, HTTP_ERR_INVALID_ARGUMENT, e.field[0] ? e.field : NULL, "%s",
                         e.message);
        return;
    }
    spec_text = cJSON_PrintUnformatted(req->json);
    job_progress_init(&p, spec.num_iterations, spec.solver.num_epochs);
    pj = job_progress_json(&p);
    ptext = cJSON_PrintUnformatted(pj);
    cJSON_Delete(pj);
    rc = jobs_submit(a->jobs, a->db, spec.name, spec_text, spec.device_index, ptext, &id);
    cJSON_free(spec_text);
    cJSON_free(ptext);
    switch (rc) {
    case JOBS_OK:
        log_info("job %ld queued: %s (%s, %s, %ld iterations, %llu MiB)", id, spec.name,
                 spec.dataset, a->devices[spec.device_index].name, spec.num_iterations,
                 (unsigned long long)(spec.bytes >> 20));
        if (load_job(a, id, &j, rep) != 0)
            break;
        /* The answer describes the job as accepted: queued, even if a
         * worker has taken it in the meantime (GET shows that). */
        doc = api_job_doc(a, &j, 1);
        store_job_clear(&j);
        cJSON_ReplaceItemInObjectCaseSensitive(doc, "status", cJSON_CreateString("queued"));
        cJSON_ReplaceItemInObjectCaseSensitive(doc, "started_at", cJSON_CreateNull());
        http_reply_json(rep, 201, doc);
        snprintf(rep->location, sizeof rep->location, "/v1/jobs/%ld", id);
        break;
    case JOBS_FULL:
        http_reply_error(rep, HTTP_ERR_RESOURCE_EXHAUSTED, NULL,
                         "%ld jobs are queued already (max-queued); try again later",
                         a->cfg->max_queued);
        break;
    default:
        http_reply_error(rep, HTTP_ERR_INTERNAL, NULL, "cannot queue the job; see the log");
        break;
    }
    jobspec_clear(&spec);
}

/* ---- GET /v1/jobs ---- */

static char *dup_or_null(const char *s)
{
    return s != NULL ? xstrdup(s) : NULL;
}

int api_page_start(const http_req *req, http_reply *rep, api_page *p)
{
    long limit = LIST_DEFAULT, after = 0;
    const char *token = http_req_query(req, "page_token");

    memset(p, 0, sizeof *p);
    if (api_query_long(req, rep, "limit", 1, LIST_MAX, &limit) != 0 ||
        api_query_long(req, rep, "after", 1, LONG_MAX, &after) != 0)
        return -1;
    if (token != NULL && parse_long(token, 1, LONG_MAX, &after) != 0) {
        http_reply_error(rep, HTTP_ERR_INVALID_ARGUMENT, "page_token",
                         "page_token: not a token this server gave out");
        return -1;
    }
    p->limit = (int)limit;
    p->after = after;
    p->rows = xcalloc((size_t)limit, sizeof *p->rows);
    return 0;
}

int api_page_row(void *user, const store_job *j)
{
    api_page *l = user;
    store_job *c;

    if (l->n == l->limit) {
        l->more = 1;   /* the extra row only says there is a next page */
        return 1;
    }
    c = &l->rows[l->n++];
    *c = *j;
    c->name = xstrdup(j->name);
    c->spec = xstrdup(j->spec);
    c->device = xstrdup(j->device);
    c->status = xstrdup(j->status);
    c->error = dup_or_null(j->error);
    c->progress = xstrdup(j->progress);
    return 0;
}

void api_page_finish(http_reply *rep, cJSON *doc, api_page *p, int rc)
{
    if (p->more && p->n > 0) {
        char tok[32];
        snprintf(tok, sizeof tok, "%ld", p->rows[p->n - 1].id);
        cJSON_AddStringToObject(doc, "next_page_token", tok);
    } else {
        cJSON_AddNullToObject(doc, "next_page_token");
    }
    for (int i = 0; i < p->n; i++)
        store_job_clear(&p->rows[i]);
    free(p->rows);
    p->rows = NULL;
    if (rc != 0) {
        cJSON_Delete(doc);
        http_reply_error(rep, HTTP_ERR_INTERNAL, NULL, "the store failed; see the log");
        return;
    }
    http_reply_json(rep, 200, doc);
}

void api_jobs_list(const http_req *req, http_reply *rep)
{
    app *a = req->app;
    const char *status = http_req_query(req, "status");
    api_page l;
    cJSON *doc, *arr;
    int rc;

    if (status != NULL && job_state_parse(status) < 0) {
        http_reply_error(rep, HTTP_ERR_INVALID_ARGUMENT, "status",
                         "status: must be one of queued, running, paused, succeeded, "
                         "failed, cancelled");
        return;
    }
    if (api_page_start(req, rep, &l) != 0)
        return;
    /* One row more than asked tells whether another page exists. */
    rc = store_job_list(a->db, status, l.after, l.limit + 1, api_page_row, &l);
    doc = cJSON_CreateObject();
    arr = cJSON_AddArrayToObject(doc, "jobs");
    for (int i = 0; i < l.n; i++) {
        /* The live overlay takes the jobs mutex: never while the store is
         * locked, since jobs.c takes them in the order jobs -> store. */
        cJSON_AddItemToArray(arr, api_job_doc(a, &l.rows[i], 0));
    }
    api_page_finish(rep, doc, &l, rc);
}

/* ---- GET /v1/jobs/{id} ---- */

void api_jobs_get(const http_req *req, http_reply *rep)
{
    long id;
    if (api_job_id(req, rep, &id) == 0)
        reply_job(req->app, id, 200, rep);
}

/* ---- POST /v1/jobs/{id}/cancel|pause|resume ---- */

typedef jobs_rc (*transition_fn)(jobs *, store *, long);

static void transition(const http_req *req, http_reply *rep, transition_fn fn,
                       const char *verb)
{
    app *a = req->app;
    store_job j;
    long id;
    jobs_rc rc;

    if (api_job_id(req, rep, &id) != 0)
        return;
    rc = fn(a->jobs, a->db, id);
    switch (rc) {
    case JOBS_OK:
        log_info("job %ld: %s (it was not running)", id, verb);
        reply_job(a, id, 200, rep);
        break;
    case JOBS_PENDING:
        /* The worker acts between two minibatches; usually that is soon. */
        reply_job(a, id, jobs_wait_idle(a->jobs, id, SETTLE_MS) ? 200 : 202, rep);
        break;
    case JOBS_NOTFOUND:
        http_reply_error(rep, HTTP_ERR_NOT_FOUND, NULL, "no such job: %ld", id);
        break;
    case JOBS_CONFLICT:
        if (load_job(a, id, &j, rep) != 0)
            break;
        {
            job_state live;
            job_progress p;
            int hp;
            const char *st = jobs_live(a->jobs, id, &live, &p, &hp) ? job_state_name(live)
                                                                    : j.status;
            http_reply_error(rep, HTTP_ERR_CONFLICT, NULL, "job %ld is %s: cannot %s it",
                             id, st, verb);
        }
        store_job_clear(&j);
        break;
    default:
        http_reply_error(rep, HTTP_ERR_INTERNAL, NULL, "the store failed; see the log");
        break;
    }
}

void api_jobs_cancel(const http_req *req, http_reply *rep)
{
    transition(req, rep, jobs_cancel, "cancel");
}

void api_jobs_pause(const http_req *req, http_reply *rep)
{
    transition(req, rep, jobs_pause, "pause");
}

void api_jobs_resume(const http_req *req, http_reply *rep)
{
    transition(req, rep, jobs_resume, "resume");
}

/* ---- GET /v1/jobs/{id}/metrics ---- */

typedef struct metrics_ctx {
    cJSON *arr;     /* JSON */
    strbuf csv;     /* CSV */
    int csv_mode;
    long last_id;
} metrics_ctx;

static int metric_row(void *user, const store_metric_row *r)
{
    metrics_ctx *m = user;
    if (m->csv_mode) {
        sb_printf(&m->csv, "%.3f,%ld,%.9g\n", (double)r->timestamp_ms / 1000.0, r->step,
                  r->value);
    } else {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "id", (double)r->id);
        cJSON_AddStringToObject(o, "key", r->key);
        cJSON_AddNumberToObject(o, "value", r->value);
        cJSON_AddNumberToObject(o, "step", (double)r->step);
        cJSON_AddNumberToObject(o, "timestamp", (double)r->timestamp_ms);
        cJSON_AddItemToArray(m->arr, o);
    }
    m->last_id = r->id;
    return 0;
}

/* Metric keys are short lowercase identifiers. */
static int valid_key(const char *k)
{
    size_t n = strlen(k);
    return n >= 1 && n <= 32 && strspn(k, "abcdefghijklmnopqrstuvwxyz0123456789_") == n;
}

void api_jobs_metrics(const http_req *req, http_reply *rep)
{
    app *a = req->app;
    const char *key = http_req_query(req, "key");
    const char *format = http_req_query(req, "format");
    long id, since = 0, limit = METRICS_DEFAULT;
    metrics_ctx m = { 0 };
    store_job j;
    int rc;

    if (api_job_id(req, rep, &id) != 0)
        return;
    if (api_query_long(req, rep, "since", 0, LONG_MAX, &since) != 0 ||
        api_query_long(req, rep, "limit", 1, METRICS_MAX, &limit) != 0)
        return;
    if (format != NULL && strcmp(format, "json") != 0 && strcmp(format, "csv") != 0) {
        http_reply_error(rep, HTTP_ERR_INVALID_ARGUMENT, "format",
                         "format: must be json or csv");
        return;
    }
    if (key != NULL && !valid_key(key)) {
        http_reply_error(rep, HTTP_ERR_INVALID_ARGUMENT, "key",
                         "key: must be 1..32 characters of a-z, 0-9 and _");
        return;
    }
    if (load_job(a, id, &j, rep) != 0)
        return;
    store_job_clear(&j);
    m.csv_mode = format != NULL && strcmp(format, "csv") == 0;
    m.last_id = since;
    if (m.csv_mode) {
        /* TensorBoard's CSV export: one series, so one key (loss unless
         * asked otherwise). */
        if (key == NULL)
            key = "loss";
        sb_printf(&m.csv, "Wall time,Step,Value\n");
    } else {
        m.arr = cJSON_CreateArray();
    }
    rc = store_metrics_read(a->db, id, key, since, (int)limit, metric_row, &m);
    if (rc != 0) {
        cJSON_Delete(m.arr);
        sb_free(&m.csv);
        http_reply_error(rep, HTTP_ERR_INTERNAL, NULL, "the store failed; see the log");
        return;
    }
    if (m.csv_mode) {
        http_reply_text(rep, 200, "text/csv; charset=utf-8", m.csv.s, m.csv.len);
        sb_free(&m.csv);
    } else {
        cJSON *doc = cJSON_CreateObject();
        cJSON_AddNumberToObject(doc, "job_id", (double)id);
        cJSON_AddItemToObject(doc, "metrics", m.arr);
        /* Pass next_since as ?since= to read only what came after. */
        cJSON_AddNumberToObject(doc, "next_since", (double)m.last_id);
        http_reply_json(rep, 200, doc);
    }
}

/* ---- GET /v1/jobs/{id}/events ---- */

void api_jobs_events(const http_req *req, http_reply *rep)
{
    store_job j;
    long id;

    if (api_job_id(req, rep, &id) != 0 || load_job(req->app, id, &j, rep) != 0)
        return;
    store_job_clear(&j);
    sse_job_events(req, rep, id);
}
