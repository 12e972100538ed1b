/* test_route.c: route matching, error replies and the health handler, as
 * pure functions: no sockets, no libmicrohttpd server.
 *
 * Uses the daemon's own table for /v1/health and a local table shaped like
 * the planned API for {id} captures and 405 Allow lists. */
#include <string.h>
#include <time.h>

#include "api.h"
#include "app.h"
#include "check.h"
#include "http.h"

static void dummy(const http_req *req, http_reply *rep)
{
    (void)req;
    (void)rep;
}

static const http_route table[] = {
    { .method = "GET", .path = "/v1/jobs", .handler = dummy },                 /* 0 */
    { .method = "POST", .path = "/v1/jobs", .handler = dummy, .max_body = 65536, .json = 1 },
    { .method = "GET", .path = "/v1/jobs/{id}", .handler = dummy },            /* 2 */
    { .method = "DELETE", .path = "/v1/jobs/{id}", .handler = dummy },         /* 3 */
    { .method = "POST", .path = "/v1/jobs/{id}/cancel", .handler = dummy },    /* 4 */
    { .method = "GET", .path = "/v1/models/{id}/layers/{layer}", .handler = dummy },
    { .method = "GET", .path = "/", .handler = dummy },                        /* 6 */
};
#define NTABLE (sizeof table / sizeof table[0])

static http_match match(const char *method, const char *path, const http_route **r,
                        http_params *p, char *allow, size_t allowlen)
{
    return http_route_match(table, NTABLE, method, path, r, p, allow, allowlen);
}

static void test_daemon_table(void)
{
    const http_route *r = NULL;
    http_params p;
    char allow[96] = "";

    CHECK(http_routes_count >= 1);
    CHECK(http_route_match(http_routes, http_routes_count, "GET", "/v1/health",
                           &r, &p, allow, sizeof allow) == HTTP_MATCH_FOUND);
    CHECK(r != NULL && r->handler == api_health_get);
    CHECK(p.n == 0);
    r = NULL;
    CHECK(http_route_match(http_routes, http_routes_count, "HEAD", "/v1/health",
                           &r, NULL, NULL, 0) == HTTP_MATCH_FOUND);
    CHECK(r != NULL && r->handler == api_health_get);
    CHECK(http_route_match(http_routes, http_routes_count, "POST", "/v1/health",
                           NULL, NULL, allow, sizeof allow) == HTTP_MATCH_BAD_METHOD);
    CHECKF(strcmp(allow, "GET, HEAD") == 0, "allow='%s'", allow);
    CHECK(http_route_match(http_routes, http_routes_count, "GET", "/v1/health/",
                           NULL, NULL, NULL, 0) == HTTP_MATCH_NOT_FOUND);
    CHECK(http_route_match(http_routes, http_routes_count, "GET", "/v1/healthz",
                           NULL, NULL, NULL, 0) == HTTP_MATCH_NOT_FOUND);
    CHECK(http_route_match(http_routes, http_routes_count, "GET", "/nope",
                           NULL, NULL, NULL, 0) == HTTP_MATCH_NOT_FOUND);
}

