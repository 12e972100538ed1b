/* test_sse.c: GET /v1/jobs/{id}/events on the real binary (argv[1]):
 * events from a running job, a disconnect, a reconnect with Last-Event-ID,
 * and the union of what both connections delivered is exactly the job's
 * metric rows, each once, in order (no gaps, no repeats); the stream ends
 * with an end event when the job ends; at most ~10 events a second.
 *
 * The client here speaks just enough HTTP/1.1 for this: one GET, the
 * headers, then a chunked body decoded as it arrives. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "daemon_proc.h"

#define MAX_ROWS 20000

static unsigned port;

/* All metric rows received, in arrival order. */
static long row_id[MAX_ROWS], row_step[MAX_ROWS];
static char row_key[MAX_ROWS][16];
static int nrows;

typedef struct sse_conn {
    int fd;
    char raw[1 << 16];     /* bytes received, not yet decoded */
    size_t nraw;
    char *text;            /* decoded body, not yet split into events */
    size_t ntext, captext;
    int chunk_left;        /* bytes left in the current chunk; -1 between chunks */
    int eof;
} sse_conn;

typedef struct sse_event {
    char type[32];
    long id;               /* -1: no id field */
    char *data;            /* malloc'd */
} sse_event;

static void decode(sse_conn *c);

static int sse_open(sse_conn *c, const char *path, const char *last_id)
{
    struct sockaddr_in sa;
    struct timeval tv = { .tv_sec = 30 };
    char req[512];
    int n;

    memset(c, 0, sizeof *c);
    c->chunk_left = -1;
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c->fd < 0)
        return -1;
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((unsigned short)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) != 0)
        return -1;
    n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 "Accept: text/event-stream\r\nConnection: close\r\n%s%s%s\r\n", path,
                 last_id != NULL ? "Last-Event-ID: " : "", last_id != NULL ? last_id : "",
                 last_id != NULL ? "\r\n" : "");
    if (send(c->fd, req, (size_t)n, MSG_NOSIGNAL) != n)
        return -1;
    /* Headers. */
    for (;;) {
        char *end;
        ssize_t got = recv(c->fd, c->raw + c->nraw, sizeof c->raw - 1 - c->nraw, 0);
        if (got <= 0)
            return -1;
        c->nraw += (size_t)got;
        c->raw[c->nraw] = '\0';
        end = strstr(c->raw, "\r\n\r\n");
        if (end != NULL) {
            size_t hl = (size_t)(end + 4 - c->raw);
            int status = 0;
            sscanf(c->raw, "HTTP/1.1 %d", &status);
            if (status != 200 || strstr(c->raw, "text/event-stream") == NULL ||
                strstr(c->raw, "chunked") == NULL) {
                fprintf(stderr, "sse: unexpected reply head: %.*s\n", (int)hl, c->raw);
                return -1;
            }
            memmove(c->raw, c->raw + hl, c->nraw - hl);
            c->nraw -= hl;
            decode(c);   /* the body may have come with the head */
            return 0;
        }
    }
}

static void text_append(sse_conn *c, const char *p, size_t n)
{
    if (c->ntext + n + 1 > c->captext) {
        c->captext = (c->ntext + n + 1) * 2;
        c->text = realloc(c->text, c->captext);
    }
    memcpy(c->text + c->ntext, p, n);
    c->ntext += n;
    c->text[c->ntext] = '\0';
}

/* Decodes what chunked data c->raw holds into c->text. */
static void decode(sse_conn *c)
{
    size_t pos = 0;
    for (;;) {
        if (c->chunk_left < 0) {
            char *nl = memchr(c->raw + pos, '\n', c->nraw - pos);
            if (nl == NULL)
                break;
            c->chunk_left = (int)strtol(c->raw + pos, NULL, 16);
            pos = (size_t)(nl + 1 - c->raw);
            if (c->chunk_left == 0) {
                c->eof = 1;
                break;
            }
        }
        if (c->chunk_left > 0) {
            size_t take = c->nraw - pos < (size_t)c->chunk_left ? c->nraw - pos
                                                                 : (size_t)c->chunk_left;
            text_append(c, c->raw + pos, take);
            pos += take;
            c->chunk_left -= (int)take;
        }
        if (c->chunk_left == 0) {
            /* The CRLF after a chunk's data. */
            if (c->nraw - pos < 2)
                break;
            pos += 2;
            c->chunk_left = -1;
        } else {
            break;
        }
    }
    memmove(c->raw, c->raw + pos, c->nraw - pos);
    c->nraw -= pos;
}

