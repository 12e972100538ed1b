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
 * Not here: the binary tensor extension (refused with 400), the gRPC
 * protocol, model repository management. */
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "app.h"
#include "jobs.h"
#include "models.h"
#include "serve.h"
#include "util.h"

#define MAX_DEPTH 6   /* nesting of a "data" array ([N][C][H][W] is 4) */

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

typedef struct flat {
    nn_real *x;
    size_t n, cap;        /* values written, room */
    int uint8;
    size_t per_channel;   /* H*W, to know a value's channel for the mean */
    int c;
    const float *mean;
    char err[160];
} flat;

/* Appends the numbers of v (a number or nested arrays, row-major) to f.
 * 0 or -1 with f->err. */
static int flatten(flat *f, const cJSON *v, int depth)
{
    if (cJSON_IsArray(v)) {
        if (depth >= MAX_DEPTH) {
            snprintf(f->err, sizeof f->err, "data: nested deeper than %d", MAX_DEPTH);
            return -1;
        }
        for (const cJSON *e = v->child; e != NULL; e = e->next)
            if (flatten(f, e, depth + 1) != 0)
                return -1;
        return 0;
    }
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)) {
        snprintf(f->err, sizeof f->err, "data[%zu]: not a finite number", f->n);
        return -1;
    }
    if (f->n == f->cap) {
        snprintf(f->err, sizeof f->err, "data: more values than the shape holds (%zu)", f->cap);
        return -1;
    }
    if (f->uint8) {
        double d = v->valuedouble;
        int ch = (int)((f->n / f->per_channel) % (size_t)f->c);
        if (d != floor(d) || d < 0 || d > 255) {
            snprintf(f->err, sizeof f->err, "data[%zu]: UINT8 values are integers 0..255, "
                     "got %g", f->n, d);
            return -1;
        }
        /* image_normalize's arithmetic: the numbers training saw. */
        f->x[f->n] = (nn_real)(d / 255.0 - (double)f->mean[ch]);
    } else {
        f->x[f->n] = (nn_real)v->valuedouble;
    }
    f->n++;
    return 0;
}

