/* api_datasets.c: GET /v1/datasets, the data sets jobs can name.
 *
 * The list is the one datasets.c found at start-up; this does not rescan
 * the data directory or load anything. */
#include "api.h"
#include "app.h"
#include "datasets.h"

void api_datasets_list(const http_req *req, http_reply *rep)
{
    const app *a = req->app;

    if (a->datasets == NULL) {
        http_reply_json(rep, 200, cJSON_Parse("{\"datasets\":[]}"));
        return;
    }
    http_reply_json(rep, 200, datasets_json(a->datasets));
}