/* Reads the next event (comments and retry-only blocks skipped). 0, or -1
 * at the end of the stream / on error. */
static int sse_next(sse_conn *c, sse_event *e)
{
    for (;;) {
        char *sep = c->text != NULL ? strstr(c->text, "\n\n") : NULL;
        if (sep != NULL) {
            size_t len = (size_t)(sep - c->text);
            char *block = malloc(len + 1), *line, *save = NULL;
            memcpy(block, c->text, len);
            block[len] = '\0';
            memmove(c->text, sep + 2, c->ntext - len - 2 + 1);
            c->ntext -= len + 2;
            memset(e, 0, sizeof *e);
            e->id = -1;
            for (line = strtok_r(block, "\n", &save); line != NULL;
                 line = strtok_r(NULL, "\n", &save)) {
                if (strncmp(line, "id: ", 4) == 0)
                    e->id = strtol(line + 4, NULL, 10);
                else if (strncmp(line, "event: ", 7) == 0)
                    snprintf(e->type, sizeof e->type, "%s", line + 7);
                else if (strncmp(line, "data: ", 6) == 0)
                    e->data = strdup(line + 6);
            }
            free(block);
            if (e->type[0] != '\0')
                return 0;
            free(e->data);
            continue;
        }
        if (c->eof)
            return -1;
        {
            ssize_t got = recv(c->fd, c->raw + c->nraw, sizeof c->raw - c->nraw, 0);
            if (got <= 0)
                return -1;
            c->nraw += (size_t)got;
            decode(c);
        }
    }
}

static void sse_close(sse_conn *c)
{
    close(c->fd);
    free(c->text);
}

/* Records a metrics event's rows; checks its id is its last row's id and
 * that ids only grow. Returns the event's id. */
static long take_metrics(const sse_event *e, long prev_id)
{
    cJSON *arr = cJSON_Parse(e->data);
    long last = prev_id;

    CHECK(cJSON_IsArray(arr) && cJSON_GetArraySize(arr) > 0);
    for (const cJSON *m = arr != NULL ? arr->child : NULL; m != NULL; m = m->next) {
        long id = (long)tj_num(m, "id");
        CHECKF(id > last, "row id %ld after %ld", id, last);
        last = id;
        if (nrows < MAX_ROWS) {
            row_id[nrows] = id;
            row_step[nrows] = (long)tj_num(m, "step");
            snprintf(row_key[nrows], sizeof row_key[nrows], "%s", tj_str(m, "key"));
            nrows++;
        }
    }
    CHECKF(e->id == last, "event id %ld, its last row %ld", e->id, last);
    cJSON_Delete(arr);
    return last;
}

