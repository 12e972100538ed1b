/* http.c: the route table, routing, replies, and the libmicrohttpd glue.
 *
 * Each request gets a context on MHD's first callback; the body is collected
 * up to the route's limit; errors found before the handler runs (404, 405,
 * 413, bad JSON) are stored and sent once the body is drained; JSON is parsed
 * here, once. The context is freed only in the completed callback. What
 * each endpoint does is in api_*.c, not here. */
#include "http.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <microhttpd.h>

#include "api.h"
#include "app.h"
#include "log.h"
#include "util.h"

/* ---- the route table ---- */

/* Every route here is documented in daemon/openapi.json, and every path
 * there is routed here: test_openapi.c checks both directions. */
const http_route http_routes[] = {
    { .method = "GET", .path = "/v1/health", .handler = api_health_get },
    { .method = "GET", .path = "/v1/openapi.json", .handler = api_openapi_get },
    { .method = "GET", .path = "/v1/datasets", .handler = api_datasets_list },
    { .method = "GET", .path = "/v1/jobs", .handler = api_jobs_list },
    { .method = "POST", .path = "/v1/jobs", .handler = api_jobs_create,
      .max_body = 64 * 1024, .json = 1 },
    { .method = "GET", .path = "/v1/jobs/{id}", .handler = api_jobs_get },
    /* State changes take no body; a small one (curl -d '{}') is ignored. */
    { .method = "POST", .path = "/v1/jobs/{id}/cancel", .handler = api_jobs_cancel,
      .max_body = 1024 },
    { .method = "POST", .path = "/v1/jobs/{id}/pause", .handler = api_jobs_pause,
      .max_body = 1024 },
    { .method = "POST", .path = "/v1/jobs/{id}/resume", .handler = api_jobs_resume,
      .max_body = 1024 },
    { .method = "GET", .path = "/v1/jobs/{id}/metrics", .handler = api_jobs_metrics },
    { .method = "GET", .path = "/v1/jobs/{id}/events", .handler = api_jobs_events },
    { .method = "GET", .path = "/v1/jobs/{id}/filters.png", .handler = api_jobs_filters },
    { .method = "GET", .path = "/v1/models", .handler = api_models_list },
    { .method = "GET", .path = "/v1/models/{id}", .handler = api_models_get },
    { .method = "GET", .path = "/v1/models/{id}/checkpoint", .handler = api_models_checkpoint },
    /* An image, raw or in a form, or base64 in JSON (4/3 larger): 16 MiB
     * covers a 12 MiB photo as base64. The handler parses JSON itself, as
     * it takes other types too. */
    { .method = "POST", .path = "/v1/models/{id}/classify", .handler = api_models_classify,
      .max_body = 16 * 1024 * 1024 },
    { .method = "GET", .path = "/v1/models/{id}/evaluation", .handler = api_models_evaluation },
    { .method = "GET", .path = "/v2", .handler = api_v2_server },
    { .method = "GET", .path = "/v2/health/live", .handler = api_v2_live },
    { .method = "GET", .path = "/v2/health/ready", .handler = api_v2_ready },
    { .method = "GET", .path = "/v2/models/{name}", .handler = api_v2_model },
    { .method = "GET", .path = "/v2/models/{name}/ready", .handler = api_v2_model_ready },
    /* 64 images of tensor JSON; 16 MiB holds 64 x 3x32x32 with room. The
     * handler parses the JSON, to answer errors in the protocol's shape. */
    { .method = "POST", .path = "/v2/models/{name}/infer", .handler = api_v2_infer,
      .max_body = 16 * 1024 * 1024 },
    { .method = "GET", .path = "/metrics", .handler = api_prometheus_get },
    { .method = "GET", .path = "/", .handler = api_static_index },
    { .method = "GET", .path = "/web/{path}", .handler = api_static_file, .tail = 1 },
};
const size_t http_routes_count = sizeof http_routes / sizeof http_routes[0];

/* Without settings (unit tests): connection threads are bounded by this
 * (one thread per connection), and an idle or trickling client is dropped
 * after this many seconds of silence. The daemon takes both from its
 * settings (max-connections, request-timeout). */
#define HTTP_CONNECTION_LIMIT 64
#define HTTP_IDLE_TIMEOUT 60

