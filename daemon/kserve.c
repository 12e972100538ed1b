/* kserve.c: the KServe v2 inference request parser (see kserve.h). Pure:
 * no app, no HTTP, no model, no globals; api_kserve.c calls it with the
 * model's shape and turns a failure into the protocol's 400. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "kserve.h"
#include "util.h"

/* Where flatten writes: cap values into x, n so far. */
typedef struct flat {
    nn_real *x;
    size_t n, cap;
    int uint8;
    char *err;
    size_t errlen;
} flat;

/* Appends the numbers of v (a number or nested arrays, row-major) to f.
 * 0, or -1 with the message in f->err. */
static int flatten(flat *f, const cJSON *v, int depth)
{
    double d;

    if (cJSON_IsArray(v)) {
        if (depth >= KSERVE_MAX_DEPTH)
            return set_err(f->err, f->errlen, "inputs[0].data: nested deeper than %d",
                           KSERVE_MAX_DEPTH);
        for (const cJSON *e = v->child; e != NULL; e = e->next)
            if (flatten(f, e, depth + 1) != 0)
                return -1;
        return 0;
    }
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return set_err(f->err, f->errlen, "inputs[0].data[%zu]: not a finite number", f->n);
    if (f->n == f->cap)
        return set_err(f->err, f->errlen, "inputs[0].data: more values than the shape holds (%zu)",
                       f->cap);
    d = v->valuedouble;
    if (f->uint8 && (d != floor(d) || d < 0 || d > 255))
        return set_err(f->err, f->errlen, "inputs[0].data[%zu]: UINT8 values are integers 0..255, "
                       "got %g", f->n, d);
    /* 1e300 is a finite double but an infinite float: the model would
     * answer NaN. */
    if (!isfinite((nn_real)d))
        return set_err(f->err, f->errlen, "inputs[0].data[%zu]: %g is beyond FP32's range",
                       f->n, d);
    f->x[f->n++] = (nn_real)d;
    return 0;
}

/* The checks of the request's top level: fields, id, parameters, outputs. */
static int check_top(const cJSON *body, char *err, size_t errlen)
{
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(body, "id");
    const cJSON *outs = cJSON_GetObjectItemCaseSensitive(body, "outputs");
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(body, "parameters");

    for (const cJSON *k = body->child; k != NULL; k = k->next)
        if (strcmp(k->string, "inputs") != 0 && strcmp(k->string, "outputs") != 0 &&
            strcmp(k->string, "id") != 0 && strcmp(k->string, "parameters") != 0)
            return set_err(err, errlen, "%.64s: unknown field (id, inputs, outputs, parameters)",
                           k->string);
    if (id != NULL && !cJSON_IsString(id))
        return set_err(err, errlen, "id: must be a string");
    if (params != NULL && cJSON_GetObjectItemCaseSensitive(params, "binary_data_output"))
        return set_err(err, errlen, "the binary tensor extension is not supported: send JSON data");
    if (outs == NULL)
        return 0;
    if (!cJSON_IsArray(outs))
        return set_err(err, errlen, "outputs: must be an array");
    for (const cJSON *e = outs->child; e != NULL; e = e->next) {
        const char *on = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "name"));
        if (on == NULL || strcmp(on, "probabilities") != 0)
            return set_err(err, errlen, "outputs: the model has one output, \"probabilities\"");
        if (cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(e, "parameters"),
                                             "binary_data"))
            return set_err(err, errlen, "the binary tensor extension is not supported");
    }
    return 0;
}

