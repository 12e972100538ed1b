/* test_jobs.c: the job lifecycle end to end on the real binary (argv[1])
 * with a synthetic data set: a job runs to success with its loss stored
 * for steps exactly 1..N; a queued job is paused and a running one
 * cancelled; a running job is paused, resumed and finishes, and its loss
 * curve equals, value for value, that of the same job run without a pause
 * (resume is exact); impossible transitions are 409; listing pages newest
 * first; data sets, CSV metrics and Prometheus text look right. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "check.h"
#include "daemon_proc.h"
#include "http_client.h"

#define DS "\"dataset\":{\"name\":\"synth\",\"val_fraction\":0.2,\"limit\":600}"
#define MODEL "\"model\":{\"preset\":\"three_layer_convnet\",\"num_filters\":4,\"hidden_dim\":16}"

/* 480 training images, batch 32: 15 iterations an epoch. */
static const char small_job[] =
    "{\"name\":\"small\"," DS "," MODEL ",\"solver\":{\"epochs\":2,\"batch_size\":32},"
    "\"device\":\"" TEST_DEVICE "\"}";
static const char long_job[] =
    "{\"name\":\"long\"," DS "," MODEL ",\"solver\":{\"epochs\":2000,\"batch_size\":32}}";
static const char pausable_job[] =
    "{\"name\":\"pausable\"," DS "," MODEL ",\"solver\":{\"epochs\":60,\"batch_size\":32,"
    "\"seed\":3}}";

static unsigned port;

/* POSTs to /v1/jobs/{id}/verb; returns the status, *doc the reply. */
static int act(long id, const char *verb, cJSON **doc)
{
    char path[96];
    snprintf(path, sizeof path, "/v1/jobs/%ld/%s", id, verb);
    return tj_request(port, "POST", path, NULL, doc);
}

static void expect_act(long id, const char *verb, int status, const char *job_status)
{
    cJSON *doc;
    int st = act(id, verb, &doc);
    CHECKF(st == status, "%s job %ld: status %d, want %d", verb, id, st, status);
    if (job_status != NULL)
        CHECKF(strcmp(tj_str(doc, "status"), job_status) == 0, "%s job %ld: now %s, want %s",
               verb, id, tj_str(doc, "status"), job_status);
    else
        CHECKF(strcmp(tj_str(doc, "error.code"), "conflict") == 0, "%s job %ld: code %s",
               verb, id, tj_str(doc, "error.code"));
    cJSON_Delete(doc);
}

static void job_doc(long id, cJSON **doc)
{
    char path[64];
    snprintf(path, sizeof path, "/v1/jobs/%ld", id);
    CHECK(tj_request(port, "GET", path, NULL, doc) == 200);
}

/* The loss values of job id in step order. */
static double *losses(long id, int *n)
{
    char path[128];
    cJSON *doc;
    double *v;
    int i = 0;

    snprintf(path, sizeof path, "/v1/jobs/%ld/metrics?key=loss&limit=100000", id);
    *n = 0;
    if (tj_request(port, "GET", path, NULL, &doc) != 200) {
        cJSON_Delete(doc);
        return NULL;
    }
    v = malloc(sizeof *v * (size_t)(cJSON_GetArraySize(tj_get(doc, "metrics")) + 1));
    for (const cJSON *m = tj_get(doc, "metrics")->child; m != NULL; m = m->next)
        v[i++] = tj_num(m, "value");
    *n = i;
    cJSON_Delete(doc);
    return v;
}

