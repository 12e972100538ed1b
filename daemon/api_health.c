/* api_health.c: GET /v1/health, the liveness and inventory probe.
 *
 * It reports what the daemon was started with (version, devices, BLAS); it
 * does not probe devices or the store on every call, so it stays cheap
 * enough for a load balancer to poll. */
#include <time.h>

#include "api.h"
#include "app.h"

void api_health_get(const http_req *req, http_reply *rep)
{
    const app *a = req->app;
    cJSON *doc = cJSON_CreateObject();
    cJSON *devices = cJSON_CreateArray();

    cJSON_AddStringToObject(doc, "status", "ok");
    cJSON_AddStringToObject(doc, "version", CONVNETD_VERSION);
    cJSON_AddNumberToObject(doc, "uptime_s", (double)(time(NULL) - a->started));
    for (int i = 0; i < a->ndevices; i++) {
        const device_desc *d = &a->devices[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", d->name);
        cJSON_AddStringToObject(o, "kind", d->cuda < 0 ? "cpu" : "cuda");
        if (d->cuda < 0)
            cJSON_AddNumberToObject(o, "threads", a->cpu_threads);
        else
            cJSON_AddNumberToObject(o, "memory_bytes", (double)d->memory);
        cJSON_AddStringToObject(o, "info", d->info);
        cJSON_AddItemToArray(devices, o);
    }
    if (a->ndevices == 0) {
        /* No workers (unit tests): the CPU is always there, since nn's
         * CPU backend is always built. */
        cJSON *cpu = cJSON_CreateObject();
        cJSON_AddStringToObject(cpu, "name", "cpu");
        cJSON_AddStringToObject(cpu, "kind", "cpu");
        cJSON_AddNumberToObject(cpu, "threads", a->cpu_threads);
        cJSON_AddItemToArray(devices, cpu);
    }
    cJSON_AddItemToObject(doc, "devices", devices);
    cJSON_AddStringToObject(doc, "blas", a->blas != NULL ? a->blas : "unknown");
    http_reply_json(rep, 200, doc);
}
