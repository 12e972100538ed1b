/* test_specs.c: POST /v1/jobs refuses bad job specs before queuing them,
 * each with a 4xx and the field at fault, and the daemon keeps serving
 * (GET /v1/health answers 200 after every one). Runs the real binary
 * (argv[1]) on a synthetic IDX data set; at the end one valid spec is
 * accepted and it is the only job in the store.
 *
 * Each case is a change to a valid base spec, written out in full so a
 * failing case reads on its own. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "check.h"
#include "daemon_proc.h"
#include "http_client.h"

#define DS "\"dataset\":{\"name\":\"synth\",\"val_fraction\":0.2,\"limit\":600}"
#define MODEL "\"model\":{\"preset\":\"three_layer_convnet\",\"num_filters\":4,\"hidden_dim\":16}"
#define SOLVER "\"solver\":{\"epochs\":1,\"batch_size\":32}"

typedef struct spec_case {
    const char *what;
    const char *body;
    int status;
    const char *field;        /* NULL: the error's field must be null */
    const char *in_message;   /* NULL: not checked */
} spec_case;

static const spec_case cases[] = {
    { "not an object", "[1,2]", 400, NULL, NULL },
    { "unknown top-level field", "{" DS "," MODEL ",\"epochs\":3}", 400, "epochs", NULL },
    { "empty name", "{\"name\":\"\"," DS "," MODEL "}", 400, "name", NULL },
    { "name of 101 characters",
      "{\"name\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
      "xxxxxxxxxxxxxxxxxxxxxxxxx\"," DS "," MODEL "}", 400, "name", "101" },
    { "name with a control character", "{\"name\":\"a\\nb\"," DS "," MODEL "}", 400, "name",
      NULL },
    { "name not a string", "{\"name\":7," DS "," MODEL "}", 400, "name", NULL },
    { "no dataset", "{" MODEL "}", 400, "dataset", NULL },
    { "dataset not an object", "{\"dataset\":\"synth\"," MODEL "}", 400, "dataset", NULL },
    { "unknown dataset field", "{\"dataset\":{\"name\":\"synth\",\"shuffle\":true}," MODEL "}",
      400, "dataset.shuffle", NULL },
    { "unknown data set", "{\"dataset\":{\"name\":\"imagenet\"}," MODEL "}", 400,
      "dataset.name", "imagenet" },
    { "val_fraction 1", "{\"dataset\":{\"name\":\"synth\",\"val_fraction\":1}," MODEL "}", 400,
      "dataset.val_fraction", NULL },
    { "val_fraction a string", "{\"dataset\":{\"name\":\"synth\",\"val_fraction\":\"0.2\"},"
      MODEL "}", 400, "dataset.val_fraction", NULL },
    { "empty validation split",
      "{\"dataset\":{\"name\":\"synth\",\"val_fraction\":0.001,\"limit\":100}," MODEL "}", 400,
      "dataset.val_fraction", NULL },
    { "negative limit", "{\"dataset\":{\"name\":\"synth\",\"limit\":-1}," MODEL "}", 400,
      "dataset.limit", NULL },
    { "fractional limit", "{\"dataset\":{\"name\":\"synth\",\"limit\":1.5}," MODEL "}", 400,
      "dataset.limit", NULL },
    { "limit beyond the data set", "{\"dataset\":{\"name\":\"synth\",\"limit\":100000},"
      MODEL "}", 400, "dataset.limit", "800" },
    { "negative learning rate", "{" DS "," MODEL ",\"solver\":{\"learning_rate\":-1}}", 400,
      "solver.learning_rate", "-1" },
    { "unknown update rule", "{" DS "," MODEL ",\"solver\":{\"update_rule\":\"adagrad\"}}", 400,
      "solver.update_rule", NULL },
    { "batch size 0", "{" DS "," MODEL ",\"solver\":{\"batch_size\":0}}", 400,
      "solver.batch_size", NULL },
    { "fractional epochs", "{" DS "," MODEL ",\"solver\":{\"epochs\":1.5}}", 400,
      "solver.epochs", NULL },
    { "unknown solver field", "{" DS "," MODEL ",\"solver\":{\"warmup\":3}}", 400,
      "solver.warmup", NULL },
    { "solver not an object", "{" DS "," MODEL ",\"solver\":\"fast\"}", 400, "solver", NULL },
    { "augment crop_pad too big", "{" DS "," MODEL ",\"solver\":{\"augment\":{\"crop_pad\":99}}}",
      400, "solver.augment.crop_pad", NULL },
    { "no model", "{" DS "}", 400, "model", NULL },
    { "unknown preset", "{" DS ",\"model\":{\"preset\":\"resnet50\"}}", 400, "model.preset",
      NULL },
    { "hidden_dim 0", "{" DS ",\"model\":{\"preset\":\"three_layer_convnet\",\"hidden_dim\":0}}",
      400, "model.hidden_dim", NULL },
    { "even filter size",
      "{" DS ",\"model\":{\"preset\":\"three_layer_convnet\",\"filter_size\":4}}", 400,
      "model.filter_size", NULL },
    { "unknown model field",
      "{" DS ",\"model\":{\"preset\":\"three_layer_convnet\",\"dropout\":0.5}}", 400,
      "model.dropout", NULL },
    { "conv kernel larger than the 16x16 images",
      "{" DS ",\"model\":{\"layers\":[{\"type\":\"conv\",\"filters\":4,\"size\":32},"
      "{\"type\":\"relu\"},{\"type\":\"linear\"}]}}", 400, "model.layers[0]", NULL },
    { "last layer not one unit per class",
      "{" DS ",\"model\":{\"layers\":[{\"type\":\"conv\",\"filters\":4,\"size\":3,\"pad\":1},"
      "{\"type\":\"relu\"},{\"type\":\"linear\",\"units\":7}]}}", 400, "model.layers", NULL },
    { "unknown layer type",
      "{" DS ",\"model\":{\"layers\":[{\"type\":\"conv\",\"filters\":4},{\"type\":\"softmax\"},"
      "{\"type\":\"linear\"}]}}", 400, "model.layers[1].type", NULL },
    { "unknown device", "{" DS "," MODEL ",\"device\":\"tpu\"}", 400, "device", NULL },
    { "device not a string", "{" DS "," MODEL ",\"device\":0}", 400, "device", NULL },
#ifndef CONVNETD_HAVE_CUDA
    { "cuda without a CUDA build", "{" DS "," MODEL ",\"device\":\"cuda:0\"}", 400, "device",
      "CUDA" },
#else
    { "a GPU that does not exist", "{" DS "," MODEL ",\"device\":\"cuda:63\"}", 400, "device",
      NULL },
#endif
    { "more memory than the host has",
      "{" DS ",\"model\":{\"preset\":\"three_layer_convnet\",\"num_filters\":4096,"
      "\"hidden_dim\":1048576}," SOLVER ",\"device\":\"cpu\"}", 400, "model", "MiB available" },
};

