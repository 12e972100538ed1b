/* api_kserve.c: the KServe v2 (Open Inference) protocol over REST, so that
 * standard clients (tritonclient, kserve's InferenceRESTClient, curl
 * scripts written for them) can use convnetd's models. {name} is a model's
 * id (its job's id) as a string; the version is the checkpoint's iteration.
 *
 * One input, "input", shape [N,C,H,W] (N 1..SERVE_MAX_BATCH): FP32 is taken
 * as already normalised (what the model computes on: pixel/255 - mean),
 * UINT8 as raw 0..255 pixels that get the training normalisation. One
 * output, "probabilities", FP32 [N,K], the softmax of the class scores.
 * Errors follow the protocol: {"error": "<message>"} with a 4xx/5xx status.
 * The request body is parsed and checked by kserve_parse_infer (kserve.c,
 * pure and fuzzed); this file looks the model up, runs it and replies.
 * Not here: the binary tensor extension (refused with 400), the gRPC
 * protocol, model repository management. */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "api.h"
#include "app.h"
#include "jobs.h"
#include "kserve.h"
#include "models.h"
#include "serve.h"
#include "util.h"

/* Sets the protocol's error reply: {"error": message}. */
static void v2_error(http_reply *rep, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void v2_error(http_reply *rep, unsigned status, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    cJSON *doc = cJSON_CreateObject();

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cJSON_AddStringToObject(doc, "error", msg);
    http_reply_json(rep, status, doc);
}

/* The model {name}; NULL with a 404/500 (or 503 without serving) reply. */
static const model_meta *v2_model(const http_req *req, http_reply *rep)
{
    app *a = req->app;
    const char *name = http_param(&req->params, "name");
    const model_meta *m;
    char err[512];
    long id;
    models_rc mr;

    if (a->models == NULL || a->serve == NULL) {
        v2_error(rep, 503, "this server does not serve models");
        return NULL;
    }
    if (name == NULL || parse_long(name, 1, LONG_MAX, &id) != 0) {
        v2_error(rep, 404, "no such model: %.64s (models are named by their job id)",
                 name != NULL ? name : "");
        return NULL;
    }
    mr = models_get(a->models, id, &m, err, sizeof err);
    if (mr != MODELS_OK) {
        v2_error(rep, mr == MODELS_NOTFOUND ? 404 : 500, "%s", err);
        return NULL;
    }
    return m;
}

/* ---- GET /v2, /v2/health/live, /v2/health/ready ---- */

void api_v2_server(const http_req *req, http_reply *rep)
{
    cJSON *doc = cJSON_CreateObject();
    (void)req;
    cJSON_AddStringToObject(doc, "name", "convnetd");
    cJSON_AddStringToObject(doc, "version", CONVNETD_VERSION);
    cJSON_AddArrayToObject(doc, "extensions");
    http_reply_json(rep, 200, doc);
}

void api_v2_live(const http_req *req, http_reply *rep)
{
    cJSON *doc = cJSON_CreateObject();
    (void)req;
    cJSON_AddBoolToObject(doc, "live", 1);
    http_reply_json(rep, 200, doc);
}

void api_v2_ready(const http_req *req, http_reply *rep)
{
    app *a = req->app;
    int ready = a->serve != NULL && a->ndevices > 0 &&
                (a->jobs == NULL || !jobs_stopping(a->jobs));
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddBoolToObject(doc, "ready", ready);
    http_reply_json(rep, ready ? 200 : 503, doc);
}

/* ---- GET /v2/models/{name}, /v2/models/{name}/ready ---- */

static cJSON *tensor_meta(const char *name, int d1, int d2, int d3, int ndim)
{
    cJSON *t = cJSON_CreateObject();
    cJSON *shape;
    cJSON_AddStringToObject(t, "name", name);
    cJSON_AddStringToObject(t, "datatype", "FP32");
    shape = cJSON_AddArrayToObject(t, "shape");
    cJSON_AddItemToArray(shape, cJSON_CreateNumber(-1));
    cJSON_AddItemToArray(shape, cJSON_CreateNumber(d1));
    if (ndim == 4) {
        cJSON_AddItemToArray(shape, cJSON_CreateNumber(d2));
        cJSON_AddItemToArray(shape, cJSON_CreateNumber(d3));
    }
    return t;
}

void api_v2_model(const http_req *req, http_reply *rep)
{
    const model_meta *m = v2_model(req, rep);
    cJSON *doc, *versions, *inputs, *outputs, *params, *names, *mean, *in;
    char buf[32];

    if (m == NULL)
        return;
    doc = cJSON_CreateObject();
    snprintf(buf, sizeof buf, "%ld", m->id);
    cJSON_AddStringToObject(doc, "name", buf);
    versions = cJSON_AddArrayToObject(doc, "versions");
    snprintf(buf, sizeof buf, "%ld", m->iteration);
    cJSON_AddItemToArray(versions, cJSON_CreateString(buf));
    cJSON_AddStringToObject(doc, "platform", "convnetd");
    inputs = cJSON_AddArrayToObject(doc, "inputs");
    in = tensor_meta("input", m->c, m->h, m->w, 4);
    cJSON_AddItemToArray(inputs, in);
    outputs = cJSON_AddArrayToObject(doc, "outputs");
    cJSON_AddItemToArray(outputs, tensor_meta("probabilities", m->num_classes, 0, 0, 2));
    /* Beyond the protocol's fields (clients ignore what they do not know):
     * what a client needs to prepare UINT8 or FP32 input itself. */
    params = cJSON_AddObjectToObject(doc, "parameters");
    cJSON_AddStringToObject(params, "layout", "NCHW");
    cJSON_AddStringToObject(params, "uint8_input",
                            "UINT8 pixels 0..255 are normalised as in training: "
                            "pixel/255 - mean[channel]");
    cJSON_AddStringToObject(params, "fp32_input", "FP32 input is taken as already normalised");
    mean = cJSON_AddArrayToObject(params, "mean");
    for (int i = 0; i < m->c; i++)
        cJSON_AddItemToArray(mean, cJSON_CreateNumber(m->mean[i]));
    names = cJSON_AddArrayToObject(params, "class_names");
    for (int i = 0; i < m->num_classes; i++)
        cJSON_AddItemToArray(names, cJSON_CreateString(m->class_names[i]));
    cJSON_AddNumberToObject(params, "max_batch_size", SERVE_MAX_BATCH);
    models_put(req->app->models, m);
    http_reply_json(rep, 200, doc);
}

void api_v2_model_ready(const http_req *req, http_reply *rep)
{
    const model_meta *m = v2_model(req, rep);
    cJSON *doc;
    char buf[32];

    if (m == NULL)
        return;
    doc = cJSON_CreateObject();
    snprintf(buf, sizeof buf, "%ld", m->id);
    cJSON_AddStringToObject(doc, "name", buf);
    cJSON_AddBoolToObject(doc, "ready", 1);
    models_put(req->app->models, m);
    http_reply_json(rep, 200, doc);
}

/* ---- POST /v2/models/{name}/infer ---- */

/* UINT8 pixels in place to what the model computes on, with
 * image_normalize's arithmetic: the numbers training saw. */
static void normalise(nn_real *x, size_t len, const model_meta *m)
{
    size_t per_channel = (size_t)m->h * (size_t)m->w;

    for (size_t i = 0; i < len; i++) {
        int ch = (int)((i / per_channel) % (size_t)m->c);
        x[i] = (nn_real)((double)x[i] / 255.0 - (double)m->mean[ch]);
    }
}

void api_v2_infer(const http_req *req, http_reply *rep)
{
    app *a = req->app;
    const model_meta *m = v2_model(req, rep);
    kserve_req kr = { 0 };
    float *scores = NULL, *probs = NULL;
    char err[512], buf[32];
    serve_rc sr;
    cJSON *doc, *outputs, *o, *oshape, *odata;

    if (m == NULL)
        return;
    if (kserve_parse_infer(&kr, req->body, req->body_len,
                           &(kserve_want){ .c = m->c, .h = m->h, .w = m->w,
                                           .max_batch = SERVE_MAX_BATCH, .model_id = m->id },
                           err, sizeof err) != 0) {
        v2_error(rep, 400, "%s", err);
        goto out;
    }
    if (kr.dtype == KSERVE_UINT8)
        normalise(kr.x, kr.len, m);
    scores = xmalloc((size_t)kr.n * (size_t)m->num_classes * sizeof *scores);
    sr = serve_infer(a->serve, m, kr.x, kr.n, scores, SERVE_TIMEOUT_MS, err, sizeof err);
    if (sr != SERVE_OK) {
        v2_error(rep, sr == SERVE_FAILED ? 500 : 503, "%s", err);
        if (sr == SERVE_FULL || sr == SERVE_TIMEOUT)
            http_reply_header(rep, "Retry-After", "1");
        goto out;
    }
    probs = xmalloc((size_t)m->num_classes * sizeof *probs);
    doc = cJSON_CreateObject();
    snprintf(buf, sizeof buf, "%ld", m->id);
    cJSON_AddStringToObject(doc, "model_name", buf);
    snprintf(buf, sizeof buf, "%ld", m->iteration);
    cJSON_AddStringToObject(doc, "model_version", buf);
    if (kr.id != NULL)
        cJSON_AddStringToObject(doc, "id", kr.id);
    outputs = cJSON_AddArrayToObject(doc, "outputs");
    o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", "probabilities");
    cJSON_AddStringToObject(o, "datatype", "FP32");
    oshape = cJSON_AddArrayToObject(o, "shape");
    cJSON_AddItemToArray(oshape, cJSON_CreateNumber(kr.n));
    cJSON_AddItemToArray(oshape, cJSON_CreateNumber(m->num_classes));
    odata = cJSON_AddArrayToObject(o, "data");
    for (int i = 0; i < kr.n; i++) {
        serve_softmax(probs, scores + (size_t)i * (size_t)m->num_classes, m->num_classes);
        for (int k = 0; k < m->num_classes; k++)
            cJSON_AddItemToArray(odata, cJSON_CreateNumber(probs[k]));
    }
    cJSON_AddItemToArray(outputs, o);
    http_reply_json(rep, 200, doc);
out:
    models_put(a->models, m);
    kserve_req_free(&kr);
    free(scores);
    free(probs);
}
