/* api_models.c: /v1/models and /v1/models/{id}/...: trained models (a
 * model's id is its job's id), classifying an uploaded image, the test-set
 * evaluation, the checkpoint download, and the first-layer filter picture
 * of GET /v1/jobs/{id}/filters.png.
 *
 * Images are decoded, resized and normalised here, on the HTTP thread;
 * only the forward pass runs on the device's worker (serve.h). Checkpoint
 * metadata and filter pictures come from the registry (models.h). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api.h"
#include "app.h"
#include "image.h"
#include "jobs.h"
#include "log.h"
#include "models.h"
#include "multipart.h"
#include "pngenc.h"
#include "serve.h"
#include "store.h"
#include "util.h"

#define TOP_K_DEFAULT 5
#define TOP_K_MAX 1000
#define EVAL_WAIT_DEFAULT_S 10
#define EVAL_WAIT_MAX_S 60
#define DECODE_WAIT_MS 10000

/* ---- helpers ---- */

int api_model_id(const http_req *req, http_reply *rep, const char *param, long *id)
{
    const char *s = http_param(&req->params, param);
    if (s == NULL || parse_long(s, 1, LONG_MAX, id) != 0) {
        http_reply_error(rep, HTTP_ERR_NOT_FOUND, NULL, "no such model: %.64s", s ? s : "");
        return -1;
    }
    return 0;
}

static http_err api_models_err(models_rc rc)
{
    return rc == MODELS_NOTFOUND ? HTTP_ERR_NOT_FOUND : HTTP_ERR_INTERNAL;
}

static http_err api_serve_err(serve_rc rc)
{
    return rc == SERVE_FAILED ? HTTP_ERR_INTERNAL : HTTP_ERR_UNAVAILABLE;
}

/* Sets the 503 for an app without serving (unit tests) and returns -1. */
static int need_serving(const http_req *req, http_reply *rep)
{
    if (req->app->models == NULL || req->app->serve == NULL) {
        http_reply_error(rep, HTTP_ERR_UNAVAILABLE, NULL, "this server does not serve models");
        return -1;
    }
    return 0;
}

/* An optional integer query argument in lo..hi; -1 with a 400 reply. */
static void add_time(cJSON *o, const char *key, double t)
{
    char buf[40];
    if (t <= 0) {
        cJSON_AddNullToObject(o, key);
        return;
    }
    format_rfc3339(buf, sizeof buf, t);
    cJSON_AddStringToObject(o, key, buf);
}

/* ---- documents ---- */

/* The evaluation part of a model document, from the store. */
static void add_accuracy(app *a, cJSON *doc, const model_meta *m)
{
    cJSON *acc = cJSON_AddObjectToObject(doc, "accuracy");
    store_evaluation e;
    int rc = a->db != NULL ? store_evaluation_get(a->db, m->id, &e) : STORE_NOTFOUND;

    if (m->best_val_acc >= 0)
        cJSON_AddNumberToObject(acc, "best_val", m->best_val_acc);
    else
        cJSON_AddNullToObject(acc, "best_val");
    if (rc == 0) {
        cJSON_AddNumberToObject(acc, "test", e.accuracy);
        cJSON_AddStringToObject(acc, "evaluated_on", e.split);
        cJSON_AddNumberToObject(acc, "evaluated_iteration", (double)e.iteration);
        cJSON_AddBoolToObject(acc, "evaluation_current", e.iteration >= m->iteration);
        store_evaluation_clear(&e);
    } else {
        cJSON_AddNullToObject(acc, "test");
        cJSON_AddNullToObject(acc, "evaluated_on");
        cJSON_AddNullToObject(acc, "evaluated_iteration");
        cJSON_AddBoolToObject(acc, "evaluation_current", 0);
    }
}

