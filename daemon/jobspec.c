/* jobspec.c: validation of the job spec (see jobspec.h).
 *
 * The order of checks is the order a user fixes things in: the shape of the
 * document, the data set, the solver, the model against the data, then the
 * device and its memory. The first failure is reported, with its field. */
#include "jobspec.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nn/model.h>
#include <nn/optim.h>

#include "util.h"

static int seterr(jobspec_error *e, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int seterr(jobspec_error *e, const char *field, const char *fmt, ...)
{
    va_list ap;
    snprintf(e->field, sizeof e->field, "%s", field);
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return -1;
}

/* Turns an nn message "model.layers[2].filters: must be ..." into an error
 * whose field is the part before the first ": " (nn's convention), or
 * `fallback` when the message does not start with it. */
static int nn_error(jobspec_error *e, const char *msg, const char *fallback)
{
    const char *colon = strstr(msg, ": ");
    size_t plen = strlen(fallback);
    size_t n = colon != NULL ? (size_t)(colon - msg) : 0;

    if (colon != NULL && n < sizeof e->field && strncmp(msg, fallback, plen) == 0 &&
        (msg[plen] == '.' || msg[plen] == ':' || msg[plen] == '[') &&
        strcspn(msg, " ") >= n) {
        memcpy(e->field, msg, n);
        e->field[n] = '\0';
    } else {
        snprintf(e->field, sizeof e->field, "%s", fallback);
    }
    snprintf(e->message, sizeof e->message, "%s", msg);
    return -1;
}

/* Checks that s is valid UTF-8 without control characters and counts its
 * code points. Returns the count, or -1. */
static long utf8_printable_len(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    long n = 0;

    while (*p != '\0') {
        unsigned cp;
        int extra;
        if (*p < 0x80) {
            cp = *p;
            extra = 0;
        } else if ((*p & 0xE0) == 0xC0) {
            cp = *p & 0x1F;
            extra = 1;
        } else if ((*p & 0xF0) == 0xE0) {
            cp = *p & 0x0F;
            extra = 2;
        } else if ((*p & 0xF8) == 0xF0) {
            cp = *p & 0x07;
            extra = 3;
        } else {
            return -1;
        }
        p++;
        for (int i = 0; i < extra; i++, p++) {
            if ((*p & 0xC0) != 0x80)
                return -1;
            cp = cp << 6 | (*p & 0x3F);
        }
        /* Overlong forms, surrogates, beyond Unicode. */
        if ((extra == 1 && cp < 0x80) || (extra == 2 && cp < 0x800) ||
            (extra == 3 && cp < 0x10000) || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return -1;
        /* C0 controls, DEL, C1 controls. */
        if (cp < 0x20 || (cp >= 0x7F && cp < 0xA0))
            return -1;
        n++;
    }
    return n;
}

/* Rejects members of o not in allowed (NULL-terminated); the field is
 * prefix + "." + the member (or the member alone for an empty prefix). */
static int unknown_fields(const cJSON *o, const char *prefix, const char *const *allowed,
                          jobspec_error *e)
{
    for (const cJSON *it = o->child; it != NULL; it = it->next) {
        int ok = 0;
        for (int i = 0; allowed[i] != NULL && !ok; i++)
            ok = it->string != NULL && strcmp(it->string, allowed[i]) == 0;
        if (!ok) {
            char field[128];
            snprintf(field, sizeof field, "%s%s%.60s", prefix, prefix[0] ? "." : "",
                     it->string != NULL ? it->string : "?");
            return seterr(e, field, "%s: unknown field", field);
        }
    }
    return 0;
}

static int parse_name(jobspec *s, const cJSON *doc, jobspec_error *e)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(doc, "name");
    long n;

    if (v == NULL)
        return 0;   /* filled in from the data set and model later */
    if (!cJSON_IsString(v))
        return seterr(e, "name", "name: must be a string");
    n = utf8_printable_len(v->valuestring);
    if (n < 0)
        return seterr(e, "name", "name: must be printable UTF-8 text (no control characters)");
    if (n < 1 || n > JOBSPEC_NAME_CHARS)
        return seterr(e, "name", "name: must be 1..%d characters, got %ld",
                      JOBSPEC_NAME_CHARS, n);
    if (strlen(v->valuestring) >= sizeof s->name)
        return seterr(e, "name", "name: too long");
    strcpy(s->name, v->valuestring);
    return 0;
}

static int parse_dataset(jobspec *s, const cJSON *doc, app *a, jobspec_error *e)
{
    static const char *const allowed[] = { "name", "val_fraction", "limit", "subtract_mean",
                                           NULL };
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(doc, "dataset");
    const cJSON *v;
    int count;

    if (d == NULL)
        return seterr(e, "dataset", "dataset: required, e.g. {\"name\":\"fashion-mnist\"}");
    if (!cJSON_IsObject(d))
        return seterr(e, "dataset", "dataset: must be an object");
    if (unknown_fields(d, "dataset", allowed, e) != 0)
        return -1;
    v = cJSON_GetObjectItemCaseSensitive(d, "name");
    if (v == NULL)
        return seterr(e, "dataset.name", "dataset.name: required (GET /v1/datasets lists them)");
    if (!cJSON_IsString(v))
        return seterr(e, "dataset.name", "dataset.name: must be a string");
    if (strlen(v->valuestring) >= sizeof s->dataset || a->datasets == NULL ||
        datasets_info(a->datasets, v->valuestring, &s->data) != 0)
        return seterr(e, "dataset.name", "dataset.name: no data set called \"%.64s\" "
                      "(GET /v1/datasets lists them)", v->valuestring);
    strcpy(s->dataset, v->valuestring);

    v = cJSON_GetObjectItemCaseSensitive(d, "val_fraction");
    if (v != NULL) {
        if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
            return seterr(e, "dataset.val_fraction", "dataset.val_fraction: must be a number");
        if (!(v->valuedouble >= 0 && v->valuedouble < 1))
            return seterr(e, "dataset.val_fraction",
                          "dataset.val_fraction: must be >= 0 and < 1, got %g", v->valuedouble);
        s->val_fraction = v->valuedouble;
    }
    v = cJSON_GetObjectItemCaseSensitive(d, "limit");
    if (v != NULL) {
        if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble))
            return seterr(e, "dataset.limit", "dataset.limit: must be an integer");
        if (v->valuedouble < 0 || v->valuedouble > s->data.n_train)
            return seterr(e, "dataset.limit", "dataset.limit: must be in 0..%d (0 = all "
                          "%d training images), got %g", s->data.n_train, s->data.n_train,
                          v->valuedouble);
        s->limit = (int)v->valuedouble;
    }
    v = cJSON_GetObjectItemCaseSensitive(d, "subtract_mean");
    if (v != NULL) {
        if (!cJSON_IsBool(v))
            return seterr(e, "dataset.subtract_mean", "dataset.subtract_mean: must be true "
                          "or false");
        s->subtract_mean = cJSON_IsTrue(v);
    }
    /* nn_dataset_split's arithmetic: the last round(f * count) are validation. */
    count = s->limit > 0 ? s->limit : s->data.n_train;
    s->n_val = (int)lround(s->val_fraction * count);
    s->n_train = count - s->n_val;
    if (s->val_fraction > 0 && s->n_val == 0)
        return seterr(e, "dataset.val_fraction", "dataset.val_fraction: %g of %d images "
                      "leaves no validation images", s->val_fraction, count);
    if (s->n_train < 1)
        return seterr(e, "dataset.val_fraction", "dataset.val_fraction: %g of %d images "
                      "leaves no training images", s->val_fraction, count);
    return 0;
}

