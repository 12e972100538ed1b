/* test_openapi.c: the OpenAPI document and the route table agree: every
 * routed method and path is documented, and every documented operation is
 * routed (to a route with the identical path pattern). Also that the
 * document is valid JSON, OpenAPI 3, and that GET /v1/openapi.json serves
 * it. Generated from the two sources, so neither can drift alone. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "api.h"
#include "check.h"
#include "http.h"

static const char *const methods[] = { "get", "put", "post", "delete", "patch", "head",
                                       "options", "trace", NULL };

int main(void)
{
    cJSON *doc = cJSON_Parse(api_openapi_json);
    const cJSON *paths = cJSON_GetObjectItemCaseSensitive(doc, "paths");
    const char *version = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(doc, "openapi"));
    http_req req;
    http_reply rep;
    int documented = 0;

    CHECK(doc != NULL);
    CHECK(version != NULL && strncmp(version, "3.", 2) == 0);
    CHECK(cJSON_IsObject(paths));

    /* Routed -> documented. */
    for (size_t i = 0; i < http_routes_count; i++) {
        const http_route *r = &http_routes[i];
        char lower[16];
        size_t k;
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(paths, r->path);
        for (k = 0; r->method[k] != '\0' && k < sizeof lower - 1; k++)
            lower[k] = (char)tolower((unsigned char)r->method[k]);
        lower[k] = '\0';
        CHECKF(cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(p, lower)),
               "%s %s is routed but not documented", r->method, r->path);
    }

    /* Documented -> routed, by the same pattern and method. */
    for (const cJSON *p = paths != NULL ? paths->child : NULL; p != NULL; p = p->next) {
        for (const cJSON *op = p->child; op != NULL; op = op->next) {
            int is_method = 0, routed = 0;
            for (int m = 0; methods[m] != NULL; m++)
                is_method |= strcmp(op->string, methods[m]) == 0;
            if (!is_method)
                continue;   /* "parameters", "summary", ... */
            documented++;
            for (size_t i = 0; i < http_routes_count; i++) {
                const http_route *r = &http_routes[i];
                char lower[16];
                size_t k;
                for (k = 0; r->method[k] != '\0' && k < sizeof lower - 1; k++)
                    lower[k] = (char)tolower((unsigned char)r->method[k]);
                lower[k] = '\0';
                routed |= strcmp(r->path, p->string) == 0 && strcmp(lower, op->string) == 0;
            }
            CHECKF(routed, "%s %s is documented but not routed", op->string, p->string);
            CHECKF(cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(op, "responses")),
                   "%s %s has no responses", op->string, p->string);
        }
    }
    CHECKF((size_t)documented == http_routes_count, "%d documented, %zu routed", documented,
           http_routes_count);

    /* The handler serves exactly the compiled-in document. */
    memset(&req, 0, sizeof req);
    memset(&rep, 0, sizeof rep);
    req.method = "GET";
    req.path = "/v1/openapi.json";
    req.body = "";
    api_openapi_get(&req, &rep);
    CHECK(rep.status == 200 && strcmp(rep.content_type, "application/json") == 0);
    CHECK(rep.len == strlen(api_openapi_json) && memcmp(rep.body, api_openapi_json, rep.len) == 0);
    http_reply_clear(&rep);
    cJSON_Delete(doc);
    return check_result("daemon_openapi");
}