static void check_health(unsigned port, const char *after)
{
    int st = tj_request(port, "GET", "/v1/health", NULL, NULL);
    CHECKF(st == 200, "health %d after: %s", st, after);
}

static void run_case(unsigned port, const spec_case *c)
{
    cJSON *doc = NULL;
    int st = tj_request(port, "POST", "/v1/jobs", c->body, &doc);
    const cJSON *field = tj_get(doc, "error.field");

    CHECKF(st == c->status, "%s: status %d, want %d", c->what, st, c->status);
    CHECKF(strcmp(tj_str(doc, "error.code"), "invalid_argument") == 0 || c->status != 400,
           "%s: code %s", c->what, tj_str(doc, "error.code"));
    if (c->field == NULL)
        CHECKF(cJSON_IsNull(field), "%s: field should be null, is %s", c->what,
               cJSON_IsString(field) ? field->valuestring : "?");
    else
        CHECKF(cJSON_IsString(field) && strcmp(field->valuestring, c->field) == 0,
               "%s: field %s, want %s (message: %s)", c->what,
               cJSON_IsString(field) ? field->valuestring : "(none)", c->field,
               tj_str(doc, "error.message"));
    if (c->in_message != NULL)
        CHECKF(strstr(tj_str(doc, "error.message"), c->in_message) != NULL,
               "%s: message '%s' lacks '%s'", c->what, tj_str(doc, "error.message"),
               c->in_message);
    cJSON_Delete(doc);
    check_health(port, c->what);
}