static void test_exact_and_capture(void)
{
    const http_route *r = NULL;
    http_params p;
    char allow[96];

    CHECK(match("GET", "/v1/jobs", &r, &p, NULL, 0) == HTTP_MATCH_FOUND);
    CHECK(r == &table[0]);
    CHECK(match("POST", "/v1/jobs", &r, &p, NULL, 0) == HTTP_MATCH_FOUND);
    CHECK(r == &table[1] && r->json == 1 && r->max_body == 65536);
    CHECK(match("GET", "/", &r, &p, NULL, 0) == HTTP_MATCH_FOUND);
    CHECK(r == &table[6]);

    memset(&p, 0, sizeof p);
    CHECK(match("GET", "/v1/jobs/17", &r, &p, NULL, 0) == HTTP_MATCH_FOUND);
    CHECK(r == &table[2]);
    CHECK(p.n == 1);
    CHECK(http_param(&p, "id") != NULL && strcmp(http_param(&p, "id"), "17") == 0);
    CHECK(http_param(&p, "nope") == NULL);

    CHECK(match("DELETE", "/v1/jobs/abc-9", &r, &p, NULL, 0) == HTTP_MATCH_FOUND);
    CHECK(r == &table[3] && strcmp(http_param(&p, "id"), "abc-9") == 0);
    CHECK(match("POST", "/v1/jobs/5/cancel", &r, &p, NULL, 0) == HTTP_MATCH_FOUND);
    CHECK(r == &table[4] && strcmp(http_param(&p, "id"), "5") == 0);

    CHECK(match("GET", "/v1/models/m1/layers/conv1", &r, &p, NULL, 0) == HTTP_MATCH_FOUND);
    CHECK(p.n == 2);
    CHECK(strcmp(http_param(&p, "id"), "m1") == 0);
    CHECK(strcmp(http_param(&p, "layer"), "conv1") == 0);

    /* 405 lists every method of every route sharing the path. */
    CHECK(match("PUT", "/v1/jobs/17", &r, &p, allow, sizeof allow) == HTTP_MATCH_BAD_METHOD);
    CHECKF(strcmp(allow, "GET, HEAD, DELETE") == 0, "allow='%s'", allow);
    CHECK(match("PUT", "/v1/jobs", NULL, NULL, allow, sizeof allow) == HTTP_MATCH_BAD_METHOD);
    CHECKF(strcmp(allow, "GET, HEAD, POST") == 0, "allow='%s'", allow);
    CHECK(match("GET", "/v1/jobs/3/cancel", NULL, NULL, allow, sizeof allow)
          == HTTP_MATCH_BAD_METHOD);
    CHECKF(strcmp(allow, "POST") == 0, "allow='%s'", allow);
    /* A short buffer truncates but stays a string. */
    allow[0] = 'x';
    CHECK(match("PUT", "/v1/jobs", NULL, NULL, allow, 5) == HTTP_MATCH_BAD_METHOD);
    CHECK(strlen(allow) == 4);
}

/* A tail route's last {name} takes the rest of the path (static files). */
static void test_tail(void)
{
    static const http_route tail_table[] = {
        { .method = "GET", .path = "/web/{path}", .handler = dummy, .tail = 1 },
        { .method = "GET", .path = "/x/{a}/{rest}", .handler = dummy, .tail = 1 },
    };
    const http_route *r = NULL;
    http_params p;
    char seg[HTTP_PARAM_VALUE_MAX + 16], path[sizeof seg + 16];

    CHECK(http_route_match(tail_table, 2, "GET", "/web/app.js", &r, &p, NULL, 0)
          == HTTP_MATCH_FOUND);
    CHECK(r == &tail_table[0] && strcmp(http_param(&p, "path"), "app.js") == 0);
    CHECK(http_route_match(tail_table, 2, "GET", "/web/vendor/u/a.js", &r, &p, NULL, 0)
          == HTTP_MATCH_FOUND);
    CHECK(strcmp(http_param(&p, "path"), "vendor/u/a.js") == 0);
    /* The rest is taken as it is: judging it is the handler's job. */
    CHECK(http_route_match(tail_table, 2, "GET", "/web/a//../b/", &r, &p, NULL, 0)
          == HTTP_MATCH_FOUND);
    CHECK(strcmp(http_param(&p, "path"), "a//../b/") == 0);
    CHECK(http_route_match(tail_table, 2, "GET", "/web/", NULL, NULL, NULL, 0)
          == HTTP_MATCH_NOT_FOUND);
    CHECK(http_route_match(tail_table, 2, "GET", "/web", NULL, NULL, NULL, 0)
          == HTTP_MATCH_NOT_FOUND);
    CHECK(http_route_match(tail_table, 2, "GET", "/x/1/2/3", &r, &p, NULL, 0)
          == HTTP_MATCH_FOUND);
    CHECK(r == &tail_table[1] && strcmp(http_param(&p, "a"), "1") == 0 &&
          strcmp(http_param(&p, "rest"), "2/3") == 0);
    /* The bound holds for the whole rest. */
    memset(seg, 'a', sizeof seg);
    seg[HTTP_PARAM_VALUE_MAX] = '\0';
    seg[10] = '/';
    snprintf(path, sizeof path, "/web/%s", seg);
    CHECK(http_route_match(tail_table, 2, "GET", path, NULL, NULL, NULL, 0)
          == HTTP_MATCH_NOT_FOUND);
    /* The daemon's own table: /web/{path} is a tail route, / is exact. */
    CHECK(http_route_match(http_routes, http_routes_count, "GET", "/web/vendor/uplot/x.js", &r,
                           &p, NULL, 0) == HTTP_MATCH_FOUND);
    CHECK(r->handler == api_static_file && strcmp(http_param(&p, "path"), "vendor/uplot/x.js") == 0);
    CHECK(http_route_match(http_routes, http_routes_count, "GET", "/", &r, &p, NULL, 0)
          == HTTP_MATCH_FOUND && r->handler == api_static_index);
    CHECK(http_route_match(http_routes, http_routes_count, "GET", "/index.html", NULL, NULL,
                           NULL, 0) == HTTP_MATCH_NOT_FOUND);
}