/* ---- errors and replies ---- */

static const struct {
    const char *code;
    unsigned status;
} errors[HTTP_ERR_COUNT] = {
    [HTTP_ERR_INVALID_ARGUMENT] = { "invalid_argument", 400 },
    [HTTP_ERR_INVALID_JSON] = { "invalid_json", 400 },
    [HTTP_ERR_UNAUTHORIZED] = { "unauthorized", 401 },
    [HTTP_ERR_NOT_FOUND] = { "not_found", 404 },
    [HTTP_ERR_METHOD_NOT_ALLOWED] = { "method_not_allowed", 405 },
    [HTTP_ERR_CONFLICT] = { "conflict", 409 },
    [HTTP_ERR_PAYLOAD_TOO_LARGE] = { "payload_too_large", 413 },
    [HTTP_ERR_UNSUPPORTED_MEDIA] = { "unsupported_media_type", 415 },
    [HTTP_ERR_RESOURCE_EXHAUSTED] = { "resource_exhausted", 429 },
    [HTTP_ERR_INTERNAL] = { "internal", 500 },
    [HTTP_ERR_UNAVAILABLE] = { "unavailable", 503 },
};

const char *http_err_code(http_err e)
{
    return (unsigned)e < HTTP_ERR_COUNT ? errors[e].code : "internal";
}

unsigned http_err_status(http_err e)
{
    return (unsigned)e < HTTP_ERR_COUNT ? errors[e].status : 500;
}

void http_reply_clear(http_reply *rep)
{
    if (rep == NULL)
        return;
    free(rep->body);
    if (rep->stream_free != NULL)
        rep->stream_free(rep->stream_cls);
    if (rep->has_fd)
        close(rep->fd);
    memset(rep, 0, sizeof *rep);
}

/* Drops an earlier file body (a handler may replace a file reply by an
 * error). */
static void drop_fd(http_reply *rep)
{
    if (rep->has_fd) {
        close(rep->fd);
        rep->has_fd = 0;
        rep->fd = -1;
        rep->fd_size = 0;
    }
}

void http_reply_file(http_reply *rep, unsigned status, const char *content_type, int fd,
                     unsigned long long fd_size)
{
    drop_fd(rep);
    free(rep->body);
    rep->body = NULL;
    rep->len = 0;
    rep->status = status;
    rep->content_type = content_type;
    rep->has_fd = 1;
    rep->fd = fd;
    rep->fd_size = fd_size;
}

void http_reply_header(http_reply *rep, const char *name, const char *fmt, ...)
{
    va_list ap;

    if (rep->nheaders >= HTTP_MAX_HEADERS) {
        log_err("reply header %s dropped: more than %d extra headers", name, HTTP_MAX_HEADERS);
        return;
    }
    snprintf(rep->headers[rep->nheaders].name, HTTP_HEADER_NAME_MAX, "%s", name);
    va_start(ap, fmt);
    vsnprintf(rep->headers[rep->nheaders].value, HTTP_HEADER_VALUE_MAX, fmt, ap);
    va_end(ap);
    rep->nheaders++;
}

void http_reply_text(http_reply *rep, unsigned status, const char *content_type,
                     const char *text, size_t len)
{
    drop_fd(rep);
    free(rep->body);
    rep->body = xmalloc(len + 1);
    memcpy(rep->body, text, len);
    rep->body[len] = '\0';
    rep->len = len;
    rep->status = status;
    rep->content_type = content_type;
}

void http_reply_stream(http_reply *rep, unsigned status, const char *content_type,
                       http_stream_fn fn, void *cls, void (*free_fn)(void *))
{
    drop_fd(rep);
    free(rep->body);
    rep->body = NULL;
    rep->len = 0;
    rep->status = status;
    rep->content_type = content_type;
    rep->stream = fn;
    rep->stream_cls = cls;
    rep->stream_free = free_fn;
}

/* The reply of last resort, when even building an error document failed. */
static void reply_internal_static(http_reply *rep)
{
    static const char body[] =
        "{\"error\":{\"code\":\"internal\",\"message\":\"cannot build the reply\","
        "\"field\":null}}\n";
    drop_fd(rep);
    free(rep->body);
    rep->status = 500;
    rep->content_type = "application/json";
    rep->body = xstrdup(body);
    rep->len = sizeof body - 1;
}

