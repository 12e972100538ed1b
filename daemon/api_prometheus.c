/* api_prometheus.c: GET /metrics, the daemon's counters in Prometheus's
 * text exposition format (version 0.0.4).
 *
 * Jobs by state come from the store (so they count jobs of earlier runs
 * too); iterations and images/s from the job manager (this process); HTTP
 * counters from the server answering (http.c). Not here: per-job training metrics, which are
 * /v1/jobs/{id}/metrics. */
#include <time.h>

#include "api.h"
#include "app.h"
#include "jobs.h"
#include "serve.h"
#include "store.h"
#include "util.h"

void api_prometheus_get(const http_req *req, http_reply *rep)
{
    app *a = req->app;
    strbuf b = { 0 };
    long long iterations = 0;
    double ips = 0;

    sb_printf(&b, "# HELP convnetd_jobs Jobs in the store, by state.\n"
                  "# TYPE convnetd_jobs gauge\n");
    for (int s = 0; s < JOB_NSTATES; s++) {
        long n = 0;
        if (a->db != NULL && store_job_count(a->db, job_state_name((job_state)s), &n) != 0) {
            sb_free(&b);
            http_reply_error(rep, HTTP_ERR_INTERNAL, NULL, "the store failed; see the log");
            return;
        }
        sb_printf(&b, "convnetd_jobs{state=\"%s\"} %ld\n", job_state_name((job_state)s), n);
    }
    if (a->jobs != NULL)
        jobs_stats(a->jobs, &iterations, &ips);
    sb_printf(&b, "# HELP convnetd_iterations_total Training iterations run by this "
                  "process.\n# TYPE convnetd_iterations_total counter\n"
                  "convnetd_iterations_total %lld\n", iterations);
    sb_printf(&b, "# HELP convnetd_images_per_second Training throughput of the running "
                  "jobs, summed.\n# TYPE convnetd_images_per_second gauge\n"
                  "convnetd_images_per_second %.3f\n", ips);
    sb_printf(&b, "# HELP convnetd_uptime_seconds Seconds since start-up.\n"
                  "# TYPE convnetd_uptime_seconds gauge\n"
                  "convnetd_uptime_seconds %.0f\n", difftime(time(NULL), a->started));
    if (a->serve != NULL) {
        serve_stats st;
        serve_stats_get(a->serve, &st);
        sb_printf(&b, "# HELP convnetd_inference_requests_total Inference requests answered "
                      "by the device workers (classify and /v2 infer).\n"
                      "# TYPE convnetd_inference_requests_total counter\n"
                      "convnetd_inference_requests_total %llu\n", st.requests);
        sb_printf(&b, "# HELP convnetd_inference_images_total Images in those requests.\n"
                      "# TYPE convnetd_inference_images_total counter\n"
                      "convnetd_inference_images_total %llu\n", st.images);
        sb_printf(&b, "# HELP convnetd_inference_batches_total Forward passes run for them; "
                      "fewer than requests when requests were batched.\n"
                      "# TYPE convnetd_inference_batches_total counter\n"
                      "convnetd_inference_batches_total %llu\n", st.batches);
        sb_printf(&b, "# HELP convnetd_inference_rejected_total Requests refused or "
                      "abandoned, by reason.\n"
                      "# TYPE convnetd_inference_rejected_total counter\n"
                      "convnetd_inference_rejected_total{reason=\"queue_full\"} %llu\n"
                      "convnetd_inference_rejected_total{reason=\"timeout\"} %llu\n"
                      "convnetd_inference_rejected_total{reason=\"failed\"} %llu\n",
                  st.rejected_full, st.timeouts, st.failures);
        sb_printf(&b, "# HELP convnetd_inference_queue_depth Requests waiting for a device.\n"
                      "# TYPE convnetd_inference_queue_depth gauge\n"
                      "convnetd_inference_queue_depth %d\n", st.queued);
        sb_printf(&b, "# HELP convnetd_model_loads_total Models loaded onto a device for "
                      "serving.\n# TYPE convnetd_model_loads_total counter\n"
                      "convnetd_model_loads_total %llu\n", st.model_loads);
        sb_printf(&b, "# HELP convnetd_evaluations_total Model evaluations completed.\n"
                      "# TYPE convnetd_evaluations_total counter\n"
                      "convnetd_evaluations_total %llu\n", st.evaluations);
    }
    if (req->server != NULL)
        http_metrics_write(req->server, &b);
    http_reply_text(rep, 200, "text/plain; version=0.0.4; charset=utf-8", b.s ? b.s : "",
                    b.len);
    sb_free(&b);
}