int main(int argc, char **argv)
{
    char big[70 * 1024];
    const char *const extra[] = { "--max-queued", "2", NULL };
    long running, q1, q2;
    dproc d;
    cJSON *doc = NULL;
    hc_reply r;
    long id;
    int st, n = (int)(sizeof cases / sizeof cases[0]);

    dp_dirs dirs;
    int rc = dp_setup(&dirs, "convnetd-specs", argc, argv);
    if (rc != 0)
        return rc;
    const char *state = dirs.state, *log = dirs.log;
    if (tj_write_synth(dirs.data, "synth", 800, 16, 16, 4, 7) != 0) {
        perror("set-up");
        return 1;
    }
    if (dp_start(&d, argv[1], state, dirs.data, log, extra) != 0) {
        CHECK(!"convnetd starts");
        return check_result("daemon_specs");
    }
    CHECKF(n >= 20, "only %d cases", n);
    for (int i = 0; i < n; i++)
        run_case(d.port, &cases[i]);

    /* Not JSON at all, and too much of it. */
    st = tj_request(d.port, "POST", "/v1/jobs", "{\"dataset\":", &doc);
    CHECKF(st == 400 && strcmp(tj_str(doc, "error.code"), "invalid_json") == 0, "status %d", st);
    cJSON_Delete(doc);
    check_health(d.port, "invalid JSON");
    memset(big, ' ', sizeof big);
    big[0] = '{';
    big[sizeof big - 2] = '}';
    big[sizeof big - 1] = '\0';
    st = tj_request(d.port, "POST", "/v1/jobs", big, &doc);
    CHECKF(st == 413, "status %d", st);
    cJSON_Delete(doc);
    check_health(d.port, "a 70 KiB body");
    /* Bad ids and query arguments are 4xx too. */
    CHECK(tj_request(d.port, "GET", "/v1/jobs/abc", NULL, NULL) == 404);
    CHECK(tj_request(d.port, "GET", "/v1/jobs/-1", NULL, NULL) == 404);
    CHECK(tj_request(d.port, "GET", "/v1/jobs/99999999999999999999999", NULL, NULL) == 404);
    CHECK(tj_request(d.port, "GET", "/v1/jobs?limit=0", NULL, NULL) == 400);
    CHECK(tj_request(d.port, "GET", "/v1/jobs?status=done", NULL, NULL) == 400);
    CHECK(tj_request(d.port, "POST", "/v1/jobs/1/cancel", NULL, NULL) == 404);
    check_health(d.port, "bad ids");

    /* Nothing was queued; a valid spec is. */
    CHECK(tj_request(d.port, "GET", "/v1/jobs", NULL, &doc) == 200);
    CHECK(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(doc, "jobs")) == 0);
    cJSON_Delete(doc);
    id = tj_submit(d.port, "{\"name\":\"ok\"," DS "," MODEL "," SOLVER ",\"device\":\"" TEST_DEVICE "\"}");
    CHECK(id >= 1);
    if (id >= 1)
        CHECK(tj_wait_status(d.port, id, "succeeded", 60));
    /* max-queued: a running job does not count, the third queued one is
     * refused with 429. */
    running = tj_submit(d.port, "{" DS "," MODEL ",\"solver\":{\"epochs\":5000}}");
    CHECK(running > 0 && tj_wait_iteration(d.port, running, 1, 30));
    q1 = tj_submit(d.port, "{" DS "," MODEL "}");
    q2 = tj_submit(d.port, "{" DS "," MODEL "}");
    CHECK(q1 > 0 && q2 > 0);
    st = tj_request(d.port, "POST", "/v1/jobs", "{" DS "," MODEL "}", &doc);
    CHECKF(st == 429 && strcmp(tj_str(doc, "error.code"), "resource_exhausted") == 0,
           "status %d", st);
    cJSON_Delete(doc);
    {
        char path[64];
        long ids[3] = { q1, q2, running };
        for (int i = 0; i < 3; i++) {
            snprintf(path, sizeof path, "/v1/jobs/%ld/cancel", ids[i]);
            CHECK(tj_request(d.port, "POST", path, NULL, NULL) == 200);
        }
    }
    if (hc_request(d.port, "GET", "/v1/health", NULL, NULL, 0, &r) == 0) {
        CHECK(r.status == 200);
        hc_free(&r);
    }
    st = dp_stop(&d, SIGTERM, 30);
    CHECKF(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status %d", st);
    dp_cleanup(&dirs, check_failures);
    return check_result("daemon_specs");
}