static void test_not_found(void)
{
    char seg[HTTP_PARAM_VALUE_MAX + 16];
    char path[sizeof seg + 16];
    http_params p;

    CHECK(match("GET", "/v1/jobs/", NULL, NULL, NULL, 0) == HTTP_MATCH_NOT_FOUND);
    CHECK(match("GET", "/v1/jobs/1/", NULL, NULL, NULL, 0) == HTTP_MATCH_NOT_FOUND);
    CHECK(match("GET", "/v1/jobsx", NULL, NULL, NULL, 0) == HTTP_MATCH_NOT_FOUND);
    CHECK(match("GET", "/v1/job", NULL, NULL, NULL, 0) == HTTP_MATCH_NOT_FOUND);
    CHECK(match("GET", "/v1//jobs", NULL, NULL, NULL, 0) == HTTP_MATCH_NOT_FOUND);
    CHECK(match("GET", "/v1/jobs/1/2", NULL, NULL, NULL, 0) == HTTP_MATCH_NOT_FOUND);
    CHECK(match("GET", "/v1/models/m1/layers/", NULL, NULL, NULL, 0) == HTTP_MATCH_NOT_FOUND);
    CHECK(match("GET", "", NULL, NULL, NULL, 0) == HTTP_MATCH_NOT_FOUND);
    CHECK(match("GET", "v1/jobs", NULL, NULL, NULL, 0) == HTTP_MATCH_NOT_FOUND);
    CHECK(match("GET", "//", NULL, NULL, NULL, 0) == HTTP_MATCH_NOT_FOUND);

    /* Segment length bound: one byte under the limit matches, at it not. */
    memset(seg, 'a', sizeof seg);
    seg[HTTP_PARAM_VALUE_MAX - 1] = '\0';
    snprintf(path, sizeof path, "/v1/jobs/%s", seg);
    CHECK(match("GET", path, NULL, &p, NULL, 0) == HTTP_MATCH_FOUND);
    CHECK(strlen(http_param(&p, "id")) == HTTP_PARAM_VALUE_MAX - 1);
    seg[HTTP_PARAM_VALUE_MAX - 1] = 'a';
    seg[HTTP_PARAM_VALUE_MAX] = '\0';
    snprintf(path, sizeof path, "/v1/jobs/%s", seg);
    CHECK(match("GET", path, NULL, NULL, NULL, 0) == HTTP_MATCH_NOT_FOUND);
}