/* The document of model m, whose job row is j (may be NULL). */
static cJSON *model_doc(app *a, const model_meta *m, const store_job *j)
{
    cJSON *doc = cJSON_CreateObject();
    cJSON *in, *shape, *mean, *classes, *ck, *links, *fe;
    int epochs[256], ne;
    char buf[96];

    cJSON_AddNumberToObject(doc, "id", (double)m->id);
    if (j != NULL) {
        job_state live;
        job_progress p;
        int hp;
        const char *status = a->jobs != NULL && jobs_live(a->jobs, m->id, &live, &p, &hp)
                                 ? job_state_name(live) : j->status;
        cJSON_AddStringToObject(doc, "name", j->name);
        cJSON_AddStringToObject(doc, "job_status", status);
        cJSON_AddStringToObject(doc, "device", j->device);
        add_time(doc, "created_at", j->created_at);
        add_time(doc, "finished_at", j->finished_at);
    }
    cJSON_AddStringToObject(doc, "dataset", m->dataset);
    in = cJSON_AddObjectToObject(doc, "input");
    shape = cJSON_AddArrayToObject(in, "shape");
    cJSON_AddItemToArray(shape, cJSON_CreateNumber(m->c));
    cJSON_AddItemToArray(shape, cJSON_CreateNumber(m->h));
    cJSON_AddItemToArray(shape, cJSON_CreateNumber(m->w));
    mean = cJSON_AddArrayToObject(in, "mean");
    for (int i = 0; i < m->c; i++)
        cJSON_AddItemToArray(mean, cJSON_CreateNumber(m->mean[i]));
    cJSON_AddNumberToObject(doc, "num_classes", m->num_classes);
    classes = cJSON_AddArrayToObject(doc, "classes");
    for (int i = 0; i < m->num_classes; i++)
        cJSON_AddItemToArray(classes, cJSON_CreateString(m->class_names[i]));
    ck = cJSON_AddObjectToObject(doc, "checkpoint");
    cJSON_AddNumberToObject(ck, "iteration", (double)m->iteration);
    cJSON_AddNumberToObject(ck, "epoch", m->epoch);
    cJSON_AddNumberToObject(ck, "size_bytes", (double)m->file_size);
    add_time(ck, "written_at", m->mtime);
    cJSON_AddStringToObject(ck, "weights", "best_validation");
    add_accuracy(a, doc, m);
    fe = cJSON_AddArrayToObject(doc, "filter_epochs");
    ne = models_filter_epochs(a, m->id, epochs, (int)(sizeof epochs / sizeof epochs[0]));
    if (ne > (int)(sizeof epochs / sizeof epochs[0]))
        ne = (int)(sizeof epochs / sizeof epochs[0]);
    for (int i = 0; i < ne; i++)
        cJSON_AddItemToArray(fe, cJSON_CreateNumber(epochs[i]));
    links = cJSON_AddObjectToObject(doc, "links");
    snprintf(buf, sizeof buf, "/v1/models/%ld/classify", m->id);
    cJSON_AddStringToObject(links, "classify", buf);
    snprintf(buf, sizeof buf, "/v1/models/%ld/evaluation", m->id);
    cJSON_AddStringToObject(links, "evaluation", buf);
    snprintf(buf, sizeof buf, "/v1/models/%ld/checkpoint", m->id);
    cJSON_AddStringToObject(links, "checkpoint", buf);
    snprintf(buf, sizeof buf, "/v1/jobs/%ld/filters.png", m->id);
    cJSON_AddStringToObject(links, "filters", buf);
    snprintf(buf, sizeof buf, "/v2/models/%ld", m->id);
    cJSON_AddStringToObject(links, "kserve", buf);
    return doc;
}

/* Sets rep from a models_get failure. */
static void reply_models_error(http_reply *rep, models_rc rc, const char *err)
{
    http_reply_error(rep, api_models_err(rc), NULL, "%s", err);
}

/* ---- GET /v1/models ---- */