void http_reply_json(http_reply *rep, unsigned status, cJSON *doc)
{
    char *text = doc != NULL ? cJSON_PrintUnformatted(doc) : NULL;
    size_t n;

    cJSON_Delete(doc);
    if (text == NULL) {
        reply_internal_static(rep);
        return;
    }
    n = strlen(text);
    drop_fd(rep);
    free(rep->body);
    rep->body = xmalloc(n + 2);
    memcpy(rep->body, text, n);
    rep->body[n] = '\n';
    rep->body[n + 1] = '\0';
    rep->len = n + 1;
    rep->status = status;
    rep->content_type = "application/json";
    cJSON_free(text);
}

void http_reply_error(http_reply *rep, http_err code, const char *field,
                      const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    cJSON *doc = cJSON_CreateObject();
    cJSON *err = cJSON_AddObjectToObject(doc, "error");

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cJSON_AddStringToObject(err, "code", http_err_code(code));
    cJSON_AddStringToObject(err, "message", msg);
    if (field != NULL)
        cJSON_AddStringToObject(err, "field", field);
    else
        cJSON_AddNullToObject(err, "field");
    http_reply_json(rep, http_err_status(code), doc);
}

/* ---- routing ---- */

const char *http_param(const http_params *params, const char *name)
{
    for (int i = 0; i < params->n; i++)
        if (strcmp(params->p[i].name, name) == 0)
            return params->p[i].value;
    return NULL;
}

/* Matches path against pattern segment by segment, capturing {name}
 * segments into *params; with tail, a last {name} takes the rest of the
 * path. Returns 1 on a match. */
static int pattern_match(const char *pat, const char *path, int tail, http_params *params)
{
    params->n = 0;
    if (*pat != '/' || *path != '/')
        return 0;
    while (*pat == '/' && *path == '/') {
        const char *pend, *send;
        size_t plen, slen;

        pat++;
        path++;
        pend = strchr(pat, '/');
        send = strchr(path, '/');
        plen = pend != NULL ? (size_t)(pend - pat) : strlen(pat);
        slen = send != NULL ? (size_t)(send - path) : strlen(path);
        if (plen >= 2 && pat[0] == '{' && pat[plen - 1] == '}') {
            size_t nlen = plen - 2;
            if (tail && pat[plen] == '\0')
                slen = strlen(path);   /* the rest, slashes included */
            if (slen == 0 || slen >= HTTP_PARAM_VALUE_MAX ||
                nlen >= HTTP_PARAM_NAME_MAX || params->n >= HTTP_MAX_PARAMS)
                return 0;
            memcpy(params->p[params->n].name, pat + 1, nlen);
            params->p[params->n].name[nlen] = '\0';
            memcpy(params->p[params->n].value, path, slen);
            params->p[params->n].value[slen] = '\0';
            params->n++;
        } else if (plen != slen || memcmp(pat, path, plen) != 0) {
            return 0;
        }
        pat += plen;
        path += slen;
    }
    return *pat == '\0' && *path == '\0';
}

/* Appends m to the comma-separated list in buf unless already there. */
static void allow_add(char *buf, size_t len, const char *m)
{
    size_t used = strlen(buf), mlen = strlen(m);
    const char *p = buf;

    while ((p = strstr(p, m)) != NULL) {
        if ((p == buf || p[-1] == ' ') && (p[mlen] == ',' || p[mlen] == '\0'))
            return;
        p += mlen;
    }
    snprintf(buf + used, len - used, "%s%s", used ? ", " : "", m);
}

