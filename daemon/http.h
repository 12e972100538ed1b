/* http.h: the HTTP layer of convnetd: the route table, request and reply
 * types, JSON error replies, and the libmicrohttpd server that drives them.
 *
 * Handlers never see libmicrohttpd: they read an http_req and fill an
 * http_reply, so they can be called from tests without sockets. Routing
 * (http_route_match) is a pure function. Nothing here knows about jobs,
 * models or devices; those live in api_*.c. */
#ifndef CONVNETD_HTTP_H
#define CONVNETD_HTTP_H

#include <stddef.h>
#include <sys/socket.h>

#include <cjson/cJSON.h>

struct app;             /* the daemon's shared state, defined in app.h */
struct MHD_Connection;
struct http_server;

/* ---- path parameters ---- */

#define HTTP_MAX_PARAMS 4
#define HTTP_PARAM_NAME_MAX 32
#define HTTP_PARAM_VALUE_MAX 128   /* longer segments do not match: 404 */

/* The {name} segments captured from a request path, in pattern order. */
typedef struct http_params {
    int n;
    struct {
        char name[HTTP_PARAM_NAME_MAX];
        char value[HTTP_PARAM_VALUE_MAX];
    } p[HTTP_MAX_PARAMS];
} http_params;

/* The value captured for {name}, or NULL if the route has no such segment. */
const char *http_param(const http_params *params, const char *name);

/* ---- errors and replies ---- */

/* The stable error codes of the API; each has one HTTP status. Clients
 * match on the code string, so codes are never renamed. */
typedef enum http_err {
    HTTP_ERR_INVALID_ARGUMENT,   /* 400 invalid_argument */
    HTTP_ERR_INVALID_JSON,       /* 400 invalid_json */
    HTTP_ERR_UNAUTHORIZED,       /* 401 unauthorized */
    HTTP_ERR_NOT_FOUND,          /* 404 not_found */
    HTTP_ERR_METHOD_NOT_ALLOWED, /* 405 method_not_allowed */
    HTTP_ERR_CONFLICT,           /* 409 conflict */
    HTTP_ERR_PAYLOAD_TOO_LARGE,  /* 413 payload_too_large */
    HTTP_ERR_UNSUPPORTED_MEDIA,  /* 415 unsupported_media_type */
    HTTP_ERR_RESOURCE_EXHAUSTED, /* 429 resource_exhausted */
    HTTP_ERR_INTERNAL,           /* 500 internal */
    HTTP_ERR_UNAVAILABLE,        /* 503 unavailable */
    HTTP_ERR_COUNT
} http_err;

/* The code string ("not_found") and HTTP status (404) of e. */
const char *http_err_code(http_err e);
unsigned http_err_status(http_err e);

/* A streamed body (Server-Sent Events): called on the connection's thread
 * whenever the client can take more. It writes up to max bytes to buf and
 * returns how many (>= 1), or HTTP_STREAM_END to finish the reply. It may
 * block (the server runs a thread per connection), but for at most a
 * second or so, so that shutdown is never held up for long. It must never
 * return 0. */
#define HTTP_STREAM_END (-1L)
typedef long (*http_stream_fn)(void *cls, char *buf, size_t max);

#define HTTP_MAX_HEADERS 4          /* extra headers a reply may carry */
#define HTTP_HEADER_NAME_MAX 32
#define HTTP_HEADER_VALUE_MAX 192

/* What a handler answers. Zero-initialise it; a handler that leaves status 0
 * produces a 500. body is owned by the reply (malloc'd). */
typedef struct http_reply {
    unsigned status;
    const char *content_type;   /* static string */
    char *body;
    size_t len;
    char allow[96];             /* Allow header for 405; "" = none */
    char location[128];         /* Location header (201); "" = none */
    int no_cache;               /* send Cache-Control: no-cache */
    http_stream_fn stream;      /* when set, the body is streamed, not body */
    void *stream_cls;
    void (*stream_free)(void *cls);  /* releases stream_cls once the reply is done */
    int has_fd;                 /* the body is the file fd (owned), fd_size bytes */
    int fd;
    unsigned long long fd_size;
    int nheaders;               /* extra headers (ETag, Content-Disposition, ...) */
    struct {
        char name[HTTP_HEADER_NAME_MAX];
        char value[HTTP_HEADER_VALUE_MAX];
    } headers[HTTP_MAX_HEADERS];
} http_reply;

/* Sets rep to status with doc serialised as its body (plus a newline, for
 * curl users). Takes ownership of doc, even on failure; replaces any earlier
 * body. A doc that cannot be printed yields a 500 error reply. */
void http_reply_json(http_reply *rep, unsigned status, cJSON *doc);

/* Sets rep to the error reply for code: status http_err_status(code), body
 * {"error":{"code":"...","message":"...","field":"..." or null}}. field
 * names the offending request field (e.g. "solver.learning_rate") or is
 * NULL. The message is printf-formatted and truncated to 512 bytes. */