void api_models_list(const http_req *req, http_reply *rep)
{
    app *a = req->app;
    api_page l;
    cJSON *doc, *arr;
    int rc;

    if (need_serving(req, rep) != 0 || api_page_start(req, rep, &l) != 0)
        return;
    rc = store_model_list(a->db, l.after, l.limit + 1, api_page_row, &l);
    doc = cJSON_CreateObject();
    arr = cJSON_AddArrayToObject(doc, "models");
    for (int i = 0; i < l.n && rc == 0; i++) {
        const model_meta *m;
        char err[512];
        /* Outside the store's lock: models_get reads the job's row. */
        models_rc mr = models_get(a->models, l.rows[i].id, &m, err, sizeof err);
        if (mr == MODELS_OK) {
            cJSON_AddItemToArray(arr, model_doc(a, m, &l.rows[i]));
            models_put(a->models, m);
        } else if (mr == MODELS_ERROR) {
            /* Listed, so that a broken file is visible rather than gone. */
            cJSON *o = cJSON_CreateObject();
            cJSON_AddNumberToObject(o, "id", (double)l.rows[i].id);
            cJSON_AddStringToObject(o, "name", l.rows[i].name);
            cJSON_AddStringToObject(o, "job_status", l.rows[i].status);
            cJSON_AddStringToObject(o, "error", err);
            cJSON_AddItemToArray(arr, o);
        }
    }
    api_page_finish(rep, doc, &l, rc);
}

/* ---- GET /v1/models/{id} ---- */

void api_models_get(const http_req *req, http_reply *rep)
{
    app *a = req->app;
    const model_meta *m;
    store_job j;
    char err[512];
    models_rc mr;
    long id;

    if (need_serving(req, rep) != 0 || api_model_id(req, rep, "id", &id) != 0)
        return;
    mr = models_get(a->models, id, &m, err, sizeof err);
    if (mr != MODELS_OK) {
        reply_models_error(rep, mr, err);
        return;
    }
    if (store_job_get(a->db, id, &j) == 0) {
        http_reply_json(rep, 200, model_doc(a, m, &j));
        store_job_clear(&j);
    } else {
        http_reply_json(rep, 200, model_doc(a, m, NULL));
    }
    models_put(a->models, m);
}

/* ---- GET /v1/models/{id}/checkpoint ---- */

void api_models_checkpoint(const http_req *req, http_reply *rep)
{
    app *a = req->app;
    const model_meta *m;
    struct stat st;
    char err[512];
    models_rc mr;
    long id, iteration;
    int fd;

    if (need_serving(req, rep) != 0 || api_model_id(req, rep, "id", &id) != 0)
        return;
    mr = models_get(a->models, id, &m, err, sizeof err);
    if (mr != MODELS_OK) {
        reply_models_error(rep, mr, err);
        return;
    }
    /* The open file is what is sent, even if a training job renames a
     * newer checkpoint over the name meanwhile. */
    fd = open(m->path, O_RDONLY | O_CLOEXEC);
    iteration = m->iteration;
    models_put(a->models, m);
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        if (fd >= 0)
            close(fd);
        http_reply_error(rep, HTTP_ERR_NOT_FOUND, NULL, "model %ld's checkpoint is gone", id);
        return;
    }
    http_reply_file(rep, 200, "application/octet-stream", fd, (unsigned long long)st.st_size);
    http_reply_header(rep, "Content-Disposition",
                      "attachment; filename=\"convnetd-model-%ld-iter%ld.ckpt\"", id, iteration);
    rep->no_cache = 1;
}

/* ---- POST /v1/models/{id}/classify ---- */

/* The media type of a Content-Type value, lower-cased, without
 * parameters, into out. */
static void media_type(const char *ct, char *out, size_t len)
{
    size_t n = 0;
    if (ct == NULL) {
        out[0] = '\0';
        return;
    }
    while (*ct == ' ' || *ct == '\t')
        ct++;
    while (*ct != '\0' && *ct != ';' && *ct != ' ' && *ct != '\t' && n + 1 < len) {
        char c = *ct++;
        out[n++] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    }
    out[n] = '\0';
}

/* What a classify request carries once its envelope is removed. */
typedef struct upload {
    const unsigned char *data;
    size_t len;
    unsigned char *owned;     /* decoded base64, freed by upload_clear */
    long top_k;               /* 0: not given in the body */
} upload;

static void upload_clear(upload *u)
{
    free(u->owned);
    memset(u, 0, sizeof *u);
}

/* Parses a top_k given as text ("3"). 0 or -1. */
static int parse_top_k(const char *s, size_t n, long *out)
{
    char buf[24];
    while (n > 0 && (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')) {
        s++;
        n--;
    }
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' ||
                     s[n - 1] == '\n'))
        n--;
    if (n == 0 || n >= sizeof buf)
        return -1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    return parse_long(buf, 1, TOP_K_MAX, out);
}