http_match http_route_match(const http_route *routes, size_t n, const char *method,
                            const char *path, const http_route **route,
                            http_params *params, char *allow, size_t allowlen)
{
    char allowed[96] = "";
    int path_known = 0;
    http_params tmp;
    /* HEAD is GET without the body; libmicrohttpd drops the body itself. */
    const char *want = strcmp(method, "HEAD") == 0 ? "GET" : method;

    for (size_t i = 0; i < n; i++) {
        if (!pattern_match(routes[i].path, path, routes[i].tail, &tmp))
            continue;
        if (strcmp(routes[i].method, want) == 0) {
            if (route != NULL)
                *route = &routes[i];
            if (params != NULL)
                *params = tmp;
            return HTTP_MATCH_FOUND;
        }
        path_known = 1;
        allow_add(allowed, sizeof allowed, routes[i].method);
        if (strcmp(routes[i].method, "GET") == 0)
            allow_add(allowed, sizeof allowed, "HEAD");
    }
    if (!path_known)
        return HTTP_MATCH_NOT_FOUND;
    if (allow != NULL && allowlen > 0)
        snprintf(allow, allowlen, "%s", allowed);
    return HTTP_MATCH_BAD_METHOD;
}

/* ---- requests ---- */

const char *http_req_header(const http_req *req, const char *name)
{
    if (req->conn == NULL)
        return NULL;
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *http_req_query(const http_req *req, const char *name)
{
    if (req->conn == NULL)
        return NULL;
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

/* ---- request counters (GET /metrics) ---- */

/* Prometheus's default buckets, seconds. */
static const double buckets[] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 };
#define NBUCKETS (sizeof buckets / sizeof buckets[0])
#define NCODES 12   /* distinct status codes counted per route; more share "other" */

typedef struct route_stats {
    struct { unsigned code; unsigned long long n; } codes[NCODES];
    unsigned long long bucket[NBUCKETS];   /* non-cumulative; summed on output */
    unsigned long long count;
    double sum;
} route_stats;

struct http_server {
    struct MHD_Daemon *mhd;
    const http_route *routes;
    size_t nroutes;
    struct app *app;
    pthread_mutex_t stats_mu;
    route_stats *stats;       /* nroutes + 1; the last is "unmatched" */
};

static void stats_record(http_server *s, const http_route *route, unsigned code,
                         double seconds)
{
    size_t i = route != NULL ? (size_t)(route - s->routes) : s->nroutes;
    route_stats *rs;

    if (i > s->nroutes)
        i = s->nroutes;
    rs = &s->stats[i];
    pthread_mutex_lock(&s->stats_mu);
    for (int k = 0; k < NCODES; k++) {
        /* The last slot collects codes beyond the first NCODES - 1 seen. */
        if (rs->codes[k].code == code || rs->codes[k].code == 0 || k == NCODES - 1) {
            if (rs->codes[k].code == 0)
                rs->codes[k].code = code;
            rs->codes[k].n++;
            break;
        }
    }
    for (size_t b = 0; b < NBUCKETS; b++) {
        if (seconds <= buckets[b]) {
            rs->bucket[b]++;
            break;
        }
    }
    rs->count++;
    rs->sum += seconds;
    pthread_mutex_unlock(&s->stats_mu);
}

void http_metrics_write(http_server *s, strbuf *out)
{
    pthread_mutex_lock(&s->stats_mu);
    sb_printf(out, "# HELP convnetd_http_requests_total HTTP requests answered, by route "
                   "pattern and status code.\n# TYPE convnetd_http_requests_total counter\n");
    for (size_t i = 0; i <= s->nroutes; i++) {
        const char *route = i < s->nroutes ? s->routes[i].path : "unmatched";
        const char *method = i < s->nroutes ? s->routes[i].method : "";
        for (int k = 0; k < NCODES && s->stats[i].codes[k].code != 0; k++)
            sb_printf(out, "convnetd_http_requests_total{method=\"%s\",route=\"%s\","
                           "code=\"%u\"} %llu\n", method, route,
                      s->stats[i].codes[k].code, s->stats[i].codes[k].n);
    }
    sb_printf(out, "# HELP convnetd_http_request_duration_seconds Time from a request's "
                   "first byte to the end of its reply.\n"
                   "# TYPE convnetd_http_request_duration_seconds histogram\n");
    for (size_t i = 0; i <= s->nroutes; i++) {
        const route_stats *rs = &s->stats[i];
        const char *route = i < s->nroutes ? s->routes[i].path : "unmatched";
        const char *method = i < s->nroutes ? s->routes[i].method : "";
        unsigned long long cum = 0;
        if (rs->count == 0)
            continue;
        for (size_t b = 0; b < NBUCKETS; b++) {
            cum += rs->bucket[b];
            sb_printf(out, "convnetd_http_request_duration_seconds_bucket{method=\"%s\","
                           "route=\"%s\",le=\"%g\"} %llu\n", method, route, buckets[b], cum);
        }
        sb_printf(out, "convnetd_http_request_duration_seconds_bucket{method=\"%s\","
                       "route=\"%s\",le=\"+Inf\"} %llu\n", method, route, rs->count);
        sb_printf(out, "convnetd_http_request_duration_seconds_sum{method=\"%s\","
                       "route=\"%s\"} %.6f\n", method, route, rs->sum);
        sb_printf(out, "convnetd_http_request_duration_seconds_count{method=\"%s\","
                       "route=\"%s\"} %llu\n", method, route, rs->count);
    }
    pthread_mutex_unlock(&s->stats_mu);
}

/* Per-request state, from the first access callback to the completed one. */
typedef struct req_ctx {
    http_req req;
    const http_route *route;   /* NULL when routing failed */
    http_reply reply;
    double t0;                 /* now_mono() at the first callback */
    unsigned sent_status;      /* the status queued, 0 before */
    int failed;                /* reply already holds an error: skip the handler */
    char *buf;                 /* body so far, NUL-terminated when non-NULL */
    size_t len, cap;
    cJSON *json;
} req_ctx;

/* Sends rep on conn; the body's ownership passes to libmicrohttpd. This is
 * the only place a response is queued. */
/* Adapts an http_stream_fn to libmicrohttpd's content reader. */
typedef struct stream_ctx {
    http_stream_fn fn;
    void *cls;
    void (*free_fn)(void *);
} stream_ctx;

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    stream_ctx *sc = cls;
    long n;

    (void)pos;
    n = sc->fn(sc->cls, buf, max);
    if (n == HTTP_STREAM_END || n < 0)
        return MHD_CONTENT_READER_END_OF_STREAM;
    if (n == 0) {
        /* Zero would make libmicrohttpd call again at once; the contract
         * forbids it, so treat it as the end rather than spin. */
        log_err("a stream callback returned 0 bytes; ending the stream");
        return MHD_CONTENT_READER_END_OF_STREAM;
    }
    return (ssize_t)n;
}