void http_reply_error(http_reply *rep, http_err code, const char *field,
                      const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Sets rep to status with a copy of text (len bytes) as its body. */
void http_reply_text(http_reply *rep, unsigned status, const char *content_type,
                     const char *text, size_t len);

/* Sets rep to a streamed reply: fn produces the body from cls, free_fn (may
 * be NULL) releases cls when the reply ends, also when it is never sent.
 * Ownership of cls passes to rep. */
void http_reply_stream(http_reply *rep, unsigned status, const char *content_type,
                       http_stream_fn fn, void *cls, void (*free_fn)(void *));

/* Sets rep to status with the file open at fd (fd_size bytes from its
 * start) as its body; libmicrohttpd sends it without copying it into
 * memory. Takes ownership of fd, even on failure (it is closed when the
 * reply is sent or cleared). Replaces any earlier body. */
void http_reply_file(http_reply *rep, unsigned status, const char *content_type, int fd,
                     unsigned long long fd_size);

/* Adds the header name: value (printf-formatted) to rep. Names and values
 * longer than the limits above are truncated; beyond HTTP_MAX_HEADERS the
 * header is dropped (and logged): a programming error, not a client's.
 * Values must not contain CR or LF (the caller builds them from safe text). */
void http_reply_header(http_reply *rep, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Frees rep's body (and an unsent stream's cls, and an unsent fd) and zeroes
 * it. NULL-safe. */
void http_reply_clear(http_reply *rep);

/* ---- requests and routes ---- */

/* A request as a handler sees it. Everything is borrowed and valid only
 * during the handler call. */
typedef struct http_req {
    struct app *app;            /* shared daemon state, as given to http_start */
    const char *method;         /* as sent: "GET", "HEAD", "POST", ... */
    const char *path;           /* decoded path, no query string */
    http_params params;         /* captured {name} segments */
    const char *body;           /* NUL-terminated; "" when there is none */
    size_t body_len;
    const cJSON *json;          /* parsed body for routes with .json set, else NULL */
    struct MHD_Connection *conn;/* NULL when a test calls a handler directly */
    struct http_server *server; /* the server answering; NULL likewise */
} http_req;

/* A request header or query argument by name (headers case-insensitive), or
 * NULL when absent or when req->conn is NULL. */
const char *http_req_header(const http_req *req, const char *name);
const char *http_req_query(const http_req *req, const char *name);

/* Handles one request. Runs on a libmicrohttpd connection thread: handlers
 * must be thread-safe and must not block for long. */
typedef void (*http_handler)(const http_req *req, http_reply *rep);

/* One line of a route table. path is literal segments and {name} segments
 * ("/v1/jobs/{id}/cancel"). A request body larger than max_body gets 413
 * (max_body 0: no body allowed). With json set, the body must be valid JSON
 * and arrives parsed in req->json; otherwise 400 invalid_json. With tail
 * set, the pattern's last segment must be a {name}, and it captures the
 * rest of the path, slashes included ("/web/{path}" matches
 * "/web/vendor/a.js" with path = "vendor/a.js"; static files). */
typedef struct http_route {
    const char *method;
    const char *path;
    http_handler handler;
    size_t max_body;
    int json;
    int tail;
} http_route;

/* When app->token is set, every route whose method is not GET (or HEAD)
 * needs "Authorization: Bearer <token>"; without it the answer is 401. That
 * includes classify and /v2 infer: they change nothing, but they spend
 * compute, and a daemon reachable beyond loopback should not hand that out
 * to anyone. The comparison takes constant time (tokens are at most
 * HTTP_TOKEN_MAX bytes). */
#define HTTP_TOKEN_MAX 256

/* The daemon's route table (defined in http.c). */
extern const http_route http_routes[];
extern const size_t http_routes_count;

typedef enum http_match {
    HTTP_MATCH_FOUND = 0,
    HTTP_MATCH_NOT_FOUND,    /* no route has this path: 404 */
    HTTP_MATCH_BAD_METHOD    /* the path exists with other methods: 405 */
} http_match;

/* Finds the route for method and path in routes[0..n). HEAD matches GET
 * routes. Paths match segment by segment: no trailing-slash folding, and a
 * {name} segment matches any non-empty segment shorter than
 * HTTP_PARAM_VALUE_MAX (a tail route's last {name}: any non-empty rest of
 * the path shorter than that). On FOUND sets *route and fills *params (either may be
 * NULL). On BAD_METHOD writes the allowed methods, e.g. "GET, HEAD, POST",
 * to allow (allowlen bytes, may be NULL). Pure and thread-safe. */
http_match http_route_match(const http_route *routes, size_t n, const char *method,
                            const char *path, const http_route **route,
                            http_params *params, char *allow, size_t allowlen);

/* ---- the server ---- */

typedef struct http_server http_server;

/* Starts serving routes[0..nroutes) on addr (IPv4 or IPv6) with a thread
 * per connection. routes and app are borrowed until http_stop. Returns 0
 * and *out, or -1 with a message in err (errlen bytes). */
int http_start(http_server **out, const http_route *routes, size_t nroutes,
               struct app *app, const struct sockaddr *addr, socklen_t addrlen,
               char *err, size_t errlen);

/* The TCP port actually bound (the real one when 0 was asked for). */
unsigned http_port(const http_server *s);

/* Appends the request counters in Prometheus text format to out:
 * convnetd_http_requests_total{route,code} and the histogram
 * convnetd_http_request_duration_seconds{route}. route is the route's
 * pattern ("/v1/jobs/{id}"), or "unmatched" for 404s. Thread-safe. */
struct strbuf;
void http_metrics_write(http_server *s, struct strbuf *out);

/* Stops accepting, closes connections, waits for handlers to finish and
 * frees s. NULL is a no-op. */
void http_stop(http_server *s);

#endif
