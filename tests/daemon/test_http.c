/* test_http.c: the libmicrohttpd glue in-process: a server on 127.0.0.1 on
 * an ephemeral port with a test route table, driven over real sockets.
 *
 * Covers what the pure route test cannot: body limits (declared and
 * chunked), central JSON parsing, {id} captures reaching the handler, HEAD,
 * headers, and the error document on the wire. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api.h"
#include "app.h"
#include "check.h"
#include "http.h"
#include "http_client.h"

/* POST /echo: answers {"got": <the parsed body>}. */
static void echo(const http_req *req, http_reply *rep)
{
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddItemToObject(doc, "got", cJSON_Duplicate(req->json, 1));
    http_reply_json(rep, 200, doc);
}

/* POST /raw: answers {"len": N, "body": "..."} for a non-JSON body. */
static void raw(const http_req *req, http_reply *rep)
{
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddNumberToObject(doc, "len", (double)req->body_len);
    cJSON_AddStringToObject(doc, "body", req->body);
    cJSON_AddBoolToObject(doc, "json_null", req->json == NULL);
    http_reply_json(rep, 201, doc);
}

/* GET /items/{id}: answers {"id": "...", "q": query arg q or null}. */
static void item(const http_req *req, http_reply *rep)
{
    cJSON *doc = cJSON_CreateObject();
    const char *q = http_req_query(req, "q");
    cJSON_AddStringToObject(doc, "id", http_param(&req->params, "id"));
    if (q != NULL)
        cJSON_AddStringToObject(doc, "q", q);
    else
        cJSON_AddNullToObject(doc, "q");
    http_reply_json(rep, 200, doc);
}

/* GET /stream: a streamed body of three pieces, "one two three". */
static long stream_fn(void *cls, char *buf, size_t max)
{
    int *state = cls;
    static const char *const pieces[] = { "one ", "two ", "three" };
    size_t n;
    if (*state >= 3)
        return HTTP_STREAM_END;
    n = strlen(pieces[*state]);
    if (n > max)
        n = max;
    memcpy(buf, pieces[*state], n);
    (*state)++;
    return (long)n;
}

static int stream_freed;

static void stream_free(void *cls)
{
    free(cls);
    stream_freed++;
}

static void streamed(const http_req *req, http_reply *rep)
{
    (void)req;
    http_reply_stream(rep, 200, "text/plain", stream_fn, calloc(1, sizeof(int)), stream_free);
}

/* GET /silent: a buggy handler that sets no reply. */
static void silent(const http_req *req, http_reply *rep)
{
    (void)req;
    (void)rep;
}

static const http_route routes[] = {
    { .method = "GET", .path = "/v1/health", .handler = api_health_get },
    { .method = "POST", .path = "/echo", .handler = echo, .max_body = 64, .json = 1 },
    { .method = "POST", .path = "/raw", .handler = raw, .max_body = 16 },
    { .method = "GET", .path = "/items/{id}", .handler = item },
    { .method = "DELETE", .path = "/items/{id}", .handler = item },
    { .method = "GET", .path = "/silent", .handler = silent },
    { .method = "GET", .path = "/stream", .handler = streamed },
};

/* The reply's body parsed as JSON; NULL (and a failed check) if it is not. */
static cJSON *json_body(const hc_reply *r)
{
    cJSON *doc = cJSON_Parse(r->body);
    CHECKF(doc != NULL, "body is not JSON: %s", r->body);
    return doc;
}

static const char *jstr(const cJSON *obj, const char *key)
{
    const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(obj, key));
    return s != NULL ? s : "(missing)";
}

/* The reply must be an error document with status and code. */
static void expect_error(const hc_reply *r, int status, const char *code, int line)
{
    cJSON *doc, *err;
    char ct[128];

    CHECKF(r->status == status, "line %d: status %d, want %d", line, r->status, status);
    CHECKF(hc_header(r, "Content-Type", ct, sizeof ct) != NULL &&
           strcmp(ct, "application/json") == 0, "line %d", line);
    doc = json_body(r);
    err = cJSON_GetObjectItemCaseSensitive(doc, "error");
    CHECKF(strcmp(jstr(err, "code"), code) == 0, "line %d: code %s, want %s",
           line, jstr(err, "code"), code);
    CHECKF(strlen(jstr(err, "message")) > 0, "line %d", line);
    CHECKF(cJSON_GetObjectItemCaseSensitive(err, "field") != NULL, "line %d", line);
    cJSON_Delete(doc);
}