/* {"image_base64": "...", "top_k": 3}. 0, or -1 with a reply. */
static int upload_json(const http_req *req, http_reply *rep, upload *u)
{
    const char *end = NULL, *b64;
    size_t blen, cap;
    cJSON *doc = json_parse_strict(req->body, req->body_len, &end);
    const cJSON *img, *tk;
    int rc = -1;

    if (!cJSON_IsObject(doc)) {
        http_reply_error(rep, HTTP_ERR_INVALID_JSON, NULL,
                         "request body is not a JSON object {\"image_base64\": ...}");
        goto out;
    }
    for (const cJSON *f = doc->child; f != NULL; f = f->next) {
        if (strcmp(f->string, "image_base64") != 0 && strcmp(f->string, "top_k") != 0) {
            http_reply_error(rep, HTTP_ERR_INVALID_ARGUMENT, f->string,
                             "%.64s: unknown field (image_base64, top_k)", f->string);
            goto out;
        }
    }
    img = cJSON_GetObjectItemCaseSensitive(doc, "image_base64");
    tk = cJSON_GetObjectItemCaseSensitive(doc, "top_k");
    if (!cJSON_IsString(img)) {
        http_reply_error(rep, HTTP_ERR_INVALID_ARGUMENT, "image_base64",
                         "image_base64: required, a string of base64 (a data: URL is fine)");
        goto out;
    }
    if (tk != NULL) {
        if (!cJSON_IsNumber(tk) || tk->valuedouble != floor(tk->valuedouble) ||
            tk->valuedouble < 1 || tk->valuedouble > TOP_K_MAX) {
            http_reply_error(rep, HTTP_ERR_INVALID_ARGUMENT, "top_k",
                             "top_k: must be an integer in 1..%d", TOP_K_MAX);
            goto out;
        }
        u->top_k = (long)tk->valuedouble;
    }
    b64 = img->valuestring;
    blen = strlen(b64);
    /* A data: URL as FileReader.readAsDataURL makes it. */
    if (strncmp(b64, "data:", 5) == 0) {
        const char *comma = strchr(b64, ',');
        if (comma == NULL || comma - b64 < 12 || strncmp(comma - 7, ";base64", 7) != 0) {
            http_reply_error(rep, HTTP_ERR_INVALID_ARGUMENT, "image_base64",
                             "image_base64: a data: URL must be base64 (data:...;base64,...)");
            goto out;
        }
        blen -= (size_t)(comma + 1 - b64);
        b64 = comma + 1;
    }
    cap = blen / 4 * 3 + 3;
    u->owned = xmalloc(cap);
    if (b64_decode(u->owned, cap, &u->len, b64, blen) != 0) {
        http_reply_error(rep, HTTP_ERR_INVALID_ARGUMENT, "image_base64",
                         "image_base64: not valid base64");
        goto out;
    }
    u->data = u->owned;
    rc = 0;
out:
    cJSON_Delete(doc);
    return rc;
}

/* A browser form: the first file part is the image; a "top_k" field may
 * come along. 0, or -1 with a reply. */
static int upload_multipart(const http_req *req, http_reply *rep, const char *ct, upload *u)
{
    mp_part parts[MP_MAX_PARTS];
    char err[256];
    int n = 0;
    const mp_part *file = NULL;

    if (mp_parse(ct, (const uint8_t *)req->body, req->body_len, parts, MP_MAX_PARTS, &n, err,
                 sizeof err) != 0) {
        http_reply_error(rep, HTTP_ERR_INVALID_ARGUMENT, NULL, "%s", err);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        if (parts[i].has_filename && file == NULL)
            file = &parts[i];
        else if (!parts[i].has_filename && strcmp(parts[i].name, "top_k") == 0 &&
                 parse_top_k((const char *)parts[i].data, parts[i].len, &u->top_k) != 0) {
            http_reply_error(rep, HTTP_ERR_INVALID_ARGUMENT, "top_k",
                             "top_k: must be an integer in 1..%d", TOP_K_MAX);
            return -1;
        }
    }
    if (file == NULL) {
        http_reply_error(rep, HTTP_ERR_INVALID_ARGUMENT, "image",
                         "the form has no file part: send the image as a file field "
                         "(curl -F image=@file.png)");
        return -1;
    }
    u->data = file->data;
    u->len = file->len;
    return 0;
}

