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

/* GET /v1/jobs/{id}/filters.png: the first conv layer's filters (api_models.c). */
void api_jobs_filters(const http_req *req, http_reply *rep);

/* /v1/models and /v1/models/{id}/...: see api_models.c and openapi.json. */
void api_models_list(const http_req *req, http_reply *rep);
void api_models_get(const http_req *req, http_reply *rep);
void api_models_checkpoint(const http_req *req, http_reply *rep);
void api_models_classify(const http_req *req, http_reply *rep);
void api_models_evaluation(const http_req *req, http_reply *rep);

/* The KServe v2 protocol: see api_kserve.c. */
void api_v2_server(const http_req *req, http_reply *rep);
void api_v2_live(const http_req *req, http_reply *rep);
void api_v2_ready(const http_req *req, http_reply *rep);
void api_v2_model(const http_req *req, http_reply *rep);
void api_v2_model_ready(const http_req *req, http_reply *rep);
void api_v2_infer(const http_req *req, http_reply *rep);

/* GET / and GET /web/{path}: the dashboard's files (api_static.c). */
void api_static_index(const http_req *req, http_reply *rep);
void api_static_file(const http_req *req, http_reply *rep);

/* GET /metrics: Prometheus text format. */
void api_prometheus_get(const http_req *req, http_reply *rep);

/* The JSON document of a job: its row, with the live state and progress of
 * an active job laid over it; "spec" only when with_spec. Caller owns it. */
cJSON *api_job_doc(struct app *a, const store_job *j, int with_spec);

/* ?name=<integer in lo..hi> into *v (left alone when absent); a bad value
 * is a 400 naming the parameter and -1. */
int api_query_long(const http_req *req, http_reply *rep, const char *name, long lo,
                   long hi, long *v);

/* A page of a job-ordered listing (GET /v1/jobs, /v1/models): ?limit=
 * (1..100, default 20), ?after= or ?page_token= (the id to continue
 * after). api_page_start reads them (a 400 and -1 when bad) and sizes the
 * page; api_page_row is the store callback that copies rows into it (one
 * extra row only marks that a next page exists); api_page_finish adds
 * next_page_token to doc, frees the rows and replies 200 with doc, or 500
 * when the store failed (rc != 0). */
typedef struct api_page {
    store_job *rows;   /* copies: documents are built after the store is unlocked */
    int n, limit, more;
    long after;
} api_page;

int api_page_start(const http_req *req, http_reply *rep, api_page *p);
int api_page_row(void *user, const store_job *j);
void api_page_finish(http_reply *rep, cJSON *doc, api_page *p, int rc);

/* Parses the {id} path parameter; on failure sets a 404 reply and returns
 * -1. */
int api_job_id(const http_req *req, http_reply *rep, long *id);

/* Parses the model id in path parameter `param`; on failure sets a 404
 * reply and returns -1. */
int api_model_id(const http_req *req, http_reply *rep, const char *param, long *id);

/* 1 when the request's If-None-Match header matches etag (a quoted entity
 * tag; weak comparison, "*" matches anything). */
int api_etag_matches(const http_req *req, const char *etag);

/* GET /v1/jobs/{id}/events, once the job is known to exist (sse.c). */
void sse_job_events(const http_req *req, http_reply *rep, long id);

#endif