int main(void)
{
    struct sockaddr_in sa;
    http_server *srv = NULL;
    char err[256], hdr[128], big[200];
    hc_reply r;
    cJSON *doc;
    unsigned port;
    cfg c;
    app a;

    cfg_defaults(&c);
    memset(&a, 0, sizeof a);
    a.cfg = &c;
    a.blas = "TestBLAS";
    a.cpu_threads = 1;
    a.started = time(NULL);
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = 0;
    if (http_start(&srv, routes, sizeof routes / sizeof routes[0], &a,
                   (struct sockaddr *)&sa, sizeof sa, err, sizeof err) != 0) {
        fprintf(stderr, "http_start: %s\n", err);
        return 1;
    }
    port = http_port(srv);
    CHECK(port != 0);

    /* Health through the real handler. */
    if (hc_request(port, "GET", "/v1/health", NULL, NULL, 0, &r) == 0) {
        CHECK(r.status == 200);
        doc = json_body(&r);
        CHECK(strcmp(jstr(doc, "status"), "ok") == 0);
        CHECK(strcmp(jstr(doc, "blas"), "TestBLAS") == 0);
        CHECK(hc_header(&r, "X-Content-Type-Options", hdr, sizeof hdr) != NULL);
        cJSON_Delete(doc);
        hc_free(&r);
    } else CHECK(!"GET /v1/health");

    /* HEAD: headers, no body. */
    if (hc_request(port, "HEAD", "/v1/health", NULL, NULL, 0, &r) == 0) {
        CHECK(r.status == 200);
        CHECK(r.body_len == 0);
        hc_free(&r);
    } else CHECK(!"HEAD /v1/health");

    /* JSON parsed centrally and handed over. */
    if (hc_request(port, "POST", "/echo", "Content-Type: application/json\r\n",
                   "{\"a\":[1,2]}", 11, &r) == 0) {
        CHECK(r.status == 200);
        doc = json_body(&r);
        CHECK(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(
                  cJSON_GetObjectItemCaseSensitive(doc, "got"), "a")) == 2);
        cJSON_Delete(doc);
        hc_free(&r);
    } else CHECK(!"POST /echo");

    if (hc_request(port, "POST", "/echo", NULL, "{\"a\":", 5, &r) == 0) {
        expect_error(&r, 400, "invalid_json", __LINE__);
        hc_free(&r);
    } else CHECK(!"POST /echo bad json");
    if (hc_request(port, "POST", "/echo", NULL, "", 0, &r) == 0) {
        expect_error(&r, 400, "invalid_json", __LINE__);
        hc_free(&r);
    } else CHECK(!"POST /echo empty");

    /* Body limits: by Content-Length, and for a chunked body as it grows. */
    memset(big, 'x', sizeof big);
    if (hc_request(port, "POST", "/echo", NULL, big, sizeof big, &r) == 0) {
        expect_error(&r, 413, "payload_too_large", __LINE__);
        hc_free(&r);
    } else CHECK(!"POST /echo big");
    {
        static const char chunked_big[] =
            "POST /raw HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            "Transfer-Encoding: chunked\r\n\r\n"
            "a\r\n0123456789\r\na\r\n0123456789\r\n0\r\n\r\n";
        static const char chunked_ok[] =
            "POST /raw HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            "Transfer-Encoding: chunked\r\n\r\n"
            "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
        if (hc_raw(port, chunked_big, sizeof chunked_big - 1, &r) == 0) {
            expect_error(&r, 413, "payload_too_large", __LINE__);
            hc_free(&r);
        } else CHECK(!"chunked big");
        if (hc_raw(port, chunked_ok, sizeof chunked_ok - 1, &r) == 0) {
            CHECK(r.status == 201);
            doc = json_body(&r);
            CHECK(strcmp(jstr(doc, "body"), "hello world") == 0);
            CHECK(cJSON_GetObjectItemCaseSensitive(doc, "len") != NULL &&
                  cJSON_GetObjectItemCaseSensitive(doc, "len")->valueint == 11);
            CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(doc, "json_null")));
            cJSON_Delete(doc);
            hc_free(&r);
        } else CHECK(!"chunked ok");
    }
    /* A body on a route that takes none. */
    if (hc_request(port, "GET", "/items/1", NULL, "x", 1, &r) == 0) {
        expect_error(&r, 413, "payload_too_large", __LINE__);
        hc_free(&r);
    } else CHECK(!"GET with body");

    /* Captures and query arguments reach the handler. */
    if (hc_request(port, "GET", "/items/42?q=cat", NULL, NULL, 0, &r) == 0) {
        CHECK(r.status == 200);
        doc = json_body(&r);
        CHECK(strcmp(jstr(doc, "id"), "42") == 0);
        CHECK(strcmp(jstr(doc, "q"), "cat") == 0);
        cJSON_Delete(doc);
        hc_free(&r);
    } else CHECK(!"GET /items/42");

    /* 404, 405 with Allow, and a handler that forgot to answer. */
    if (hc_request(port, "GET", "/items/", NULL, NULL, 0, &r) == 0) {
        expect_error(&r, 404, "not_found", __LINE__);
        hc_free(&r);
    } else CHECK(!"GET /items/");
    if (hc_request(port, "PUT", "/items/1", NULL, "{}", 2, &r) == 0) {
        expect_error(&r, 405, "method_not_allowed", __LINE__);
        CHECK(hc_header(&r, "Allow", hdr, sizeof hdr) != NULL &&
              strcmp(hdr, "GET, HEAD, DELETE") == 0);
        hc_free(&r);
    } else CHECK(!"PUT /items/1");
    if (hc_request(port, "GET", "/silent", NULL, NULL, 0, &r) == 0) {
        expect_error(&r, 500, "internal", __LINE__);
        hc_free(&r);
    } else CHECK(!"GET /silent");

    /* A streamed reply arrives whole (chunked) and its context is freed. */
    if (hc_request(port, "GET", "/stream", NULL, NULL, 0, &r) == 0) {
        CHECK(r.status == 200);
        CHECK(hc_header(&r, "Transfer-Encoding", hdr, sizeof hdr) != NULL &&
              strcmp(hdr, "chunked") == 0);
        CHECK(strstr(r.body, "one ") != NULL && strstr(r.body, "two ") != NULL &&
              strstr(r.body, "three") != NULL);
        hc_free(&r);
    } else CHECK(!"GET /stream");

    http_stop(srv);
    http_stop(NULL);
    CHECK(stream_freed == 1);

    /* With a bearer token, changes need it; reads do not. */
    a.token = "s3cret";
    srv = NULL;
    if (http_start(&srv, routes, sizeof routes / sizeof routes[0], &a,
                   (struct sockaddr *)&sa, sizeof sa, err, sizeof err) != 0) {
        fprintf(stderr, "http_start: %s\n", err);
        return 1;
    }
    port = http_port(srv);
    if (hc_request(port, "POST", "/echo", NULL, "{}", 2, &r) == 0) {
        expect_error(&r, 401, "unauthorized", __LINE__);
        hc_free(&r);
    } else CHECK(!"POST /echo without token");
    if (hc_request(port, "POST", "/echo", "Authorization: Bearer wrong!\r\n", "{}", 2, &r) == 0) {
        expect_error(&r, 401, "unauthorized", __LINE__);
        hc_free(&r);
    } else CHECK(!"POST /echo with a wrong token");
    if (hc_request(port, "POST", "/echo", "Authorization: Bearer s3cret\r\n", "{}", 2, &r) == 0) {
        CHECK(r.status == 200);
        hc_free(&r);
    } else CHECK(!"POST /echo with the token");
    if (hc_request(port, "GET", "/v1/health", NULL, NULL, 0, &r) == 0) {
        CHECK(r.status == 200);
        hc_free(&r);
    } else CHECK(!"GET /v1/health with a token set");
    http_stop(srv);
    return check_result("daemon_http");
}