static void stream_release(void *cls)
{
    stream_ctx *sc = cls;
    if (sc->free_fn != NULL)
        sc->free_fn(sc->cls);
    free(sc);
}

static enum MHD_Result send_reply(struct MHD_Connection *conn, const http_req *req,
                                  http_reply *rep)
{
    struct MHD_Response *resp;
    enum MHD_Result ret;

    if (rep->status == 0) {
        log_err("%s %s: handler produced no reply", req->method, req->path);
        http_reply_error(rep, HTTP_ERR_INTERNAL, NULL, "the handler produced no reply");
    }
    if (rep->status >= 500)
        log_err("%s %s -> %u", req->method, req->path, rep->status);
    if (rep->stream != NULL) {
        stream_ctx *sc = xcalloc(1, sizeof *sc);
        sc->fn = rep->stream;
        sc->cls = rep->stream_cls;
        sc->free_fn = rep->stream_free;
        /* From here on the stream's context belongs to sc, even when the
         * response cannot be made (stream_release runs then). */
        rep->stream = NULL;
        rep->stream_cls = NULL;
        rep->stream_free = NULL;
        resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, &stream_read,
                                                 sc, &stream_release);
        if (resp == NULL) {
            stream_release(sc);
            http_reply_clear(rep);
            return MHD_NO;
        }
    } else if (rep->has_fd) {
        /* The response owns the fd from here (MHD closes it when the response
         * is destroyed); when none can be made, it is ours to close. */
        rep->has_fd = 0;
        resp = MHD_create_response_from_fd64(rep->fd_size, rep->fd);
        if (resp == NULL) {
            close(rep->fd);
            http_reply_clear(rep);
            return MHD_NO;
        }
    } else {
        resp = MHD_create_response_from_buffer_with_free_callback(rep->len, rep->body, &free);
        if (resp == NULL) {
            http_reply_clear(rep);
            return MHD_NO;
        }
        rep->body = NULL;   /* owned by resp now */
        rep->len = 0;
    }
    if (rep->content_type != NULL)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, rep->content_type);
    if (rep->allow[0] != '\0')
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, rep->allow);
    if (rep->location[0] != '\0')
        MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, rep->location);
    if (rep->no_cache)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    for (int i = 0; i < rep->nheaders && i < HTTP_MAX_HEADERS; i++)
        MHD_add_response_header(resp, rep->headers[i].name, rep->headers[i].value);
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    ret = MHD_queue_response(conn, rep->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* 1 when the presented token equals the secret, in time that depends on
 * neither the secret's bytes nor its length: both are zero-padded into
 * fixed HTTP_TOKEN_MAX-byte buffers and every byte is compared, with no
 * early exit. The only length revealed is the presented one's (over the
 * maximum it is refused at once), which the client knows anyway. */