static void test_datasets(void)
{
    cJSON *doc;
    const cJSON *ds = NULL;

    CHECK(tj_request(port, "GET", "/v1/datasets", NULL, &doc) == 200);
    for (const cJSON *d = tj_get(doc, "datasets") ? tj_get(doc, "datasets")->child : NULL;
         d != NULL; d = d->next)
        if (strcmp(tj_str(d, "name"), "synth") == 0)
            ds = d;
    CHECK(ds != NULL);
    if (ds != NULL) {
        const cJSON *shape = tj_get(ds, "shape");
        CHECK(strcmp(tj_str(ds, "format"), "idx") == 0);
        CHECK(cJSON_GetArraySize(shape) == 3 && cJSON_GetArrayItem(shape, 0)->valueint == 1 &&
              cJSON_GetArrayItem(shape, 1)->valueint == 16 &&
              cJSON_GetArrayItem(shape, 2)->valueint == 16);
        CHECK(tj_num(ds, "num_classes") == 4);
        CHECK(cJSON_GetArraySize(tj_get(ds, "class_names")) == 4);
        CHECK(tj_num(ds, "sizes.train") == 800 && tj_num(ds, "sizes.test") == 0);
    }
    cJSON_Delete(doc);
}

/* A job from queued to succeeded, and what it left behind. */
static long test_success(const char *state)
{
    char hdr[128], path[700];
    hc_reply r;
    cJSON *doc = NULL;
    long id = -1, *steps;
    int n;
    struct stat st;

    if (hc_request(port, "POST", "/v1/jobs", "Content-Type: application/json\r\n", small_job,
                   strlen(small_job), &r) == 0) {
        CHECKF(r.status == 201, "status %d: %s", r.status, r.body);
        doc = cJSON_Parse(r.body);
        id = (long)tj_num(doc, "id");
        CHECK(strcmp(tj_str(doc, "status"), "queued") == 0);
        CHECK(strcmp(tj_str(doc, "name"), "small") == 0 && strcmp(tj_str(doc, "device"), TEST_DEVICE) == 0);
        CHECK(tj_num(doc, "progress.num_iterations") == 30);
        CHECK(cJSON_IsObject(tj_get(doc, "spec")));
        snprintf(path, sizeof path, "/v1/jobs/%ld", id);
        CHECK(hc_header(&r, "Location", hdr, sizeof hdr) != NULL && strcmp(hdr, path) == 0);
        cJSON_Delete(doc);
        hc_free(&r);
    }
    CHECK(id >= 1);
    if (id < 1 || !tj_wait_status(port, id, "succeeded", 60))
        return id;
    job_doc(id, &doc);
    CHECK(tj_num(doc, "progress.iteration") == 30 && tj_num(doc, "progress.epoch") == 2);
    CHECK(cJSON_IsString(tj_get(doc, "started_at")) && cJSON_IsString(tj_get(doc, "finished_at")));
    CHECK(cJSON_IsNull(tj_get(doc, "error")));
    CHECK(tj_num(doc, "progress.best_val_acc") >= 0 && tj_num(doc, "progress.images_per_s") > 0);
    CHECK(tj_num(doc, "progress.eta_s") == 0);
    cJSON_Delete(doc);

    steps = tj_steps(port, id, "loss", &n);
    CHECKF(n == 30 && tj_steps_exact(steps, n), "%d loss rows", n);
    free(steps);
    steps = tj_steps(port, id, "val_acc", &n);
    CHECKF(n == 3 && steps != NULL && steps[0] == 1 && steps[1] == 15 && steps[2] == 30,
           "%d val_acc rows", n);
    free(steps);

    /* Incremental reads: since= the last id read gives only newer rows. */
    snprintf(path, sizeof path, "/v1/jobs/%ld/metrics?key=loss&limit=10", id);
    CHECK(tj_request(port, "GET", path, NULL, &doc) == 200);
    CHECK(cJSON_GetArraySize(tj_get(doc, "metrics")) == 10);
    snprintf(path, sizeof path, "/v1/jobs/%ld/metrics?key=loss&since=%.0f", id,
             tj_num(doc, "next_since"));
    cJSON_Delete(doc);
    CHECK(tj_request(port, "GET", path, NULL, &doc) == 200);
    CHECK(cJSON_GetArraySize(tj_get(doc, "metrics")) == 20 &&
          tj_num(cJSON_GetArrayItem(tj_get(doc, "metrics"), 0), "step") == 11);
    cJSON_Delete(doc);

    /* TensorBoard's CSV. */
    snprintf(path, sizeof path, "/v1/jobs/%ld/metrics?format=csv", id);
    if (hc_request(port, "GET", path, NULL, NULL, 0, &r) == 0) {
        int lines = 0;
        CHECK(r.status == 200);
        CHECK(hc_header(&r, "Content-Type", hdr, sizeof hdr) != NULL && strstr(hdr, "text/csv"));
        CHECK(strncmp(r.body, "Wall time,Step,Value\n", 21) == 0);
        for (const char *p = r.body; *p; p++)
            lines += *p == '\n';
        CHECKF(lines == 31, "%d CSV lines", lines);
        hc_free(&r);
    }
    snprintf(path, sizeof path, "/v1/jobs/%ld/metrics?format=xml", id);
    CHECK(tj_request(port, "GET", path, NULL, NULL) == 400);

    snprintf(path, sizeof path, "%s/jobs/%ld/checkpoint.ckpt", state, id);
    CHECKF(stat(path, &st) == 0 && st.st_size > 0, "no checkpoint at %s", path);

    /* Finished jobs take no more changes. */
    expect_act(id, "cancel", 409, NULL);
    expect_act(id, "pause", 409, NULL);
    expect_act(id, "resume", 409, NULL);
    return id;
}