/* Finds the image in the request by its Content-Type. 0, or -1 with a
 * reply. */
static int read_upload(const http_req *req, http_reply *rep, upload *u)
{
    const char *ct = http_req_header(req, "Content-Type");
    char mt[64];

    media_type(ct, mt, sizeof mt);
    if (strcmp(mt, "application/json") == 0)
        return upload_json(req, rep, u);
    if (strcmp(mt, "multipart/form-data") == 0)
        return upload_multipart(req, rep, ct, u);
    if (mt[0] == '\0' || strcmp(mt, "image/png") == 0 || strcmp(mt, "image/jpeg") == 0 ||
        strcmp(mt, "image/jpg") == 0 || strcmp(mt, "image/pjpeg") == 0 ||
        strcmp(mt, "application/octet-stream") == 0 ||
        /* curl --data-binary's default type; taken only when the bytes are
         * an image, so a real form post gets a clear 415. */
        (strcmp(mt, "application/x-www-form-urlencoded") == 0 &&
         image_detect(req->body, req->body_len) != IMAGE_FMT_UNKNOWN)) {
        u->data = (const unsigned char *)req->body;
        u->len = req->body_len;
        return 0;
    }
    http_reply_error(rep, HTTP_ERR_UNSUPPORTED_MEDIA, NULL,
                     "Content-Type %.64s is not supported: send the image as image/png or "
                     "image/jpeg, as multipart/form-data, or as application/json "
                     "{\"image_base64\":...}", ct != NULL ? ct : "(none)");
    return -1;
}

static void reply_image_error(http_reply *rep, image_status st, const char *msg)
{
    switch (st) {
    case IMAGE_ERR_UNSUPPORTED:
        http_reply_error(rep, HTTP_ERR_UNSUPPORTED_MEDIA, "image", "%s", msg);
        break;
    case IMAGE_ERR_TOO_LARGE:
        http_reply_error(rep, HTTP_ERR_PAYLOAD_TOO_LARGE, "image", "%s", msg);
        break;
    case IMAGE_ERR_NOMEM:
        http_reply_error(rep, HTTP_ERR_UNAVAILABLE, "image", "%s", msg);
        break;
    case IMAGE_ERR_IO:
        http_reply_error(rep, HTTP_ERR_INTERNAL, "image", "%s", msg);
        break;
    default:
        http_reply_error(rep, HTTP_ERR_INVALID_ARGUMENT, "image", "%s", msg);
        break;
    }
}

/* Decodes the upload and makes the model's normalised input x (c*h*w).
 * 0, or -1 with a reply. *img_w etc. describe the upload. */
