/* fuzz_http_route.c: http_route_match() over the daemon's real route table
 * with a method and path from the input: the first line (up to LF) is the
 * method, the rest the path. A "?" in the path splits off a query string,
 * which the daemon never sees in the path (MHD strips it); its values go
 * through parse_long(), the one parser the handlers apply to query
 * arguments (limit, since, after). Checked: FOUND gives a route of the
 * table whose method matches, captured values are NUL-terminated and
 * shorter than HTTP_PARAM_VALUE_MAX, BAD_METHOD writes a terminated Allow
 * list even into a tiny buffer. */
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "util.h"

static void query(char *q)
{
    for (char *save = NULL, *kv = strtok_r(q, "&", &save); kv != NULL;
         kv = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(kv, '=');
        long v;
        if (eq == NULL)
            continue;
        *eq = 0;
        if (parse_long(eq + 1, 0, LONG_MAX, &v) == 0 && v < 0)
            abort();
        if (parse_long(eq + 1, 1, 1000, &v) == 0 && (v < 1 || v > 1000))
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char method[32], *path;
    const http_route *route = NULL;
    http_params params;
    char allow[128], tiny[8];

    if (size > 4096)
        return 0;
    const uint8_t *nl = memchr(data, '\n', size);
    size_t ml = nl ? (size_t)(nl - data) : 0;
    if (ml >= sizeof method)
        ml = sizeof method - 1;
    memcpy(method, data, ml);
    method[ml] = 0;
    size_t off = nl ? (size_t)(nl - data) + 1 : 0;
    path = malloc(size - off + 1);
    if (path == NULL)
        return 0;
    memcpy(path, data + off, size - off);
    path[size - off] = 0;
    char *q = strchr(path, '?');
    if (q != NULL)
        *q++ = 0;

    http_match m = http_route_match(http_routes, http_routes_count, method, path, &route,
                                    &params, allow, sizeof allow);
    if (m == HTTP_MATCH_FOUND) {
        if (route < http_routes || route >= http_routes + http_routes_count)
            abort();
        if (strcmp(route->method, method) != 0 &&
            !(strcmp(method, "HEAD") == 0 && strcmp(route->method, "GET") == 0))
            abort();
        if (params.n < 0 || params.n > HTTP_MAX_PARAMS)
            abort();
        for (int i = 0; i < params.n; i++) {
            if (memchr(params.p[i].value, 0, HTTP_PARAM_VALUE_MAX) == NULL ||
                params.p[i].value[0] == 0)
                abort();
            if (http_param(&params, params.p[i].name) == NULL)
                abort();
        }
        (void)http_param(&params, "no-such-param");
    } else if (m == HTTP_MATCH_BAD_METHOD) {
        if (memchr(allow, 0, sizeof allow) == NULL)
            abort();
        (void)http_route_match(http_routes, http_routes_count, method, path, NULL, NULL,
                               tiny, sizeof tiny);
        if (memchr(tiny, 0, sizeof tiny) == NULL)
            abort();
    } else if (m != HTTP_MATCH_NOT_FOUND) {
        abort();
    }
    if (q != NULL)
        query(q);
    free(path);
    return 0;
}