static int token_equal(const char *given, const char *secret)
{
    unsigned char a[HTTP_TOKEN_MAX] = { 0 }, b[HTTP_TOKEN_MAX] = { 0 };
    size_t lg = strnlen(given, HTTP_TOKEN_MAX + 1);
    size_t ls = strnlen(secret, HTTP_TOKEN_MAX);
    volatile unsigned diff;

    if (lg > HTTP_TOKEN_MAX)
        return 0;
    memcpy(a, given, lg);
    memcpy(b, secret, ls);
    diff = (unsigned)(lg ^ ls);
    for (size_t i = 0; i < HTTP_TOKEN_MAX; i++)
        diff |= (unsigned)(a[i] ^ b[i]);
    return diff == 0;
}

/* 1 when the Content-Type value ct is application/json (any case, any
 * parameters such as "; charset=utf-8", surrounding blanks allowed). */
static int is_json_media_type(const char *ct)
{
    static const char want[] = "application/json";
    size_t n = sizeof want - 1;

    while (*ct == ' ' || *ct == '\t')
        ct++;
    if (strncasecmp(ct, want, n) != 0)
        return 0;
    ct += n;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    return *ct == '\0' || *ct == ';';
}

/* The body limit of the matched route: its own max_body, lowered to the
 * max-body setting when that is smaller. */
static size_t route_max_body(const req_ctx *ctx)
{
    size_t max = ctx->route->max_body;
    const app *a = ctx->req.app;

    if (a != NULL && a->cfg != NULL && a->cfg->max_body > 0 &&
        (unsigned long)a->cfg->max_body < max)
        max = (size_t)a->cfg->max_body;
    return max;
}

/* Routes the request and checks its declared size. Errors go to ctx->reply. */
static void begin_request(req_ctx *ctx, const http_server *s)
{
    const char *cl;
    http_match m = http_route_match(s->routes, s->nroutes, ctx->req.method, ctx->req.path,
                                    &ctx->route, &ctx->req.params,
                                    ctx->reply.allow, sizeof ctx->reply.allow);
    if (m == HTTP_MATCH_NOT_FOUND) {
        ctx->route = NULL;
        ctx->failed = 1;
        http_reply_error(&ctx->reply, HTTP_ERR_NOT_FOUND, NULL, "no such path: %s",
                         ctx->req.path);
        return;
    }
    if (m == HTTP_MATCH_BAD_METHOD) {
        ctx->route = NULL;
        ctx->failed = 1;
        http_reply_error(&ctx->reply, HTTP_ERR_METHOD_NOT_ALLOWED, NULL,
                         "%s is not allowed on %s; allowed: %s", ctx->req.method,
                         ctx->req.path, ctx->reply.allow);
        return;
    }
    /* Changes need the bearer token when one is configured. */
    if (s->app != NULL && s->app->token != NULL && strcmp(ctx->route->method, "GET") != 0) {
        const char *auth = MHD_lookup_connection_value(ctx->req.conn, MHD_HEADER_KIND,
                                                       MHD_HTTP_HEADER_AUTHORIZATION);
        if (auth == NULL || strncmp(auth, "Bearer ", 7) != 0 ||
            !token_equal(auth + 7, s->app->token)) {
            ctx->failed = 1;
            http_reply_error(&ctx->reply, HTTP_ERR_UNAUTHORIZED, NULL,
                             "%s %s needs \"Authorization: Bearer <token>\"",
                             ctx->route->method, ctx->route->path);
            return;
        }
    }
    /* A JSON route takes JSON: a body declared as something else (curl -d
     * without -H sends application/x-www-form-urlencoded) is refused before
     * it is read. No Content-Type at all is accepted, for minimal clients. */
    if (ctx->route->json) {
        const char *ct = MHD_lookup_connection_value(ctx->req.conn, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_CONTENT_TYPE);
        if (ct != NULL && !is_json_media_type(ct)) {
            ctx->failed = 1;
            http_reply_error(&ctx->reply, HTTP_ERR_UNSUPPORTED_MEDIA, NULL,
                             "%s %s takes application/json, not %.64s (with curl, add "
                             "-H 'Content-Type: application/json')",
                             ctx->route->method, ctx->route->path, ct);
            return;
        }
    }
    /* Refuse early on a declared length, so we never buffer any of it. */
    cl = MHD_lookup_connection_value(ctx->req.conn, MHD_HEADER_KIND,
                                     MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl != NULL) {
        char *end;
        unsigned long long v = strtoull(cl, &end, 10);
        if (end != cl && *end == '\0' && v > route_max_body(ctx)) {
            ctx->failed = 1;
            http_reply_error(&ctx->reply, HTTP_ERR_PAYLOAD_TOO_LARGE, NULL,
                             "request body is %llu bytes; %s %s takes at most %zu",
                             v, ctx->route->method, ctx->route->path,
                             route_max_body(ctx));
        }
    }
}