static int prepare_input(serve *sv, const model_meta *m, const upload *u, nn_real *x,
                         uint64_t max_pixels, http_reply *rep, int *img_w, int *img_h,
                         int *img_c)
{
    char msg[256];
    image_header hdr;
    image img = { 0 };
    unsigned long long pixels;
    uint8_t *chw;
    image_status st;

    if (u->len == 0) {
        http_reply_error(rep, HTTP_ERR_INVALID_ARGUMENT, "image", "the image is empty");
        return -1;
    }
    if (m->c != 1 && m->c != 3) {
        http_reply_error(rep, HTTP_ERR_CONFLICT, NULL, "model %ld takes %d-channel input; "
                         "images convert to 1 or 3 channels (use /v2 with tensors)", m->id,
                         m->c);
        return -1;
    }
    /* The header first: its size decides the admission below. */
    st = image_probe(&hdr, u->data, u->len, msg, sizeof msg);
    if (st != IMAGE_OK) {
        reply_image_error(rep, st, msg);
        return -1;
    }
    pixels = (unsigned long long)hdr.w * (unsigned long long)hdr.h;
    if (pixels > max_pixels || hdr.w > IMAGE_MAX_SIDE || hdr.h > IMAGE_MAX_SIDE) {
        snprintf(msg, sizeof msg, "the image is %dx%d pixels; at most %d a side and %llu "
                 "in all", hdr.w, hdr.h, IMAGE_MAX_SIDE, (unsigned long long)max_pixels);
        reply_image_error(rep, IMAGE_ERR_TOO_LARGE, msg);
        return -1;
    }
    if (serve_decode_enter(sv, pixels, DECODE_WAIT_MS) != 0) {
        http_reply_error(rep, HTTP_ERR_UNAVAILABLE, NULL,
                         "too many large images are being decoded; try again");
        return -1;
    }
    st = image_decode(&img, u->data, u->len, max_pixels, msg, sizeof msg);
    if (st != IMAGE_OK) {
        serve_decode_leave(sv, pixels);
        reply_image_error(rep, st, msg);
        return -1;
    }
    chw = xmalloc((size_t)m->c * (size_t)m->h * (size_t)m->w);
    st = image_to_input(chw, m->c, m->h, m->w, &img, msg, sizeof msg);
    *img_w = img.w;
    *img_h = img.h;
    *img_c = img.c;
    image_free(&img);
    serve_decode_leave(sv, pixels);
    if (st != IMAGE_OK) {
        free(chw);
        reply_image_error(rep, st, msg);
        return -1;
    }
    image_normalize(x, chw, m->c, m->h, m->w, m->mean);
    free(chw);
    return 0;
}

typedef struct ranked {
    int index;
    float p;
} ranked;

static int by_probability(const void *a, const void *b)
{
    const ranked *x = a, *y = b;
    if (x->p != y->p)
        return x->p < y->p ? 1 : -1;
    return x->index - y->index;
}

void api_models_classify(const http_req *req, http_reply *rep)
{
    app *a = req->app;
    const model_meta *m = NULL;
    upload u = { 0 };
    nn_real *x = NULL;
    float *scores = NULL, *probs = NULL;
    ranked *rk = NULL;
    char err[512];
    long id, top_k = 0;
    int iw = 0, ih = 0, ic = 0, k;
    models_rc mr;
    serve_rc sr;
    cJSON *doc, *preds, *im;

    if (need_serving(req, rep) != 0 || api_model_id(req, rep, "id", &id) != 0 ||
        api_query_long(req, rep, "top_k", 1, TOP_K_MAX, &top_k) != 0)
        return;
    if (read_upload(req, rep, &u) != 0)
        goto out;
    if (u.top_k > 0)
        top_k = u.top_k;
    if (top_k == 0)
        top_k = TOP_K_DEFAULT;
    mr = models_get(a->models, id, &m, err, sizeof err);
    if (mr != MODELS_OK) {
        reply_models_error(rep, mr, err);
        goto out;
    }
    x = xmalloc((size_t)m->c * (size_t)m->h * (size_t)m->w * sizeof *x);
    /* The max-image-pixels setting; it cannot exceed the decoder's own
     * ceiling (the config table's bound). Unit tests run without settings. */
    if (prepare_input(a->serve, m, &u, x,
                      a->cfg != NULL ? (uint64_t)a->cfg->max_image_pixels
                                     : IMAGE_DEFAULT_MAX_PIXELS,
                      rep, &iw, &ih, &ic) != 0)
        goto out;
    k = m->num_classes;
    scores = xmalloc((size_t)k * sizeof *scores);
    sr = serve_infer(a->serve, m, x, 1, scores, SERVE_TIMEOUT_MS, err, sizeof err);
    if (sr != SERVE_OK) {
        http_reply_error(rep, api_serve_err(sr), NULL, "%s", err);
        if (sr == SERVE_FULL || sr == SERVE_TIMEOUT)
            http_reply_header(rep, "Retry-After", "1");
        goto out;
    }
    probs = xmalloc((size_t)k * sizeof *probs);
    serve_softmax(probs, scores, k);
    rk = xmalloc((size_t)k * sizeof *rk);
    for (int i = 0; i < k; i++)
        rk[i] = (ranked){ .index = i, .p = probs[i] };
    qsort(rk, (size_t)k, sizeof *rk, by_probability);
    if (top_k > k)
        top_k = k;

    doc = cJSON_CreateObject();
    cJSON_AddNumberToObject(doc, "model_id", (double)id);
    cJSON_AddNumberToObject(doc, "iteration", (double)m->iteration);
    im = cJSON_AddObjectToObject(doc, "image");
    cJSON_AddNumberToObject(im, "width", iw);
    cJSON_AddNumberToObject(im, "height", ih);
    cJSON_AddNumberToObject(im, "channels", ic);
    preds = cJSON_AddArrayToObject(doc, "predictions");
    for (long i = 0; i < top_k; i++) {
        cJSON *p = cJSON_CreateObject();
        cJSON_AddStringToObject(p, "class", m->class_names[rk[i].index]);
        cJSON_AddNumberToObject(p, "index", rk[i].index);
        cJSON_AddNumberToObject(p, "probability", rk[i].p);
        cJSON_AddItemToArray(preds, p);
    }
    http_reply_json(rep, 200, doc);
out:
    models_put(a->models, m);
    upload_clear(&u);
    free(x);
    free(scores);
    free(probs);
    free(rk);
}