static int parse_solver(jobspec *s, const cJSON *doc, jobspec_error *e)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(doc, "solver");
    char err[NN_ERRLEN];
    char *text;
    long per_epoch;
    nn_status st;

    s->solver = nn_solver_defaults();
    s->solver.print_every = 0;   /* the daemon logs per epoch, not nn's lines */
    if (v == NULL)
        goto derive;
    if (!cJSON_IsObject(v))
        return seterr(e, "solver", "solver: must be an object");
    text = cJSON_PrintUnformatted(v);
    if (text == NULL)
        return seterr(e, "solver", "solver: cannot be processed");
    st = nn_solver_config_parse(&s->solver, text, err);
    cJSON_free(text);
    if (st != NN_OK)
        return nn_error(e, err, "solver");
derive:
    per_epoch = s->n_train / s->solver.batch_size;
    if (per_epoch < 1)
        per_epoch = 1;
    s->num_iterations = per_epoch * s->solver.num_epochs;
    if (s->solver.max_iterations > 0 && s->solver.max_iterations < s->num_iterations)
        s->num_iterations = s->solver.max_iterations;
    return 0;
}

static int parse_model(jobspec *s, const cJSON *doc, int slots, jobspec_error *e)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(doc, "model");
    nn_model_config mc = {
        .channels = s->data.c, .height = s->data.h, .width = s->data.w,
        .num_classes = s->data.num_classes, .max_batch = s->solver.batch_size,
        .seed = s->solver.seed,
    };
    char err[NN_ERRLEN];
    size_t bytes = 0;
    nn_status st;

    if (v == NULL)
        return seterr(e, "model", "model: required, e.g. {\"preset\":\"three_layer_convnet\"}");
    if (!cJSON_IsObject(v))
        return seterr(e, "model", "model: must be an object");
    s->model_json = cJSON_PrintUnformatted(v);
    if (s->model_json == NULL)
        return seterr(e, "model", "model: cannot be processed");
    st = nn_model_estimate(&bytes, s->model_json, &mc, slots, err);
    if (st != NN_OK)
        return nn_error(e, err, "model");
    s->bytes = bytes;
    return 0;
}

