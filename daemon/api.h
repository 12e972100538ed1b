/* api.h: the HTTP handlers of the REST API, one api_<resource>.c each.
 *
 * Handlers follow http_handler (http.h): read the request, fill the reply,
 * never touch libmicrohttpd or a compute device. The route table that maps
 * paths to them is in http.c. */
#ifndef CONVNETD_API_H
#define CONVNETD_API_H

#include "http.h"

/* GET /v1/health: 200 {"status":"ok","version","uptime_s","devices":[...],
 * "blas"}. Needs req->app. */
void api_health_get(const http_req *req, http_reply *rep);

#endif
