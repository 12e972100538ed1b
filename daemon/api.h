/* api.h: the HTTP handlers of the REST API, one api_<resource>.c each, and
 * the few helpers they share.
 *
 * Handlers follow http_handler (http.h): read the request, fill the reply,
 * never touch libmicrohttpd or a compute device. The route table that maps
 * paths to them is in http.c; the API's contract is daemon/openapi.json,
 * served at /v1/openapi.json. */
#ifndef CONVNETD_API_H
#define CONVNETD_API_H

#include <cjson/cJSON.h>

#include "http.h"
#include "store.h"

struct app;

/* GET /v1/health: 200 {"status":"ok","version","uptime_s","devices":[...],
 * "blas"}. Needs req->app. */
void api_health_get(const http_req *req, http_reply *rep);

/* GET /v1/openapi.json: the API's OpenAPI 3 document. */
void api_openapi_get(const http_req *req, http_reply *rep);
/* The document itself (NUL-terminated JSON, compiled in from openapi.json). */
extern const char api_openapi_json[];

/* GET /v1/datasets: the data sets found at start-up. */
void api_datasets_list(const http_req *req, http_reply *rep);

/* /v1/jobs and /v1/jobs/{id}/...: see api_jobs.c and openapi.json. */
void api_jobs_create(const http_req *req, http_reply *rep);
void api_jobs_list(const http_req *req, http_reply *rep);
void api_jobs_get(const http_req *req, http_reply *rep);
void api_jobs_cancel(const http_req *req, http_reply *rep);
void api_jobs_pause(const http_req *req, http_reply *rep);
void api_jobs_resume(const http_req *req, http_reply *rep);
void api_jobs_metrics(const http_req *req, http_reply *rep);
void api_jobs_events(const http_req *req, http_reply *rep);

/* GET /metrics: Prometheus text format. */
void api_prometheus_get(const http_req *req, http_reply *rep);

/* The JSON document of a job: its row, with the live state and progress of
 * an active job laid over it; "spec" only when with_spec. Caller owns it. */
cJSON *api_job_doc(struct app *a, const store_job *j, int with_spec);

/* Parses the {id} path parameter; on failure sets a 404 reply and returns
 * -1. */
int api_job_id(const http_req *req, http_reply *rep, long *id);

/* GET /v1/jobs/{id}/events, once the job is known to exist (sse.c). */
void sse_job_events(const http_req *req, http_reply *rep, long id);

#endif