/* ---- GET /v1/models/{id}/evaluation ---- */

/* The stored evaluation e as the API document. */
static cJSON *evaluation_doc(const store_evaluation *e)
{
    cJSON *doc = cJSON_CreateObject();
    cJSON *res = e->result != NULL ? cJSON_Parse(e->result) : NULL;
    static const char *const keys[] = { "class_names", "per_class_accuracy",
                                        "confusion_matrix" };

    cJSON_AddNumberToObject(doc, "model_id", (double)e->job_id);
    cJSON_AddStringToObject(doc, "status", "done");
    cJSON_AddNumberToObject(doc, "iteration", (double)e->iteration);
    cJSON_AddNumberToObject(doc, "epoch", e->epoch);
    cJSON_AddStringToObject(doc, "split", e->split);
    cJSON_AddNumberToObject(doc, "num_samples", (double)e->num_samples);
    cJSON_AddNumberToObject(doc, "correct", (double)e->correct);
    cJSON_AddNumberToObject(doc, "accuracy", e->accuracy);
    if (strcmp(e->split, "test") == 0)
        cJSON_AddNumberToObject(doc, "test_accuracy", e->accuracy);
    else
        cJSON_AddNullToObject(doc, "test_accuracy");
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        cJSON *v = cJSON_DetachItemFromObjectCaseSensitive(res, keys[i]);
        cJSON_AddItemToObject(doc, keys[i], v != NULL ? v : cJSON_CreateArray());
    }
    cJSON_AddNumberToObject(doc, "duration_s", e->duration_s);
    add_time(doc, "evaluated_at", e->created_at);
    cJSON_Delete(res);
    return doc;
}

/* Answers with the stored evaluation when it covers iteration. 1 when it
 * answered (200 or 500), 0 when there is none that recent. */
static int reply_stored(app *a, long id, long iteration, http_reply *rep)
{
    store_evaluation e;
    int rc = store_evaluation_get(a->db, id, &e);
    if (rc == STORE_NOTFOUND)
        return 0;
    if (rc != 0) {
        http_reply_error(rep, HTTP_ERR_INTERNAL, NULL, "the store failed; see the log");
        return 1;
    }
    if (e.iteration < iteration) {
        store_evaluation_clear(&e);
        return 0;
    }
    http_reply_json(rep, 200, evaluation_doc(&e));
    store_evaluation_clear(&e);
    return 1;
}