/* The one input's name, parameters, shape and datatype: *n and *uint8. */
static int check_input(int *n, int *uint8, const cJSON *inputs, const kserve_want *want,
                       char *err, size_t errlen)
{
    const cJSON *in, *shape, *dtype;
    const char *name;
    long dims[4];

    if (!cJSON_IsArray(inputs) || cJSON_GetArraySize(inputs) != 1)
        return set_err(err, errlen, "inputs: the model has exactly one input, \"input\"");
    in = inputs->child;
    name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(in, "name"));
    shape = cJSON_GetObjectItemCaseSensitive(in, "shape");
    dtype = cJSON_GetObjectItemCaseSensitive(in, "datatype");
    if (name == NULL || strcmp(name, "input") != 0)
        return set_err(err, errlen, "inputs[0].name: must be \"input\"");
    if (cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(in, "parameters"),
                                         "binary_data_size"))
        return set_err(err, errlen, "the binary tensor extension is not supported: send JSON data");
    if (!cJSON_IsArray(shape) || cJSON_GetArraySize(shape) != 4)
        return set_err(err, errlen, "inputs[0].shape: must be [N, %d, %d, %d] (NCHW)",
                       want->c, want->h, want->w);
    for (int i = 0; i < 4; i++) {
        const cJSON *d = cJSON_GetArrayItem(shape, i);
        if (!cJSON_IsNumber(d) || d->valuedouble != floor(d->valuedouble) ||
            d->valuedouble < 1 || d->valuedouble > 1e6)
            return set_err(err, errlen, "inputs[0].shape[%d]: must be a positive integer", i);
        dims[i] = (long)d->valuedouble;
    }
    if (dims[1] != want->c || dims[2] != want->h || dims[3] != want->w)
        return set_err(err, errlen, "inputs[0].shape: model %ld takes [N, %d, %d, %d] (NCHW), got "
                       "[%ld, %ld, %ld, %ld]", want->model_id, want->c, want->h, want->w,
                       dims[0], dims[1], dims[2], dims[3]);
    if (dims[0] > want->max_batch)
        return set_err(err, errlen, "inputs[0].shape[0]: at most %d images per request, got %ld",
                       want->max_batch, dims[0]);
    if (!cJSON_IsString(dtype) || (strcmp(dtype->valuestring, "FP32") != 0 &&
                                   strcmp(dtype->valuestring, "UINT8") != 0))
        return set_err(err, errlen, "inputs[0].datatype: must be FP32 (normalised) or UINT8 "
                       "(pixels)");
    *n = (int)dims[0];
    *uint8 = strcmp(dtype->valuestring, "UINT8") == 0;
    return 0;
}

int kserve_parse_infer(kserve_req *out, const char *body, size_t len, const kserve_want *want,
                       char *err, size_t errlen)
{
    cJSON *doc = NULL;
    const cJSON *inputs, *data, *id;
    flat f = { .err = err, .errlen = errlen };
    int n = 0, uint8 = 0;

    memset(out, 0, sizeof *out);
    if (len > 0)
        doc = json_parse_strict(body, len, NULL);
    if (!cJSON_IsObject(doc)) {
        set_err(err, errlen, "the request must be a JSON object {\"inputs\": [...]}%s",
                doc == NULL ? " (the body is not valid JSON)" : "");
        goto fail;
    }
    if (check_top(doc, err, errlen) != 0)
        goto fail;
    inputs = cJSON_GetObjectItemCaseSensitive(doc, "inputs");
    if (check_input(&n, &uint8, inputs, want, err, errlen) != 0)
        goto fail;
    data = cJSON_GetObjectItemCaseSensitive(inputs->child, "data");
    if (!cJSON_IsArray(data)) {
        set_err(err, errlen, "inputs[0].data: must be an array of numbers (row-major, flat or "
                "nested)");
        goto fail;
    }
    f.cap = (size_t)n * (size_t)want->c * (size_t)want->h * (size_t)want->w;
    f.x = xmalloc(f.cap * sizeof *f.x);
    f.uint8 = uint8;
    if (flatten(&f, data, 0) != 0)
        goto fail;
    if (f.n != f.cap) {
        set_err(err, errlen, "inputs[0].data: %zu values, the shape [%d, %d, %d, %d] needs %zu",
                f.n, n, want->c, want->h, want->w, f.cap);
        goto fail;
    }
    id = cJSON_GetObjectItemCaseSensitive(doc, "id");
    out->x = f.x;
    out->len = f.cap;
    out->n = n;
    out->dtype = uint8 ? KSERVE_UINT8 : KSERVE_FP32;
    out->id = id != NULL ? xstrdup(id->valuestring) : NULL;
    cJSON_Delete(doc);
    return 0;

fail:
    free(f.x);
    cJSON_Delete(doc);
    return -1;
}

void kserve_req_free(kserve_req *r)
{
    if (r == NULL)
        return;
    free(r->x);
    free(r->id);
    memset(r, 0, sizeof *r);
}