/* "auto", "cpu" or "cuda:N" with N of one or two digits. */
static int device_syntax_ok(const char *d)
{
    size_t n;
    if (strcmp(d, "auto") == 0 || strcmp(d, "cpu") == 0)
        return 1;
    if (strncmp(d, "cuda:", 5) != 0)
        return 0;
    n = strspn(d + 5, "0123456789");
    return n >= 1 && n <= 2 && d[5 + n] == '\0';
}

int jobspec_resolve_device(const app *a, const char *device, jobspec_error *e)
{
    char names[256] = "";
    size_t used = 0;

    for (int i = 0; i < a->ndevices && used < sizeof names; i++) {
        int n = snprintf(names + used, sizeof names - used, "%s%s", i ? ", " : "",
                         a->devices[i].name);
        if (n > 0)
            used += (size_t)n;
    }
    if (!device_syntax_ok(device))
        return seterr(e, "device", "device: must be \"auto\", \"cpu\" or \"cuda:N\", got "
                      "\"%.32s\"", device);
    if (strcmp(device, "auto") == 0) {
        for (int i = 0; i < a->ndevices; i++)
            if (a->devices[i].cuda >= 0)
                return i;
        for (int i = 0; i < a->ndevices; i++)
            if (a->devices[i].cuda < 0)
                return i;
        return seterr(e, "device", "device: this convnetd has no device to train on");
    }
    if (strncmp(device, "cuda:", 5) == 0 && !a->have_cuda)
        return seterr(e, "device", "device: %s asks for a GPU, but this convnetd was built "
                      "without CUDA (use \"cpu\" or \"auto\")", device);
    for (int i = 0; i < a->ndevices; i++)
        if (strcmp(a->devices[i].name, device) == 0)
            return i;
    return seterr(e, "device", "device: %s is not available here (devices: %s)", device,
                  names[0] ? names : "none");
}

/* The device and its memory. */
static int admit(jobspec *s, app *a, jobspec_error *e)
{
    const device_desc *d;
    uint64_t need, have, data = s->data.loaded ? 0 : s->data.load_bytes;

    s->device_index = jobspec_resolve_device(a, s->device, e);
    if (s->device_index < 0)
        return -1;
    d = &a->devices[s->device_index];
    /* Data sets live in host memory whatever the device; on the CPU the
     * model does too. */
    need = d->cuda < 0 ? s->bytes + data : data;
    have = host_available_memory();
    if (have > 0 && need > have)
        return seterr(e, "model", "the job needs %llu MiB of memory (%s), but the host has "
                      "%llu MiB available", (unsigned long long)(need >> 20),
                      d->cuda < 0 ? "model, optimizer state, activations and data" : "data",
                      (unsigned long long)(have >> 20));
    if (d->cuda >= 0 && d->memory > 0 && s->bytes > d->memory)
        return seterr(e, "model", "the job needs %llu MiB of memory on %s, which has %llu MiB",
                      (unsigned long long)(s->bytes >> 20), d->name,
                      (unsigned long long)(d->memory >> 20));
    return 0;
}

int jobspec_parse(jobspec *out, const cJSON *doc, app *a, jobspec_mode mode,
                  jobspec_error *e)
{
    static const char *const allowed[] = { "name", "dataset", "model", "solver", "device",
                                           NULL };
    const cJSON *v;
    int slots;

    memset(out, 0, sizeof *out);
    memset(e, 0, sizeof *e);
    out->val_fraction = 0.2; /* the report's 40,000/10,000 split */
    out->subtract_mean = 1;
    out->device_index = -1;
    strcpy(out->device, "auto");
    if (!cJSON_IsObject(doc)) {
        seterr(e, "", "the job spec must be a JSON object");
        goto fail;
    }
    if (unknown_fields(doc, "", allowed, e) != 0 || parse_name(out, doc, e) != 0 ||
        parse_dataset(out, doc, a, e) != 0 || parse_solver(out, doc, e) != 0)
        goto fail;
    /* The solver keeps a copy of the best parameters beside the optimizer
     * state: one more parameter-sized array than the rule's slots. */
    slots = nn_optim_state_slots(out->solver.optim.rule) + 1;
    if (parse_model(out, doc, slots, e) != 0)
        goto fail;
    v = cJSON_GetObjectItemCaseSensitive(doc, "device");
    if (v != NULL) {
        if (!cJSON_IsString(v) || strlen(v->valuestring) >= sizeof out->device) {
            seterr(e, "device", "device: must be \"auto\", \"cpu\" or \"cuda:N\"");
            goto fail;
        }
        strcpy(out->device, v->valuestring);
    }
    if (mode == JOBSPEC_ADMIT && admit(out, a, e) != 0)
        goto fail;
    if (out->name[0] == '\0') {
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(doc, "model");
        const char *preset = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(m, "preset"));
        snprintf(out->name, sizeof out->name, "%s-%.40s", out->dataset,
                 preset != NULL ? preset : "custom");
    }
    return 0;
fail:
    jobspec_clear(out);
    return -1;
}

void jobspec_clear(jobspec *s)
{
    cJSON_free(s->model_json);
    s->model_json = NULL;
}