void api_models_evaluation(const http_req *req, http_reply *rep)
{
    app *a = req->app;
    const model_meta *m;
    serve_eval_status st;
    char err[512], path[MODELS_PATH_MAX];
    long id, wait_s = EVAL_WAIT_DEFAULT_S, iteration;
    int device;
    models_rc mr;
    serve_rc sr;
    cJSON *doc, *prog;

    if (need_serving(req, rep) != 0 || api_model_id(req, rep, "id", &id) != 0 ||
        api_query_long(req, rep, "wait", 0, EVAL_WAIT_MAX_S, &wait_s) != 0)
        return;
    mr = models_get(a->models, id, &m, err, sizeof err);
    if (mr != MODELS_OK) {
        reply_models_error(rep, mr, err);
        return;
    }
    iteration = m->iteration;
    device = m->device;
    snprintf(path, sizeof path, "%s", m->path);
    models_put(a->models, m);
    if (reply_stored(a, id, iteration, rep))
        return;
    sr = serve_evaluate(a->serve, device, id, path, &st);
    if (sr != SERVE_OK) {
        http_reply_error(rep, HTTP_ERR_UNAVAILABLE, NULL, "%s",
                         sr == SERVE_FULL ? "too many evaluations are waiting; try again"
                                          : "the daemon is stopping");
        http_reply_header(rep, "Retry-After", "5");
        return;
    }
    if (st.state != SERVE_EVAL_FAILED && wait_s > 0)
        serve_eval_wait(a->serve, id, (int)wait_s * 1000, &st);
    if (st.state == SERVE_EVAL_FAILED) {
        http_reply_error(rep, HTTP_ERR_CONFLICT, NULL, "cannot evaluate model %ld: %s", id,
                         st.error);
        return;
    }
    if (st.state == SERVE_EVAL_NONE && reply_stored(a, id, iteration, rep))
        return;
    if (st.state == SERVE_EVAL_NONE) {
        /* Done, but for an older file than the one now in place (a job
         * wrote a newer checkpoint meanwhile): the next call computes it. */
        serve_evaluate(a->serve, device, id, path, &st);
    }
    doc = cJSON_CreateObject();
    cJSON_AddNumberToObject(doc, "model_id", (double)id);
    cJSON_AddStringToObject(doc, "status", st.state == SERVE_EVAL_RUNNING ? "running"
                                                                          : "queued");
    cJSON_AddNumberToObject(doc, "iteration", (double)iteration);
    prog = cJSON_AddObjectToObject(doc, "progress");
    cJSON_AddNumberToObject(prog, "done", (double)st.done);
    cJSON_AddNumberToObject(prog, "total", (double)st.total);
    http_reply_json(rep, 202, doc);
    http_reply_header(rep, "Retry-After", "1");
}

/* ---- GET /v1/jobs/{id}/filters.png ---- */

/* 1 when the If-None-Match header lists etag (or is "*"). */
static int etag_matches(const char *inm, const char *etag)
{
    size_t n = strlen(etag);
    if (inm == NULL)
        return 0;
    for (const char *p = inm; *p != '\0';) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (*p == '*')
            return 1;
        if (strncmp(p, "W/", 2) == 0)
            p += 2;   /* weak comparison, as RFC 9110 asks for If-None-Match */
        if (strncmp(p, etag, n) == 0 && (p[n] == '\0' || p[n] == ',' || p[n] == ' '))
            return 1;
        while (*p != '\0' && *p != ',')
            p++;
    }
    return 0;
}

int api_etag_matches(const http_req *req, const char *etag)
{
    return etag_matches(http_req_header(req, "If-None-Match"), etag);
}

void api_jobs_filters(const http_req *req, http_reply *rep)
{
    app *a = req->app;
    char err[512], etag[FILTERS_ETAG_LEN];
    uint8_t *png = NULL;
    size_t len = 0;
    long id, epoch = -1, at_it = 0;
    int w = 0, h = 0, at_ep = 0;
    models_rc mr;

    if (need_serving(req, rep) != 0 || api_job_id(req, rep, &id) != 0 ||
        api_query_long(req, rep, "epoch", 0, 1000000, &epoch) != 0)
        return;
    mr = models_filters(a->models, id, (int)epoch, &png, &len, etag, &w, &h, &at_ep, &at_it,
                        err, sizeof err);
    if (mr != MODELS_OK) {
        reply_models_error(rep, mr, err);
        return;
    }
    if (api_etag_matches(req, etag)) {
        http_reply_text(rep, 304, NULL, "", 0);
    } else {
        http_reply_text(rep, 200, "image/png", (const char *)png, len);
    }
    free(png);
    http_reply_header(rep, "ETag", "%s", etag);
    http_reply_header(rep, "X-Filters-Epoch", "%d", at_ep);
    http_reply_header(rep, "X-Filters-Iteration", "%ld", at_it);
    /* Revalidate every time: the picture changes while the job trains. */
    rep->no_cache = 1;
}