int main(int argc, char **argv)
{
    char path[128], last[32];
    const char *spec =
        "{\"name\":\"sse\",\"dataset\":{\"name\":\"synth\",\"val_fraction\":0.2,\"limit\":600},"
        "\"model\":{\"preset\":\"three_layer_convnet\",\"num_filters\":4,\"hidden_dim\":16},"
        "\"solver\":{\"epochs\":120,\"batch_size\":32}}";
    sse_conn c;
    sse_event e;
    dproc d;
    cJSON *doc;
    long id, last_id = 0, *steps;
    int metrics_events = 0, progress_events = 0, ended = 0, events = 0, n, st, first_part;
    double t0, elapsed;

    dp_dirs dirs;
    int rc = dp_setup(&dirs, "convnetd-sse", argc, argv);
    if (rc != 0)
        return rc;
    const char *state = dirs.state, *log = dirs.log;
    if (tj_write_synth(dirs.data, "synth", 800, 16, 16, 4, 5) != 0) {
        perror("set-up");
        return 1;
    }
    if (dp_start(&d, argv[1], state, dirs.data, log, NULL) != 0) {
        CHECK(!"convnetd starts");
        return check_result("daemon_sse");
    }
    port = d.port;
    id = tj_submit(port, spec);
    CHECK(id > 0);
    snprintf(path, sizeof path, "/v1/jobs/%ld/events", id);

    /* First connection: a few metric events from the running job, then
     * hang up. */
    t0 = tj_now();
    CHECK(sse_open(&c, path, NULL) == 0);
    while (metrics_events < 3 && sse_next(&c, &e) == 0) {
        events++;
        if (strcmp(e.type, "metrics") == 0) {
            last_id = take_metrics(&e, last_id);
            metrics_events++;
        } else if (strcmp(e.type, "progress") == 0) {
            CHECK(e.id == -1);
            progress_events++;
        } else if (strcmp(e.type, "end") == 0) {
            ended = 1;
        }
        free(e.data);
    }
    sse_close(&c);
    CHECKF(metrics_events == 3 && !ended, "%d metrics events, ended %d: the job ran out "
           "before the disconnect", metrics_events, ended);
    first_part = nrows;

    /* Reconnect where we left off and read to the end. */
    snprintf(last, sizeof last, "%ld", last_id);
    CHECK(sse_open(&c, path, last) == 0);
    while (!ended && sse_next(&c, &e) == 0) {
        events++;
        if (strcmp(e.type, "metrics") == 0) {
            last_id = take_metrics(&e, last_id);
            metrics_events++;
        } else if (strcmp(e.type, "progress") == 0) {
            progress_events++;
        } else if (strcmp(e.type, "end") == 0) {
            doc = cJSON_Parse(e.data);
            CHECK(strcmp(tj_str(doc, "status"), "succeeded") == 0);
            cJSON_Delete(doc);
            ended = 1;
        }
        free(e.data);
    }
    /* After the end event the server closes the stream. */
    if (ended) {
        CHECK(sse_next(&c, &e) == -1);
    }
    sse_close(&c);
    elapsed = tj_now() - t0;
    CHECK(ended);
    CHECK(nrows > first_part && row_id[first_part] > row_id[first_part - 1]);
    CHECKF(progress_events >= 2, "%d progress events", progress_events);
    CHECKF(events <= elapsed * 10 + 5, "%d events in %.2f s", events, elapsed);

    /* What the two connections delivered is exactly the stored rows. */
    snprintf(path, sizeof path, "/v1/jobs/%ld/metrics?limit=100000", id);
    CHECK(tj_request(port, "GET", path, NULL, &doc) == 200);
    n = cJSON_GetArraySize(tj_get(doc, "metrics"));
    CHECKF(n == nrows, "%d rows stored, %d streamed", n, nrows);
    for (int i = 0; i < n && i < nrows; i++) {
        const cJSON *m = cJSON_GetArrayItem(tj_get(doc, "metrics"), i);
        if ((long)tj_num(m, "id") != row_id[i] || (long)tj_num(m, "step") != row_step[i] ||
            strcmp(tj_str(m, "key"), row_key[i]) != 0) {
            CHECKF(0, "row %d: stored id %.0f, streamed %ld", i, tj_num(m, "id"), row_id[i]);
            break;
        }
    }
    cJSON_Delete(doc);
    steps = tj_steps(port, id, "loss", &n);
    CHECKF(n == 1800 && tj_steps_exact(steps, n), "%d loss steps", n);
    free(steps);

    /* A finished job: all of it at once from 0; from the last id, only the
     * end; a bad id is a 400. */
    snprintf(path, sizeof path, "/v1/jobs/%ld/events?last_event_id=%ld", id, last_id);
    CHECK(sse_open(&c, path, NULL) == 0);
    metrics_events = 0;
    ended = 0;
    while (!ended && sse_next(&c, &e) == 0) {
        metrics_events += strcmp(e.type, "metrics") == 0;
        ended = strcmp(e.type, "end") == 0;
        free(e.data);
    }
    sse_close(&c);
    CHECK(ended && metrics_events == 0);
    snprintf(path, sizeof path, "/v1/jobs/%ld/events", id);
    CHECK(tj_request(port, "GET", "/v1/jobs/999/events", NULL, NULL) == 404);
    {
        char p2[160];
        snprintf(p2, sizeof p2, "%s?last_event_id=x", path);
        CHECK(tj_request(port, "GET", p2, NULL, NULL) == 400);
    }
    CHECK(tj_request(port, "GET", "/v1/health", NULL, NULL) == 200);

    st = dp_stop(&d, SIGTERM, 30);
    CHECKF(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status %d", st);
    dp_cleanup(&dirs, check_failures);
    return check_result("daemon_sse");
}