void api_v2_infer(const http_req *req, http_reply *rep)
{
    app *a = req->app;
    const model_meta *m = v2_model(req, rep);
    const cJSON *inputs, *in, *shape, *dtype, *data, *outs, *id, *params;
    cJSON *body = NULL;
    const char *end = NULL;
    long dims[4];
    size_t per, total;
    flat f = { 0 };
    float *scores = NULL, *probs = NULL;
    char err[512], buf[32];
    const char *name;
    serve_rc sr;
    cJSON *doc, *outputs, *o, *oshape, *odata;
    int n;

    if (m == NULL)
        return;
    if (req->body_len > 0)
        body = json_parse_strict(req->body, req->body_len, &end);
    if (!cJSON_IsObject(body)) {
        v2_error(rep, 400, "the request must be a JSON object {\"inputs\": [...]}%s",
                 body == NULL ? " (the body is not valid JSON)" : "");
        goto out;
    }
    for (const cJSON *k = body->child; k != NULL; k = k->next) {
        if (strcmp(k->string, "inputs") != 0 && strcmp(k->string, "outputs") != 0 &&
            strcmp(k->string, "id") != 0 && strcmp(k->string, "parameters") != 0) {
            v2_error(rep, 400, "%.64s: unknown field (id, inputs, outputs, parameters)",
                     k->string);
            goto out;
        }
    }
    inputs = cJSON_GetObjectItemCaseSensitive(body, "inputs");
    id = cJSON_GetObjectItemCaseSensitive(body, "id");
    outs = cJSON_GetObjectItemCaseSensitive(body, "outputs");
    params = cJSON_GetObjectItemCaseSensitive(body, "parameters");
    if (id != NULL && !cJSON_IsString(id)) {
        v2_error(rep, 400, "id: must be a string");
        goto out;
    }
    if (params != NULL && cJSON_GetObjectItemCaseSensitive(params, "binary_data_output")) {
        v2_error(rep, 400, "the binary tensor extension is not supported: send JSON data");
        goto out;
    }
    if (outs != NULL) {
        if (!cJSON_IsArray(outs)) {
            v2_error(rep, 400, "outputs: must be an array");
            goto out;
        }
        for (const cJSON *e = outs->child; e != NULL; e = e->next) {
            const char *on = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "name"));
            if (on == NULL || strcmp(on, "probabilities") != 0) {
                v2_error(rep, 400, "outputs: the model has one output, \"probabilities\"");
                goto out;
            }
            if (cJSON_GetObjectItemCaseSensitive(
                    cJSON_GetObjectItemCaseSensitive(e, "parameters"), "binary_data")) {
                v2_error(rep, 400, "the binary tensor extension is not supported");
                goto out;
            }
        }
    }
    if (!cJSON_IsArray(inputs) || cJSON_GetArraySize(inputs) != 1) {
        v2_error(rep, 400, "inputs: the model has exactly one input, \"input\"");
        goto out;
    }
    in = inputs->child;
    name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(in, "name"));
    shape = cJSON_GetObjectItemCaseSensitive(in, "shape");
    dtype = cJSON_GetObjectItemCaseSensitive(in, "datatype");
    data = cJSON_GetObjectItemCaseSensitive(in, "data");
    if (name == NULL || strcmp(name, "input") != 0) {
        v2_error(rep, 400, "inputs[0].name: must be \"input\"");
        goto out;
    }
    if (cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(in, "parameters"),
                                         "binary_data_size")) {
        v2_error(rep, 400, "the binary tensor extension is not supported: send JSON data");
        goto out;
    }
    if (!cJSON_IsArray(shape) || cJSON_GetArraySize(shape) != 4) {
        v2_error(rep, 400, "inputs[0].shape: must be [N, %d, %d, %d] (NCHW)", m->c, m->h, m->w);
        goto out;
    }
    for (int i = 0; i < 4; i++) {
        const cJSON *d = cJSON_GetArrayItem(shape, i);
        if (!cJSON_IsNumber(d) || d->valuedouble != floor(d->valuedouble) ||
            d->valuedouble < 1 || d->valuedouble > 1e6) {
            v2_error(rep, 400, "inputs[0].shape[%d]: must be a positive integer", i);
            goto out;
        }
        dims[i] = (long)d->valuedouble;
    }
    if (dims[1] != m->c || dims[2] != m->h || dims[3] != m->w) {
        v2_error(rep, 400, "inputs[0].shape: model %ld takes [N, %d, %d, %d] (NCHW), got "
                 "[%ld, %ld, %ld, %ld]", m->id, m->c, m->h, m->w, dims[0], dims[1], dims[2],
                 dims[3]);
        goto out;
    }
    if (dims[0] > SERVE_MAX_BATCH) {
        v2_error(rep, 400, "inputs[0].shape[0]: at most %d images per request, got %ld",
                 SERVE_MAX_BATCH, dims[0]);
        goto out;
    }
    if (!cJSON_IsString(dtype) || (strcmp(dtype->valuestring, "FP32") != 0 &&
                                   strcmp(dtype->valuestring, "UINT8") != 0)) {
        v2_error(rep, 400, "inputs[0].datatype: must be FP32 (normalised) or UINT8 (pixels)");
        goto out;
    }
    if (!cJSON_IsArray(data)) {
        v2_error(rep, 400, "inputs[0].data: must be an array of numbers (row-major, flat or "
                 "nested)");
        goto out;
    }
    n = (int)dims[0];
    per = (size_t)m->c * (size_t)m->h * (size_t)m->w;
    total = (size_t)n * per;
    f.x = xmalloc(total * sizeof *f.x);
    f.cap = total;
    f.uint8 = strcmp(dtype->valuestring, "UINT8") == 0;
    f.per_channel = (size_t)m->h * (size_t)m->w;
    f.c = m->c;
    f.mean = m->mean;
    if (flatten(&f, data, 0) != 0) {
        v2_error(rep, 400, "inputs[0].%s", f.err);
        goto out;
    }
    if (f.n != total) {
        v2_error(rep, 400, "inputs[0].data: %zu values, the shape [%d, %d, %d, %d] needs %zu",
                 f.n, n, m->c, m->h, m->w, total);
        goto out;
    }
    scores = xmalloc((size_t)n * (size_t)m->num_classes * sizeof *scores);
    sr = serve_infer(a->serve, m, f.x, n, scores, SERVE_TIMEOUT_MS, err, sizeof err);
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
    if (id != NULL)
        cJSON_AddStringToObject(doc, "id", id->valuestring);
    outputs = cJSON_AddArrayToObject(doc, "outputs");
    o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", "probabilities");
    cJSON_AddStringToObject(o, "datatype", "FP32");
    oshape = cJSON_AddArrayToObject(o, "shape");
    cJSON_AddItemToArray(oshape, cJSON_CreateNumber(n));
    cJSON_AddItemToArray(oshape, cJSON_CreateNumber(m->num_classes));
    odata = cJSON_AddArrayToObject(o, "data");
    for (int i = 0; i < n; i++) {
        serve_softmax(probs, scores + (size_t)i * (size_t)m->num_classes, m->num_classes);
        for (int k = 0; k < m->num_classes; k++)
            cJSON_AddItemToArray(odata, cJSON_CreateNumber(probs[k]));
    }
    cJSON_AddItemToArray(outputs, o);
    http_reply_json(rep, 200, doc);
out:
    cJSON_Delete(body);
    models_put(a->models, m);
    free(f.x);
    free(scores);
    free(probs);
}
