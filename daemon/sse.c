/* sse.c: GET /v1/jobs/{id}/events, a job's progress and metrics as
 * Server-Sent Events (text/event-stream), until the job ends.
 *
 * Events:
 *   event: metrics   id: <last metric row id in it>   data: [{id,key,value,step,timestamp},...]
 *   event: progress  (no id)                          data: the job document
 *   event: end       (no id)                          data: {"status":"succeeded"}
 * Metric rows go out in row-id order, and an event's id is the id of its
 * last row, so a client that reconnects with Last-Event-ID (or
 * ?last_event_id=) gets exactly the rows after it: no gaps, no repeats.
 * Progress events carry no id and so leave the client's last id alone. At
 * most ~10 events a second per stream; a comment every 15 s of silence
 * keeps proxies from closing the connection. The stream ends after the end
 * event, or without one when the daemon shuts down (clients reconnect).
 *
 * Each stream runs on its connection's own thread (http.c serves a thread
 * per connection) and blocks there on the job manager's change counter. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api.h"
#include "app.h"
#include "jobs.h"
#include "store.h"
#include "util.h"

#define SSE_MIN_INTERVAL_S 0.1   /* at most 10 events a second */
#define SSE_KEEPALIVE_S 15.0
#define SSE_WAIT_MS 250          /* how often a waiting stream looks at the clock */
#define SSE_ROWS_PER_EVENT 500

typedef struct sse_stream {
    app *a;
    long job;
    long last_id;            /* last metric row id sent */
    unsigned long seen;      /* the job manager's change counter */
    strbuf out;              /* text not yet handed to the connection */
    size_t off;
    double last_event, last_write;
    char *last_progress;     /* the last progress event's data, to skip repeats */
    int ended;
} sse_stream;

typedef struct rows_ctx {
    cJSON *arr;
    long last_id;
    int n;
} rows_ctx;

static int add_row(void *user, const store_metric_row *r)
{
    rows_ctx *c = user;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", (double)r->id);
    cJSON_AddStringToObject(o, "key", r->key);
    cJSON_AddNumberToObject(o, "value", r->value);
    cJSON_AddNumberToObject(o, "step", (double)r->step);
    cJSON_AddNumberToObject(o, "timestamp", (double)r->timestamp_ms);
    cJSON_AddItemToArray(c->arr, o);
    c->last_id = r->id;
    c->n++;
    return 0;
}

/* Queues whatever is new; returns the number of events queued, or -1 when
 * the store failed (the stream then ends). */
static int produce(sse_stream *s)
{
    store_job j;
    rows_ctx rows = { 0 };
    cJSON *doc;
    char *text;
    int queued = 0, terminal;

    /* Status first, rows second: a worker commits a job's last rows before
     * its final status, so a terminal status seen here means the rows read
     * next are complete. */
    if (store_job_get(s->a->db, s->job, &j) != 0)
        return -1;
    doc = api_job_doc(s->a, &j, 0);
    store_job_clear(&j);
    terminal = job_state_parse(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
                   doc, "status")));
    terminal = terminal >= 0 && job_state_terminal((job_state)terminal);

    rows.arr = cJSON_CreateArray();
    rows.last_id = s->last_id;
    if (store_metrics_read(s->a->db, s->job, NULL, s->last_id, SSE_ROWS_PER_EVENT, add_row,
                           &rows) != 0) {
        cJSON_Delete(rows.arr);
        cJSON_Delete(doc);
        return -1;
    }
    if (rows.n > 0) {
        text = cJSON_PrintUnformatted(rows.arr);
        sb_printf(&s->out, "id: %ld\nevent: metrics\ndata: %s\n\n", rows.last_id,
                  text != NULL ? text : "[]");
        cJSON_free(text);
        s->last_id = rows.last_id;
        queued++;
    }
    cJSON_Delete(rows.arr);

    text = cJSON_PrintUnformatted(doc);
    if (text != NULL && (s->last_progress == NULL || strcmp(text, s->last_progress) != 0)) {
        sb_printf(&s->out, "event: progress\ndata: %s\n\n", text);
        free(s->last_progress);
        s->last_progress = xstrdup(text);
        queued++;
    }
    cJSON_free(text);

    /* The end only once every row is out (a full event may leave more). */
    if (terminal && rows.n < SSE_ROWS_PER_EVENT) {
        sb_printf(&s->out, "event: end\ndata: {\"status\":\"%s\"}\n\n",
                  cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(doc, "status")));
        s->ended = 1;
        queued++;
    }
    cJSON_Delete(doc);
    return queued;
}

static long sse_read(void *cls, char *buf, size_t max)
{
    sse_stream *s = cls;
    size_t n;

    while (s->off >= s->out.len) {
        double now, wait;
        int rc;

        sb_reset(&s->out);
        s->off = 0;
        if (s->ended || jobs_stopping(s->a->jobs))
            return HTTP_STREAM_END;
        /* Throttle: the next event no sooner than SSE_MIN_INTERVAL_S after
         * the last. */
        now = now_mono();
        wait = s->last_event + SSE_MIN_INTERVAL_S - now;
        if (wait > 0) {
            struct timespec ts = { .tv_sec = 0, .tv_nsec = (long)(wait * 1e9) };
            nanosleep(&ts, NULL);
            continue;
        }
        rc = produce(s);
        if (rc < 0)
            return HTTP_STREAM_END;
        if (rc > 0) {
            /* Each event spends one tenth of a second of the budget, so
             * a metrics + progress pair counts as two. */
            s->last_event = now_mono() + (rc - 1) * SSE_MIN_INTERVAL_S;
            break;
        }
        if (now - s->last_write >= SSE_KEEPALIVE_S) {
            sb_printf(&s->out, ": keepalive\n\n");
            break;
        }
        s->seen = jobs_wait_change(s->a->jobs, s->seen, SSE_WAIT_MS);
    }
    n = s->out.len - s->off;
    if (n > max)
        n = max;
    memcpy(buf, s->out.s + s->off, n);
    s->off += n;
    s->last_write = now_mono();
    return (long)n;
}

static void sse_free(void *cls)
{
    sse_stream *s = cls;
    sb_free(&s->out);
    free(s->last_progress);
    free(s);
}

void sse_job_events(const http_req *req, http_reply *rep, long id)
{
    const char *last = http_req_header(req, "Last-Event-ID");
    const char *q = http_req_query(req, "last_event_id");
    sse_stream *s;
    long last_id = 0;

    if (last == NULL)
        last = q;
    if (last != NULL && last[0] != '\0' && parse_long(last, 0, LONG_MAX, &last_id) != 0) {
        http_reply_error(rep, HTTP_ERR_INVALID_ARGUMENT, "Last-Event-ID",
                         "Last-Event-ID: must be an event id this stream sent (an integer)");
        return;
    }
    s = xcalloc(1, sizeof *s);
    s->a = req->app;
    s->job = id;
    s->last_id = last_id;
    s->last_event = now_mono() - SSE_MIN_INTERVAL_S;
    s->last_write = now_mono();
    /* Tell EventSource to reconnect after 2 s rather than its default 3. */
    sb_printf(&s->out, "retry: 2000\n\n");
    http_reply_stream(rep, 200, "text/event-stream", sse_read, s, sse_free);
    rep->no_cache = 1;
}