/* Appends an upload chunk, or fails the request with 413 past max_body. */
static void add_body(req_ctx *ctx, const char *data, size_t n)
{
    size_t max = route_max_body(ctx);

    if (n > max || ctx->len > max - n) {
        ctx->failed = 1;
        http_reply_error(&ctx->reply, HTTP_ERR_PAYLOAD_TOO_LARGE, NULL,
                         "request body exceeds %zu bytes for %s %s",
                         max, ctx->route->method, ctx->route->path);
        return;
    }
    if (ctx->len + n + 1 > ctx->cap) {
        /* Doubling, capped at the route's limit, bounds memory per request. */
        size_t cap = ctx->cap ? ctx->cap : 4096;
        while (cap < ctx->len + n + 1)
            cap *= 2;
        if (cap > max + 1)
            cap = max + 1;
        ctx->buf = xrealloc(ctx->buf, cap);
        ctx->cap = cap;
    }
    memcpy(ctx->buf + ctx->len, data, n);
    ctx->len += n;
    ctx->buf[ctx->len] = '\0';
}

/* The body is complete: parse JSON if the route wants it, run the handler. */
static void run_handler(req_ctx *ctx)
{
    ctx->req.body = ctx->buf != NULL ? ctx->buf : "";
    ctx->req.body_len = ctx->len;
    if (ctx->route->json) {
        const char *end = NULL;
        if (ctx->len == 0) {
            http_reply_error(&ctx->reply, HTTP_ERR_INVALID_JSON, NULL,
                             "%s %s needs a JSON body", ctx->route->method,
                             ctx->route->path);
            return;
        }
        /* json_parse_strict reports the error position through end rather
         * than through cJSON's global error pointer, which is not
         * thread-safe, and refuses NULs, which cJSON would let truncate a
         * string. */
        ctx->json = json_parse_strict(ctx->buf, ctx->len, &end);
        if (ctx->json == NULL) {
            size_t at = end != NULL && end >= ctx->buf ? (size_t)(end - ctx->buf) : 0;
            http_reply_error(&ctx->reply, HTTP_ERR_INVALID_JSON, NULL,
                             "request body is not valid JSON (near byte %zu)", at);
            return;
        }
        ctx->req.json = ctx->json;
    }
    ctx->route->handler(&ctx->req, &ctx->reply);
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version,
                                 const char *upload_data, size_t *upload_data_size,
                                 void **con_cls)
{
    http_server *s = cls;
    req_ctx *ctx = *con_cls;

    (void)version;
    if (ctx == NULL) {
        ctx = xcalloc(1, sizeof *ctx);
        ctx->req.app = s->app;
        ctx->req.method = method;
        ctx->req.path = url;
        ctx->req.body = "";
        ctx->req.conn = conn;
        ctx->req.server = s;
        ctx->t0 = now_mono();
        *con_cls = ctx;
        begin_request(ctx, s);
        /* A declared body over the limit is refused at once, not read:
         * waiting for gigabytes that will be dropped helps nobody.
         * libmicrohttpd sends the reply and closes the connection. */
        if (ctx->failed && ctx->reply.status == 413) {
            ctx->sent_status = 413;
            return send_reply(conn, &ctx->req, &ctx->reply);
        }
        return MHD_YES;
    }
    if (*upload_data_size != 0) {
        /* After an error the rest of the body is read and dropped, so the
         * client sees our reply rather than a reset connection. */
        if (!ctx->failed)
            add_body(ctx, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (!ctx->failed)
        run_handler(ctx);
    if (ctx->reply.status == 0)
        ctx->sent_status = 500;   /* send_reply turns it into a 500 */
    else
        ctx->sent_status = ctx->reply.status;
    return send_reply(conn, &ctx->req, &ctx->reply);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    http_server *s = cls;
    req_ctx *ctx = *con_cls;

    (void)conn;
    (void)toe;
    if (ctx == NULL)
        return;
    if (ctx->sent_status != 0)
        stats_record(s, ctx->route, ctx->sent_status, now_mono() - ctx->t0);
    cJSON_Delete(ctx->json);
    free(ctx->buf);
    http_reply_clear(&ctx->reply);
    free(ctx);
    *con_cls = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    log_vmsg(LOG_LVL_WARN, fmt, ap);
}

/* ---- the server ---- */

int http_start(http_server **out, const http_route *routes, size_t nroutes,
               struct app *shared, const struct sockaddr *addr, socklen_t addrlen,
               char *err, size_t errlen)
{
    http_server *s = xcalloc(1, sizeof *s);
    /* A thread per connection: later endpoints (Server-Sent Events, uploads
     * to a busy worker) may block, which would stall a shared poll thread.
     * HTTP_CONNECTION_LIMIT bounds the thread count. */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                     MHD_USE_AUTO | MHD_USE_ERROR_LOG;
    const cfg *c = shared != NULL ? shared->cfg : NULL;
    unsigned conn_limit = c != NULL ? (unsigned)c->max_connections : HTTP_CONNECTION_LIMIT;
    unsigned timeout = c != NULL ? (unsigned)c->request_timeout : HTTP_IDLE_TIMEOUT;
    unsigned per_ip = c != NULL ? (unsigned)c->max_connections_per_ip : 0;

    (void)addrlen;  /* MHD takes the length from the address family */
    if (addr->sa_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    s->routes = routes;
    s->nroutes = nroutes;
    s->app = shared;
    s->stats = xcalloc(nroutes + 1, sizeof *s->stats);
    pthread_mutex_init(&s->stats_mu, NULL);
    /* The logger goes first, or MHD logs the options before it its own way. */
    s->mhd = MHD_start_daemon(flags, 0, NULL, NULL, &on_access, s,
                              MHD_OPTION_EXTERNAL_LOGGER, &on_mhd_log, NULL,
                              MHD_OPTION_SOCK_ADDR, addr,
                              MHD_OPTION_NOTIFY_COMPLETED, &on_completed, s,
                              MHD_OPTION_CONNECTION_LIMIT, conn_limit,
                              MHD_OPTION_PER_IP_CONNECTION_LIMIT, per_ip,
                              MHD_OPTION_CONNECTION_TIMEOUT, timeout,
                              MHD_OPTION_END);
    if (s->mhd == NULL) {
        /* libmicrohttpd has logged the reason (e.g. address in use). */
        if (err != NULL && errlen > 0)
            snprintf(err, errlen, "cannot start the HTTP server (see the message above)");
        pthread_mutex_destroy(&s->stats_mu);
        free(s->stats);
        free(s);
        return -1;
    }
    *out = s;
    return 0;
}

unsigned http_port(const http_server *s)
{
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_BIND_PORT);
    return info != NULL ? info->port : 0;
}

void http_stop(http_server *s)
{
    if (s == NULL)
        return;
    MHD_stop_daemon(s->mhd);
    pthread_mutex_destroy(&s->stats_mu);
    free(s->stats);
    free(s);
}