static void test_errors(void)
{
    http_reply rep;
    cJSON *doc, *err;

    for (int i = 0; i < HTTP_ERR_COUNT; i++) {
        CHECK(http_err_code((http_err)i) != NULL);
        CHECK(http_err_status((http_err)i) >= 400 && http_err_status((http_err)i) < 600);
        for (int j = 0; j < i; j++)
            CHECK(strcmp(http_err_code((http_err)i), http_err_code((http_err)j)) != 0);
    }
    CHECK(http_err_status(HTTP_ERR_NOT_FOUND) == 404);
    CHECK(http_err_status(HTTP_ERR_METHOD_NOT_ALLOWED) == 405);
    CHECK(http_err_status(HTTP_ERR_PAYLOAD_TOO_LARGE) == 413);
    CHECK(strcmp(http_err_code(HTTP_ERR_INVALID_ARGUMENT), "invalid_argument") == 0);

    memset(&rep, 0, sizeof rep);
    http_reply_error(&rep, HTTP_ERR_INVALID_ARGUMENT, "solver.learning_rate",
                     "solver.learning_rate must be > 0, got %d", -1);
    CHECK(rep.status == 400);
    CHECK(rep.content_type != NULL && strcmp(rep.content_type, "application/json") == 0);
    CHECK(rep.len == strlen(rep.body) && rep.body[rep.len - 1] == '\n');
    doc = cJSON_Parse(rep.body);
    err = cJSON_GetObjectItemCaseSensitive(doc, "error");
    CHECK(cJSON_IsObject(err));
    CHECK(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(err, "code")) &&
          strcmp(cJSON_GetObjectItemCaseSensitive(err, "code")->valuestring,
                 "invalid_argument") == 0);
    CHECK(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(err, "message")) &&
          strcmp(cJSON_GetObjectItemCaseSensitive(err, "message")->valuestring,
                 "solver.learning_rate must be > 0, got -1") == 0);
    CHECK(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(err, "field")) &&
          strcmp(cJSON_GetObjectItemCaseSensitive(err, "field")->valuestring,
                 "solver.learning_rate") == 0);
    cJSON_Delete(doc);

    /* No field: still present, as null, so clients see one shape. */
    http_reply_error(&rep, HTTP_ERR_NOT_FOUND, NULL, "no such job: %s", "7");
    CHECK(rep.status == 404);
    doc = cJSON_Parse(rep.body);
    err = cJSON_GetObjectItemCaseSensitive(doc, "error");
    CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(err, "field")));
    cJSON_Delete(doc);
    http_reply_clear(&rep);
    CHECK(rep.body == NULL && rep.status == 0);
    http_reply_clear(NULL);
}

static void test_health_handler(void)
{
    cfg c;
    app a;
    http_req req;
    http_reply rep;
    cJSON *doc, *devices, *cpu;

    cfg_defaults(&c);
    memset(&a, 0, sizeof a);
    a.cfg = &c;
    a.blas = "TestBLAS 1.0";
    a.cpu_threads = 3;
    a.started = time(NULL);
    memset(&req, 0, sizeof req);
    req.app = &a;
    req.method = "GET";
    req.path = "/v1/health";
    req.body = "";
    memset(&rep, 0, sizeof rep);

    api_health_get(&req, &rep);
    CHECK(rep.status == 200);
    doc = cJSON_Parse(rep.body);
    CHECK(doc != NULL);
    CHECK(strcmp(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(doc, "status")) ?
                 cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(doc, "status")) : "",
                 "ok") == 0);
    CHECK(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(doc, "version")) != NULL &&
          strcmp(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(doc, "version")),
                 CONVNETD_VERSION) == 0);
    CHECK(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(doc, "blas")) != NULL &&
          strcmp(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(doc, "blas")),
                 "TestBLAS 1.0") == 0);
    devices = cJSON_GetObjectItemCaseSensitive(doc, "devices");
    CHECK(cJSON_IsArray(devices) && cJSON_GetArraySize(devices) >= 1);
    cpu = cJSON_GetArrayItem(devices, 0);
    CHECK(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(cpu, "name")) != NULL &&
          strcmp(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(cpu, "name")), "cpu") == 0);
    CHECK(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(cpu, "threads")) &&
          cJSON_GetObjectItemCaseSensitive(cpu, "threads")->valueint == 3);
    cJSON_Delete(doc);
    http_reply_clear(&rep);
}

int main(void)
{
    test_daemon_table();
    test_exact_and_capture();
    test_tail();
    test_not_found();
    test_errors();
    test_health_handler();
    return check_result("daemon_route");
}