int main(int argc, char **argv)
{
    cJSON *doc;
    dproc d;
    long small, lng, queued_then_paused, paused, *steps;
    double *a = NULL, *b = NULL;
    int n, na = 0, nb = 0, st;
    char *text = NULL;

    dp_dirs dirs;
    int rc = dp_setup(&dirs, "convnetd-jobs", argc, argv);
    if (rc != 0)
        return rc;
    const char *state = dirs.state, *log = dirs.log;
    if (tj_write_synth(dirs.data, "synth", 800, 16, 16, 4, 11) != 0) {
        perror("set-up");
        return 1;
    }
    if (dp_start(&d, argv[1], state, dirs.data, log, NULL) != 0) {
        CHECK(!"convnetd starts");
        return check_result("daemon_jobs");
    }
    port = d.port;

    test_datasets();
    small = test_success(state);

    /* A running job and one queued behind it: pause the queued one (at
     * once), cancel the running one (after its minibatch). */
    lng = tj_submit(port, long_job);
    CHECK(lng > 0 && tj_wait_iteration(port, lng, 1, 30));
    queued_then_paused = tj_submit(port, pausable_job);
    job_doc(queued_then_paused, &doc);
    CHECK(strcmp(tj_str(doc, "status"), "queued") == 0);
    cJSON_Delete(doc);
    expect_act(queued_then_paused, "pause", 200, "paused");
    expect_act(queued_then_paused, "pause", 409, NULL);
    expect_act(lng, "resume", 409, NULL);
    expect_act(lng, "cancel", 200, "cancelled");
    expect_act(lng, "cancel", 409, NULL);
    steps = tj_steps(port, lng, "loss", &n);
    CHECKF(n >= 1 && tj_steps_exact(steps, n), "%d loss rows of the cancelled job", n);
    free(steps);
    job_doc(queued_then_paused, &doc);
    CHECK(strcmp(tj_str(doc, "status"), "paused") == 0 && tj_num(doc, "progress.iteration") == 0);
    cJSON_Delete(doc);

    /* Pause a running job, resume it, let it finish. */
    paused = tj_submit(port, pausable_job);
    CHECK(paused > 0 && tj_wait_iteration(port, paused, 5, 30));
    expect_act(paused, "pause", 200, "paused");
    job_doc(paused, &doc);
    CHECK(strcmp(tj_str(doc, "status"), "paused") == 0 && tj_num(doc, "progress.iteration") >= 5);
    cJSON_Delete(doc);
    expect_act(paused, "pause", 409, NULL);
    CHECK(act(paused, "resume", NULL) == 200);
    expect_act(paused, "resume", 409, NULL);
    CHECK(tj_wait_status(port, paused, "succeeded", 90));
    steps = tj_steps(port, paused, "loss", &n);
    CHECKF(n == 900 && tj_steps_exact(steps, n), "%d loss rows after pause/resume", n);
    free(steps);

    /* The job paused while queued runs now, never paused mid-way: its loss
     * curve must equal the paused-and-resumed one exactly. */
    CHECK(act(queued_then_paused, "resume", NULL) == 200);
    CHECK(tj_wait_status(port, queued_then_paused, "succeeded", 90));
    a = losses(paused, &na);
    b = losses(queued_then_paused, &nb);
    CHECKF(na == 900 && nb == 900, "%d and %d losses", na, nb);
    for (int i = 0; a != NULL && b != NULL && i < na && i < nb; i++) {
        if (a[i] != b[i]) {
            CHECKF(a[i] == b[i], "step %d: %.17g after a pause, %.17g without", i + 1, a[i], b[i]);
            break;
        }
    }
    free(a);
    free(b);
    CHECK(dp_log_contains(&d, "paused at iteration"));
    CHECK(dp_log_contains(&d, "resumes from its checkpoint"));

    /* Listing: newest first, pages, a status filter. */
    CHECK(tj_request(port, "GET", "/v1/jobs?limit=2", NULL, &doc) == 200);
    CHECK(cJSON_GetArraySize(tj_get(doc, "jobs")) == 2);
    CHECK(tj_num(cJSON_GetArrayItem(tj_get(doc, "jobs"), 0), "id") == (double)paused);
    CHECK(tj_num(cJSON_GetArrayItem(tj_get(doc, "jobs"), 1), "id") == (double)queued_then_paused);
    CHECK(tj_get(cJSON_GetArrayItem(tj_get(doc, "jobs"), 0), "spec") == NULL);
    if (cJSON_IsString(tj_get(doc, "next_page_token"))) {
        char path[128];
        snprintf(path, sizeof path, "/v1/jobs?limit=2&page_token=%s",
                 tj_str(doc, "next_page_token"));
        cJSON_Delete(doc);
        CHECK(tj_request(port, "GET", path, NULL, &doc) == 200);
        CHECK(cJSON_GetArraySize(tj_get(doc, "jobs")) == 2);
        CHECK(tj_num(cJSON_GetArrayItem(tj_get(doc, "jobs"), 0), "id") == (double)lng);
        CHECK(tj_num(cJSON_GetArrayItem(tj_get(doc, "jobs"), 1), "id") == (double)small);
        CHECK(cJSON_IsNull(tj_get(doc, "next_page_token")));
    } else {
        CHECK(!"a next_page_token on the first page");
    }
    cJSON_Delete(doc);
    CHECK(tj_request(port, "GET", "/v1/jobs?status=cancelled", NULL, &doc) == 200);
    CHECK(cJSON_GetArraySize(tj_get(doc, "jobs")) == 1 &&
          tj_num(cJSON_GetArrayItem(tj_get(doc, "jobs"), 0), "id") == (double)lng);
    cJSON_Delete(doc);

    /* Prometheus. */
    {
        hc_reply r;
        if (hc_request(port, "GET", "/metrics", NULL, NULL, 0, &r) == 0) {
            text = r.body;
            CHECK(r.status == 200);
            CHECK(strstr(text, "convnetd_jobs{state=\"succeeded\"} 3\n") != NULL);
            CHECK(strstr(text, "convnetd_jobs{state=\"cancelled\"} 1\n") != NULL);
            CHECK(strstr(text, "convnetd_iterations_total ") != NULL);
            CHECK(strstr(text, "convnetd_images_per_second ") != NULL);
            CHECK(strstr(text, "convnetd_http_requests_total{method=\"POST\",route=\"/v1/jobs\","
                               "code=\"201\"} 4\n") != NULL);
            CHECK(strstr(text, "convnetd_http_request_duration_seconds_bucket{method=\"GET\","
                               "route=\"/v1/jobs/{id}\",le=\"+Inf\"}") != NULL);
            CHECK(strstr(text, "route=\"unmatched\"") == NULL ||
                  strstr(text, "code=\"404\"") != NULL);
            hc_free(&r);
        }
    }

    st = dp_stop(&d, SIGTERM, 30);
    CHECKF(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status %d", st);
    dp_cleanup(&dirs, check_failures);
    return check_result("daemon_jobs");
}
