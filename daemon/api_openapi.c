/* api_openapi.c: GET /v1/openapi.json, the API's OpenAPI 3 document.
 *
 * The document is daemon/openapi.json, compiled into the binary by CMake
 * (openapi_json.c is generated from it), so the daemon always serves the
 * contract it was built with. test_openapi.c checks it against the route
 * table. */
#include <string.h>

#include "api.h"

void api_openapi_get(const http_req *req, http_reply *rep)
{
    (void)req;
    http_reply_text(rep, 200, "application/json", api_openapi_json, strlen(api_openapi_json));
}
