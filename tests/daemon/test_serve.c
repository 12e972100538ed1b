/* test_serve.c: serving trained models end to end on the real binary
 * (argv[1]) over loopback, with a synthetic IDX data set (train and test
 * parts) and an image-folder data set made of PNGs written here:
 *  - models list/get, the checkpoint download (the bytes load with
 *    nn_ckpt_read_mem), 404s;
 *  - classify with a raw PNG, a JPEG, a multipart form, JSON base64, top_k
 *    in the query and in the body; bad images and bodies (empty,
 *    truncated, huge dimensions, GIF, wrong Content-Type, bad base64, bad
 *    forms) get 4xx JSON and the daemon keeps serving;
 *  - KServe v2: health, server and model metadata, infer with FP32 and
 *    UINT8 for N = 3 matching classify's probabilities, protocol errors;
 *  - evaluation: the confusion matrix sums to the test set's size and
 *    accuracy = trace / total, on the IDX test part and on an image
 *    folder's test/ folder;
 *  - filters.png: PNG of the size filters_layout says, ETag and 304,
 *    per-epoch snapshots;
 *  - while a job trains on the same device: classify answers within a
 *    bound and training keeps going; the training job's own model is served
 *    from its latest checkpoint and reloaded when a newer one appears;
 *    concurrent requests from several threads are batched (Prometheus
 *    counters: fewer forward passes than requests). */
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include <jpeglib.h>   /* after stdio.h: it uses FILE and size_t */

#include <nn/checkpoint.h>

#include "check.h"
#include "daemon_proc.h"
#include "http_client.h"
#include "pngenc.h"

#define H 16
#define W 16
#define K 4
#define DS "\"dataset\":{\"name\":\"synth\",\"val_fraction\":0.2,\"limit\":600}"
#define MODEL "\"model\":{\"preset\":\"three_layer_convnet\",\"num_filters\":4,\"hidden_dim\":16," \
              "\"weight_scale\":0.01}"

/* 480 training images, batch 32: 15 iterations an epoch. */
static const char small_job[] =
    "{\"name\":\"small\"," DS "," MODEL ",\"solver\":{\"epochs\":2,\"batch_size\":32,"
    "\"learning_rate\":0.01},\"device\":\"" TEST_DEVICE "\"}";
static const char long_job[] =
    "{\"name\":\"long\"," DS "," MODEL ",\"solver\":{\"epochs\":2000,\"batch_size\":32,"
    "\"learning_rate\":0.01},\"device\":\"" TEST_DEVICE "\"}";
static const char folder_job[] =
    "{\"name\":\"folder\",\"dataset\":{\"name\":\"shapes\",\"val_fraction\":0.25},"
    "\"model\":{\"preset\":\"three_layer_convnet\",\"num_filters\":2,\"hidden_dim\":8},"
    "\"solver\":{\"epochs\":1,\"batch_size\":8},\"device\":\"" TEST_DEVICE "\"}";

static unsigned port;

/* ---- helpers ---- */

typedef struct buf {
    unsigned char *p;
    size_t n;
} buf;

/* A PNG of a synthetic sample of class label. */
static buf sample_png(int label, uint32_t seed, unsigned char *px_out)
{
    unsigned char px[H * W];
    uint32_t x = seed;
    buf b = { 0 };
    char err[128];

    tj_synth_image(px, H, W, K, label, &x);
    if (px_out != NULL)
        memcpy(px_out, px, sizeof px);
    if (pngenc_gray(&b.p, &b.n, px, W, H, err, sizeof err) != 0)
        fprintf(stderr, "pngenc: %s\n", err);
    return b;
}

/* The same sample as a grey JPEG (quality 95). */
static buf sample_jpeg(int label, uint32_t seed)
{
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr e;
    unsigned char px[H * W], *out = NULL;
    unsigned long len = 0;
    uint32_t x = seed;
    buf b;

    tj_synth_image(px, H, W, K, label, &x);
    c.err = jpeg_std_error(&e);
    jpeg_create_compress(&c);
    jpeg_mem_dest(&c, &out, &len);
    c.image_width = W;
    c.image_height = H;
    c.input_components = 1;
    c.in_color_space = JCS_GRAYSCALE;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 95, TRUE);
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = px + c.next_scanline * W;
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    b.p = malloc(len);
    memcpy(b.p, out, len);
    b.n = len;
    free(out);
    return b;
}

static char *base64(const unsigned char *p, size_t n)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = malloc(n / 3 * 4 + 8), *o = out;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) |
                     (i + 2 < n ? p[i + 2] : 0);
        *o++ = abc[v >> 18 & 63];
        *o++ = abc[v >> 12 & 63];
        *o++ = i + 1 < n ? abc[v >> 6 & 63] : '=';
        *o++ = i + 2 < n ? abc[v & 63] : '=';
    }
    *o = '\0';
    return out;
}

/* POSTs body with Content-Type ct (NULL: none) to path; status, *doc. */
static int post(const char *path, const char *ct, const void *body, size_t len, cJSON **doc)
{
    char hdr[256];
    hc_reply r;
    int st;

    if (doc != NULL)
        *doc = NULL;
    if (ct != NULL)
        snprintf(hdr, sizeof hdr, "Content-Type: %s\r\n", ct);
    if (hc_request(port, "POST", path, ct != NULL ? hdr : NULL, body, len, &r) != 0)
        return 0;
    st = r.status;
    if (doc != NULL)
        *doc = cJSON_Parse(r.body);
    hc_free(&r);
    return st;
}

static int classify(long model, const char *query, const char *ct, const void *body,
                    size_t len, cJSON **doc)
{
    char path[128];
    snprintf(path, sizeof path, "/v1/models/%ld/classify%s", model, query ? query : "");
    return post(path, ct, body, len, doc);
}

/* The top class of a classify answer, or -1. */
static int top_class(const cJSON *doc)
{
    const cJSON *p = cJSON_GetArrayItem(tj_get(doc, "predictions"), 0);
    return p != NULL ? (int)tj_num(p, "index") : -1;
}

/* Checks the answer's shape: n predictions, sorted, probabilities sane. */
static void check_predictions(const cJSON *doc, int n, const char *what)
{
    const cJSON *preds = tj_get(doc, "predictions");
    double last = 2, sum = 0;
    CHECKF(cJSON_GetArraySize(preds) == n, "%s: %d predictions, want %d", what,
           cJSON_GetArraySize(preds), n);
    for (const cJSON *p = preds != NULL ? preds->child : NULL; p != NULL; p = p->next) {
        double pr = tj_num(p, "probability");
        CHECKF(pr >= 0 && pr <= 1 && pr <= last, "%s: probability %g after %g", what, pr, last);
        CHECK(cJSON_IsString(tj_get(p, "class")) && cJSON_IsNumber(tj_get(p, "index")));
        last = pr;
        sum += pr;
    }
    CHECKF(sum <= 1.0001, "%s: probabilities sum to %g", what, sum);
}

/* doc is passed by address: the call that fills it is a sibling argument,
 * and argument evaluation order is unspecified. */
static void expect_error(int st, cJSON **docp, int want, const char *code, const char *what)
{
    cJSON *doc = *docp;
    CHECKF(st == want, "%s: status %d, want %d", what, st, want);
    CHECKF(strcmp(tj_str(doc, "error.code"), code) == 0, "%s: code '%s', want %s", what,
           tj_str(doc, "error.code"), code);
    CHECKF(tj_str(doc, "error.message")[0] != '\0', "%s: no message", what);
    cJSON_Delete(doc);
}

/* A Prometheus counter's value from /metrics, or -1. */
static double metric(const char *name)
{
    hc_reply r;
    double v = -1;
    char needle[128];
    const char *at;

    if (hc_request(port, "GET", "/metrics", NULL, NULL, 0, &r) != 0)
        return -1;
    snprintf(needle, sizeof needle, "\n%s ", name);
    at = strstr(r.body, needle);
    if (at != NULL)
        v = strtod(at + strlen(needle), NULL);
    hc_free(&r);
    return v;
}

static void wait_iteration_of_model(long id, long at_least, double timeout_s)
{
    char path[64];
    double deadline = tj_now() + timeout_s;
    snprintf(path, sizeof path, "/v1/models/%ld", id);
    while (tj_now() < deadline) {
        cJSON *doc;
        int st = tj_request(port, "GET", path, NULL, &doc);
        double it = tj_num(doc, "checkpoint.iteration");
        cJSON_Delete(doc);
        if (st == 200 && it >= (double)at_least)
            return;
        struct timespec ts = { .tv_nsec = 20000000 };
        nanosleep(&ts, NULL);
    }
    CHECKF(0, "model %ld: no checkpoint at iteration >= %ld in %.0f s", id, at_least, timeout_s);
}

/* ---- models, download ---- */

static void test_models(long id)
{
    cJSON *doc;
    hc_reply r;
    char path[96], hv[256];

    CHECK(tj_request(port, "GET", "/v1/models", NULL, &doc) == 200);
    {
        const cJSON *m = NULL;
        for (const cJSON *e = tj_get(doc, "models") ? tj_get(doc, "models")->child : NULL;
             e != NULL; e = e->next)
            if (tj_num(e, "id") == (double)id)
                m = e;
        CHECK(m != NULL);
        CHECK(strcmp(tj_str(m, "job_status"), "succeeded") == 0);
        CHECK(strcmp(tj_str(m, "dataset"), "synth") == 0);
        CHECK(tj_num(m, "num_classes") == K && cJSON_GetArraySize(tj_get(m, "classes")) == K);
        CHECK(cJSON_GetArraySize(tj_get(m, "input.shape")) == 3);
        CHECK(tj_num(m, "checkpoint.iteration") == 30 && tj_num(m, "checkpoint.epoch") == 2);
        CHECK(tj_num(m, "accuracy.best_val") > 0.5);
    }
    cJSON_Delete(doc);

    snprintf(path, sizeof path, "/v1/models/%ld", id);
    CHECK(tj_request(port, "GET", path, NULL, &doc) == 200);
    CHECK(tj_num(doc, "id") == (double)id && strcmp(tj_str(doc, "name"), "small") == 0);
    CHECK(cJSON_GetArrayItem(tj_get(doc, "input.shape"), 0)->valueint == 1);
    CHECK(cJSON_GetArrayItem(tj_get(doc, "input.shape"), 1)->valueint == H);
    CHECK(cJSON_GetArrayItem(tj_get(doc, "input.shape"), 2)->valueint == W);
    CHECK(cJSON_GetArraySize(tj_get(doc, "input.mean")) == 1);
    CHECK(strcmp(tj_str(doc, "checkpoint.weights"), "best_validation") == 0);
    CHECK(cJSON_GetArraySize(tj_get(doc, "filter_epochs")) == 3);   /* 0, 1, 2 */
    cJSON_Delete(doc);

    CHECK(tj_request(port, "GET", "/v1/models/999", NULL, &doc) == 404);
    CHECK(strcmp(tj_str(doc, "error.code"), "not_found") == 0);
    cJSON_Delete(doc);
    CHECK(tj_request(port, "GET", "/v1/models/abc", NULL, &doc) == 404);
    cJSON_Delete(doc);
    CHECK(tj_request(port, "GET", "/v1/models?limit=0", NULL, &doc) == 400);
    cJSON_Delete(doc);

    /* The download is the checkpoint, byte for byte a valid file. */
    snprintf(path, sizeof path, "/v1/models/%ld/checkpoint", id);
    if (hc_request(port, "GET", path, NULL, NULL, 0, &r) == 0) {
        char err[NN_ERRLEN], *meta = NULL;
        nn_ckpt_tensor *tt = NULL;
        int n = 0;
        CHECK(r.status == 200);
        CHECK(hc_header(&r, "Content-Type", hv, sizeof hv) &&
              strcmp(hv, "application/octet-stream") == 0);
        CHECKF(hc_header(&r, "Content-Disposition", hv, sizeof hv) &&
               strstr(hv, "attachment; filename=\"convnetd-model-") != NULL, "%s", hv);
        CHECKF(nn_ckpt_read_mem(r.body, r.body_len, "download", &meta, &tt, &n, err) == NN_OK,
               "%s", err);
        CHECK(n > 0 && meta != NULL && strstr(meta, "\"class_names\"") != NULL);
        CHECK(nn_ckpt_find(tt, n, "best/params") != NULL);
        nn_ckpt_free(meta, tt, n);
        hc_free(&r);
    } else {
        CHECK(!"checkpoint download");
    }
    CHECK(tj_request(port, "GET", "/v1/models/999/checkpoint", NULL, &doc) == 404);
    cJSON_Delete(doc);
}

/* ---- classify ---- */

static void test_classify(long id)
{
    cJSON *doc;
    int correct = 0;

    /* Raw PNG, each class. */
    for (int c = 0; c < K; c++) {
        buf png = sample_png(c, 1000 + (uint32_t)c, NULL);
        CHECK(classify(id, NULL, "image/png", png.p, png.n, &doc) == 200);
        check_predictions(doc, K, "png");     /* default top_k 5, capped at K */
        correct += top_class(doc) == c;
        CHECK(tj_num(doc, "image.width") == W && tj_num(doc, "image.channels") == 1);
        CHECK(tj_num(doc, "iteration") == 30);
        cJSON_Delete(doc);
        free(png.p);
    }
    CHECKF(correct == K, "%d of %d PNG samples classified right", correct, K);

    /* JPEG, with ?top_k. */
    correct = 0;
    for (int c = 0; c < K; c++) {
        buf jpg = sample_jpeg(c, 2000 + (uint32_t)c);
        CHECK(classify(id, "?top_k=2", "image/jpeg", jpg.p, jpg.n, &doc) == 200);
        check_predictions(doc, 2, "jpeg");
        correct += top_class(doc) == c;
        cJSON_Delete(doc);
        free(jpg.p);
    }
    CHECKF(correct == K, "%d of %d JPEG samples classified right", correct, K);

    /* curl --data-binary without -H: form-urlencoded, taken as the image. */
    {
        buf png = sample_png(2, 77, NULL);
        CHECK(classify(id, "?top_k=1", "application/x-www-form-urlencoded", png.p, png.n,
                       &doc) == 200);
        check_predictions(doc, 1, "form-urlencoded");
        CHECK(top_class(doc) == 2);
        cJSON_Delete(doc);
        free(png.p);
    }

    /* A browser form: a top_k field and the file. */
    {
        buf png = sample_png(1, 5, NULL);
        static const char pre[] =
            "--XyZ\r\nContent-Disposition: form-data; name=\"top_k\"\r\n\r\n3\r\n"
            "--XyZ\r\nContent-Disposition: form-data; name=\"image\"; filename=\"x.png\"\r\n"
            "Content-Type: image/png\r\n\r\n";
        static const char post_[] = "\r\n--XyZ--\r\n";
        size_t n = sizeof pre - 1 + png.n + sizeof post_ - 1;
        char *body = malloc(n);
        memcpy(body, pre, sizeof pre - 1);
        memcpy(body + sizeof pre - 1, png.p, png.n);
        memcpy(body + sizeof pre - 1 + png.n, post_, sizeof post_ - 1);
        CHECK(classify(id, NULL, "multipart/form-data; boundary=XyZ", body, n, &doc) == 200);
        check_predictions(doc, 3, "multipart");
        CHECK(top_class(doc) == 1);
        cJSON_Delete(doc);
        /* The query's top_k loses to the form's. */
        CHECK(classify(id, "?top_k=1", "multipart/form-data; boundary=XyZ", body, n, &doc) == 200);
        check_predictions(doc, 3, "multipart top_k");
        cJSON_Delete(doc);
        /* Truncated form: 400. */
        expect_error(classify(id, NULL, "multipart/form-data; boundary=XyZ", body, n - 12, &doc),
                     &doc, 400, "invalid_argument", "truncated form");
        /* A form without a file part. */
        expect_error(classify(id, NULL, "multipart/form-data; boundary=XyZ", body,
                              sizeof "--XyZ\r\nContent-Disposition: form-data; name=\"top_k\""
                                     "\r\n\r\n3\r\n" - 1, &doc),
                     &doc, 400, "invalid_argument", "form without file");
        free(body);
        free(png.p);
    }

    /* JSON base64, with a data: URL too, top_k in the body. */
    {
        buf png = sample_png(3, 9, NULL);
        char *b64 = base64(png.p, png.n);
        size_t n = strlen(b64) + 128;
        char *body = malloc(n);
        snprintf(body, n, "{\"image_base64\":\"%s\",\"top_k\":2}", b64);
        CHECK(classify(id, NULL, "application/json", body, strlen(body), &doc) == 200);
        check_predictions(doc, 2, "base64");
        CHECK(top_class(doc) == 3);
        cJSON_Delete(doc);
        snprintf(body, n, "{\"image_base64\":\"data:image/png;base64,%s\"}", b64);
        CHECK(classify(id, NULL, "application/json; charset=utf-8", body, strlen(body), &doc)
              == 200);
        CHECK(top_class(doc) == 3);
        cJSON_Delete(doc);
        snprintf(body, n, "{\"image_base64\":\"%s!\"}", b64);
        expect_error(classify(id, NULL, "application/json", body, strlen(body), &doc), &doc, 400,
                     "invalid_argument", "bad base64");
        snprintf(body, n, "{\"image_base64\":\"%s\",\"extra\":1}", b64);
        expect_error(classify(id, NULL, "application/json", body, strlen(body), &doc), &doc, 400,
                     "invalid_argument", "unknown field");
        snprintf(body, n, "{\"image_base64\":\"%s\",\"top_k\":0}", b64);
        expect_error(classify(id, NULL, "application/json", body, strlen(body), &doc), &doc, 400,
                     "invalid_argument", "top_k 0");
        expect_error(classify(id, NULL, "application/json", "{\"image", 7, &doc), &doc, 400,
                     "invalid_json", "bad json");
        free(body);
        free(b64);
        free(png.p);
    }
}

static void test_bad_images(long id)
{
    buf png = sample_png(0, 3, NULL);
    cJSON *doc;
    unsigned char huge[64];
    static const unsigned char gif[] = "GIF89a\x01\x00\x01\x00\x00\x00\x00;";

    expect_error(classify(id, NULL, "image/png", "", 0, &doc), &doc, 400, "invalid_argument",
                 "empty");
    expect_error(classify(id, NULL, "image/png", png.p, png.n / 2, &doc), &doc, 400,
                 "invalid_argument", "truncated");
    expect_error(classify(id, NULL, "image/png", "not an image at all", 19, &doc), &doc, 415,
                 "unsupported_media_type", "text as png");
    expect_error(classify(id, NULL, "image/png", gif, sizeof gif - 1, &doc), &doc, 415,
                 "unsupported_media_type", "gif");
    expect_error(classify(id, NULL, "text/plain", png.p, png.n, &doc), &doc, 415,
                 "unsupported_media_type", "text/plain");
    expect_error(classify(id, "?top_k=0", "image/png", png.p, png.n, &doc), &doc, 400,
                 "invalid_argument", "query top_k 0");
    expect_error(classify(999, NULL, "image/png", png.p, png.n, &doc), &doc, 404, "not_found",
                 "no such model");
    /* A PNG header claiming 100000 x 100000 pixels: refused from the header. */
    memcpy(huge, png.p, 33);
    huge[16] = 0, huge[17] = 0x01, huge[18] = 0x86, huge[19] = 0xa0;   /* width 100000 */
    huge[20] = 0, huge[21] = 0x01, huge[22] = 0x86, huge[23] = 0xa0;   /* height */
    expect_error(classify(id, NULL, "image/png", huge, 33, &doc), &doc, 413, "payload_too_large",
                 "huge");
    /* A body over the route's limit, declared: 413 before it is read. */
    {
        hc_reply r;
        static const char req[] = "POST /v1/models/1/classify HTTP/1.1\r\nHost: x\r\n"
                                  "Content-Type: image/png\r\nContent-Length: 999999999\r\n"
                                  "Connection: close\r\n\r\n";
        if (hc_raw(port, req, sizeof req - 1, &r) == 0) {
            CHECK(r.status == 413);
            hc_free(&r);
        }
    }
    /* Still serving. */
    CHECK(classify(id, "?top_k=1", "image/png", png.p, png.n, &doc) == 200);
    CHECK(top_class(doc) == 0);
    cJSON_Delete(doc);
    CHECK(tj_request(port, "GET", "/v1/health", NULL, NULL) == 200);
    free(png.p);
}

/* ---- KServe v2 ---- */

static char *infer_body(const char *dtype, const unsigned char px[3][H * W], double mean)
{
    size_t cap = 3 * H * W * 32 + 256, n = 0;
    char *b = malloc(cap);
    n += (size_t)snprintf(b + n, cap - n, "{\"id\":\"req-7\",\"inputs\":[{\"name\":\"input\","
                          "\"shape\":[3,1,%d,%d],\"datatype\":\"%s\",\"data\":[", H, W, dtype);
    for (int i = 0; i < 3; i++)
        for (int p = 0; p < H * W; p++) {
            if (dtype[0] == 'U')
                n += (size_t)snprintf(b + n, cap - n, "%s%d", i || p ? "," : "", px[i][p]);
            else
                n += (size_t)snprintf(b + n, cap - n, "%s%.9g", i || p ? "," : "",
                                      (double)(float)(px[i][p] / 255.0 - mean));
        }
    snprintf(b + n, cap - n, "]}],\"outputs\":[{\"name\":\"probabilities\"}]}");
    return b;
}

static void test_kserve(long id)
{
    char path[96];
    cJSON *doc, *meta;
    unsigned char px[3][H * W];
    double probs[3][K], mean;

    CHECK(tj_request(port, "GET", "/v2/health/live", NULL, &doc) == 200 &&
          cJSON_IsTrue(tj_get(doc, "live")));
    cJSON_Delete(doc);
    CHECK(tj_request(port, "GET", "/v2/health/ready", NULL, &doc) == 200 &&
          cJSON_IsTrue(tj_get(doc, "ready")));
    cJSON_Delete(doc);
    CHECK(tj_request(port, "GET", "/v2", NULL, &doc) == 200 &&
          strcmp(tj_str(doc, "name"), "convnetd") == 0);
    cJSON_Delete(doc);
    snprintf(path, sizeof path, "/v2/models/%ld/ready", id);
    CHECK(tj_request(port, "GET", path, NULL, NULL) == 200);
    CHECK(tj_request(port, "GET", "/v2/models/999/ready", NULL, NULL) == 404);

    snprintf(path, sizeof path, "/v2/models/%ld", id);
    CHECK(tj_request(port, "GET", path, NULL, &meta) == 200);
    {
        const cJSON *in = cJSON_GetArrayItem(tj_get(meta, "inputs"), 0);
        const cJSON *out = cJSON_GetArrayItem(tj_get(meta, "outputs"), 0);
        const cJSON *shape = tj_get(in, "shape");
        CHECK(strcmp(tj_str(in, "name"), "input") == 0 && strcmp(tj_str(in, "datatype"), "FP32") == 0);
        CHECK(cJSON_GetArraySize(shape) == 4 && cJSON_GetArrayItem(shape, 0)->valueint == -1 &&
              cJSON_GetArrayItem(shape, 1)->valueint == 1 &&
              cJSON_GetArrayItem(shape, 2)->valueint == H &&
              cJSON_GetArrayItem(shape, 3)->valueint == W);
        CHECK(strcmp(tj_str(out, "name"), "probabilities") == 0);
        CHECK(cJSON_GetArrayItem(tj_get(out, "shape"), 1)->valueint == K);
        CHECK(cJSON_GetArraySize(tj_get(meta, "versions")) == 1);
        mean = cJSON_GetArrayItem(tj_get(meta, "parameters.mean"), 0)->valuedouble;
    }
    cJSON_Delete(meta);

    /* Classify three samples for reference probabilities. */
    for (int i = 0; i < 3; i++) {
        buf png = sample_png(i, 300 + (uint32_t)i, px[i]);
        CHECK(classify(id, "?top_k=4", "image/png", png.p, png.n, &doc) == 200);
        for (const cJSON *p = tj_get(doc, "predictions") ? tj_get(doc, "predictions")->child : NULL;
             p != NULL; p = p->next)
            probs[i][(int)tj_num(p, "index")] = tj_num(p, "probability");
        cJSON_Delete(doc);
        free(png.p);
    }
    snprintf(path, sizeof path, "/v2/models/%ld/infer", id);
    for (int t = 0; t < 2; t++) {
        char *body = infer_body(t == 0 ? "UINT8" : "FP32", (const unsigned char(*)[H * W])px, mean);
        const cJSON *o;
        CHECK(post(path, "application/json", body, strlen(body), &doc) == 200);
        o = cJSON_GetArrayItem(tj_get(doc, "outputs"), 0);
        CHECK(strcmp(tj_str(doc, "id"), "req-7") == 0);
        CHECK(strcmp(tj_str(o, "name"), "probabilities") == 0 &&
              strcmp(tj_str(o, "datatype"), "FP32") == 0);
        CHECK(cJSON_GetArrayItem(tj_get(o, "shape"), 0)->valueint == 3 &&
              cJSON_GetArrayItem(tj_get(o, "shape"), 1)->valueint == K);
        CHECKF(cJSON_GetArraySize(tj_get(o, "data")) == 3 * K, "%d values",
               cJSON_GetArraySize(tj_get(o, "data")));
        for (int i = 0; i < 3 && cJSON_GetArraySize(tj_get(o, "data")) == 3 * K; i++)
            for (int k = 0; k < K; k++) {
                double v = cJSON_GetArrayItem(tj_get(o, "data"), i * K + k)->valuedouble;
                CHECKF(fabs(v - probs[i][k]) < 1e-5, "%s: image %d class %d: %g vs classify %g",
                       t == 0 ? "UINT8" : "FP32", i, k, v, probs[i][k]);
            }
        cJSON_Delete(doc);
        free(body);
    }

    /* Protocol errors: {"error": "..."}. */
    {
        static const char *const bad[] = {
            "{\"inputs\":[{\"name\":\"input\",\"shape\":[1,1,8,8],\"datatype\":\"FP32\",\"data\":[0]}]}",
            "{\"inputs\":[{\"name\":\"x\",\"shape\":[1,1,16,16],\"datatype\":\"FP32\",\"data\":[0]}]}",
            "{\"inputs\":[{\"name\":\"input\",\"shape\":[1,1,16,16],\"datatype\":\"INT64\",\"data\":[0]}]}",
            "{\"inputs\":[{\"name\":\"input\",\"shape\":[1,1,16,16],\"datatype\":\"FP32\",\"data\":[0,1]}]}",
            "{\"inputs\":[{\"name\":\"input\",\"shape\":[65,1,16,16],\"datatype\":\"FP32\",\"data\":[]}]}",
            "{\"inputs\":[{\"name\":\"input\",\"shape\":[1,1,16,16],\"datatype\":\"UINT8\",\"data\":[256]}]}",
            "{\"inputs\":[]}",
            ("{\"inputs\":[{\"name\":\"input\",\"shape\":[1,1,16,16],\"datatype\":\"FP32\",\"data\":[0]}],"
             "\"outputs\":[{\"name\":\"logits\"}]}"),
            "{\"bogus\":1}",
            "[1,2]",
            "{\"inputs\":",
        };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            int st = post(path, "application/json", bad[i], strlen(bad[i]), &doc);
            CHECKF(st == 400, "bad infer %zu: status %d", i, st);
            CHECKF(cJSON_IsString(tj_get(doc, "error")), "bad infer %zu: no error string", i);
            cJSON_Delete(doc);
        }
        CHECK(post("/v2/models/999/infer", "application/json", bad[0], strlen(bad[0]), &doc) == 404);
        CHECK(cJSON_IsString(tj_get(doc, "error")));
        cJSON_Delete(doc);
    }
}

/* ---- evaluation ---- */

static void check_evaluation(long id, int want_total, const char *want_split)
{
    char path[96];
    cJSON *doc;
    int st;
    double deadline = tj_now() + 60;

    snprintf(path, sizeof path, "/v1/models/%ld/evaluation?wait=20", id);
    do {
        st = tj_request(port, "GET", path, NULL, &doc);
        if (st == 202)
            cJSON_Delete(doc);
    } while (st == 202 && tj_now() < deadline);
    CHECKF(st == 200, "evaluation of %ld: status %d (%s)", id, st, tj_str(doc, "error.message"));
    if (st == 200) {
        const cJSON *cm = tj_get(doc, "confusion_matrix");
        long total = 0, trace = 0;
        int i = 0;
        for (const cJSON *row = cm->child; row != NULL; row = row->next, i++) {
            int j = 0;
            CHECK(cJSON_GetArraySize(row) == cJSON_GetArraySize(cm));
            for (const cJSON *v = row->child; v != NULL; v = v->next, j++) {
                total += (long)v->valuedouble;
                if (i == j)
                    trace += (long)v->valuedouble;
            }
        }
        CHECKF(total == want_total, "confusion matrix sums to %ld, want %d", total, want_total);
        CHECK(tj_num(doc, "num_samples") == want_total && tj_num(doc, "correct") == trace);
        CHECKF(fabs(tj_num(doc, "accuracy") - (double)trace / (double)total) < 1e-12,
               "accuracy %g vs %ld/%ld", tj_num(doc, "accuracy"), trace, total);
        CHECK(strcmp(tj_str(doc, "split"), want_split) == 0);
        CHECK(cJSON_GetArraySize(tj_get(doc, "per_class_accuracy")) == cJSON_GetArraySize(cm));
        CHECK(cJSON_GetArraySize(tj_get(doc, "class_names")) == cJSON_GetArraySize(cm));
    }
    cJSON_Delete(doc);
}

/* ---- filters ---- */

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void test_filters(long id)
{
    char path[96], etag[128], etag0[128], hdr[200];
    filters_grid g;
    hc_reply r;

    CHECK(filters_layout(&g, 4, 1, 7, 7) == 0);
    snprintf(path, sizeof path, "/v1/jobs/%ld/filters.png", id);
    if (hc_request(port, "GET", path, NULL, NULL, 0, &r) != 0) {
        CHECK(!"filters.png");
        return;
    }
    CHECK(r.status == 200);
    CHECK(r.body_len > 24 && memcmp(r.body, "\x89PNG\r\n\x1a\n", 8) == 0);
    CHECKF(be32((const unsigned char *)r.body + 16) == (uint32_t)g.width &&
           be32((const unsigned char *)r.body + 20) == (uint32_t)g.height,
           "%ux%u, want %dx%d", be32((const unsigned char *)r.body + 16),
           be32((const unsigned char *)r.body + 20), g.width, g.height);
    CHECK(hc_header(&r, "Content-Type", hdr, sizeof hdr) && strcmp(hdr, "image/png") == 0);
    CHECK(hc_header(&r, "ETag", etag, sizeof etag) != NULL && etag[0] == '"');
    CHECK(hc_header(&r, "X-Filters-Epoch", hdr, sizeof hdr) && strcmp(hdr, "2") == 0);
    hc_free(&r);

    snprintf(hdr, sizeof hdr, "If-None-Match: %s\r\n", etag);
    if (hc_request(port, "GET", path, hdr, NULL, 0, &r) == 0) {
        CHECK(r.status == 304 && r.body_len == 0);
        hc_free(&r);
    }
    if (hc_request(port, "GET", path, "If-None-Match: \"0000000000000000\"\r\n", NULL, 0, &r)
        == 0) {
        CHECK(r.status == 200);
        hc_free(&r);
    }
    /* The initial weights: a different picture of the same size. */
    snprintf(path, sizeof path, "/v1/jobs/%ld/filters.png?epoch=0", id);
    if (hc_request(port, "GET", path, NULL, NULL, 0, &r) == 0) {
        CHECK(r.status == 200 && memcmp(r.body, "\x89PNG", 4) == 0);
        CHECK(hc_header(&r, "ETag", etag0, sizeof etag0) && strcmp(etag0, etag) != 0);
        hc_free(&r);
    }
    /* Epoch 2's snapshot is the final weights: the same tag. */
    snprintf(path, sizeof path, "/v1/jobs/%ld/filters.png?epoch=2", id);
    if (hc_request(port, "GET", path, NULL, NULL, 0, &r) == 0) {
        CHECK(r.status == 200 && hc_header(&r, "ETag", hdr, sizeof hdr) && strcmp(hdr, etag) == 0);
        hc_free(&r);
    }
    /* Past the last epoch: the latest checkpoint, which is of epoch 2. */
    snprintf(path, sizeof path, "/v1/jobs/%ld/filters.png?epoch=99", id);
    if (hc_request(port, "GET", path, NULL, NULL, 0, &r) == 0) {
        CHECK(r.status == 200 && hc_header(&r, "X-Filters-Epoch", hdr, sizeof hdr) &&
              strcmp(hdr, "2") == 0);
        hc_free(&r);
    }
    snprintf(path, sizeof path, "/v1/jobs/%ld/filters.png?epoch=-1", id);
    CHECK(tj_request(port, "GET", path, NULL, NULL) == 400);
    CHECK(tj_request(port, "GET", "/v1/jobs/999/filters.png", NULL, NULL) == 404);
}

/* ---- while training ---- */

typedef struct hammer {
    long model;
    int n, ok, right;
    pthread_t th;
} hammer;

static void *hammer_main(void *arg)
{
    hammer *h = arg;
    for (int i = 0; i < h->n; i++) {
        int label = i % K;
        buf png = sample_png(label, 5000 + (uint32_t)i, NULL);
        cJSON *doc;
        if (classify(h->model, "?top_k=1", "image/png", png.p, png.n, &doc) == 200) {
            h->ok++;
            h->right += top_class(doc) == label;
        }
        cJSON_Delete(doc);
        free(png.p);
    }
    return NULL;
}

static void test_while_training(long small, long lng)
{
    double worst = 0, t0;
    long it0, it1;
    cJSON *doc;
    char path[64];
    double req0, bat0, req1, bat1;
    hammer hs[8];

    CHECK(tj_wait_iteration(port, lng, 2, 60));
    snprintf(path, sizeof path, "/v1/jobs/%ld", lng);
    CHECK(tj_request(port, "GET", path, NULL, &doc) == 200);
    it0 = (long)tj_num(doc, "progress.iteration");
    cJSON_Delete(doc);
    t0 = tj_now();
    for (int i = 0; i < 30; i++) {
        buf png = sample_png(i % K, 900 + (uint32_t)i, NULL);
        double s = tj_now(), dt;
        int st = classify(small, "?top_k=1", "image/png", png.p, png.n, &doc);
        dt = tj_now() - s;
        CHECK(st == 200 && top_class(doc) == i % K);
        if (dt > worst)
            worst = dt;
        cJSON_Delete(doc);
        free(png.p);
    }
    CHECK(tj_request(port, "GET", path, NULL, &doc) == 200);
    it1 = (long)tj_num(doc, "progress.iteration");
    CHECK(strcmp(tj_str(doc, "status"), "running") == 0);
    cJSON_Delete(doc);
    fprintf(stderr, "while training: 30 classifications in %.3f s, worst %.1f ms; the job went "
            "from iteration %ld to %ld\n", tj_now() - t0, worst * 1000, it0, it1);
    CHECKF(worst < 2.0, "a classification took %.3f s while training", worst);
    CHECKF(it1 > it0, "training did not move (%ld -> %ld) while classifying", it0, it1);

    /* The training job's own model, from its latest checkpoint, then a
     * newer one (epochs are 15 iterations). */
    wait_iteration_of_model(lng, 15, 60);
    {
        buf png = sample_png(1, 42, NULL);
        double first, second;
        CHECK(classify(lng, "?top_k=1", "image/png", png.p, png.n, &doc) == 200);
        first = tj_num(doc, "iteration");
        cJSON_Delete(doc);
        wait_iteration_of_model(lng, (long)first + 30, 60);
        CHECK(classify(lng, "?top_k=1", "image/png", png.p, png.n, &doc) == 200);
        second = tj_num(doc, "iteration");
        cJSON_Delete(doc);
        CHECKF(first >= 15 && second >= first + 30, "served iterations %g then %g", first,
               second);
        free(png.p);
    }

    /* Batching: 8 threads at once. */
    req0 = metric("convnetd_inference_requests_total");
    bat0 = metric("convnetd_inference_batches_total");
    for (int i = 0; i < 8; i++) {
        hs[i] = (hammer){ .model = small, .n = 20 };
        pthread_create(&hs[i].th, NULL, hammer_main, &hs[i]);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(hs[i].th, NULL);
        CHECKF(hs[i].ok == 20 && hs[i].right == 20, "thread %d: %d ok, %d right", i, hs[i].ok,
               hs[i].right);
    }
    req1 = metric("convnetd_inference_requests_total");
    bat1 = metric("convnetd_inference_batches_total");
    fprintf(stderr, "batching: %.0f requests in %.0f forward passes\n", req1 - req0, bat1 - bat0);
    CHECK(req1 - req0 == 160);
    CHECKF(bat1 - bat0 < req1 - req0, "%.0f passes for %.0f requests", bat1 - bat0, req1 - req0);
    CHECK(metric("convnetd_model_loads_total") >= 3);
}

/* ---- an image-folder data set ---- */

static int write_folder_dataset(const char *data)
{
    static const char *const split[] = { "train", "test" };
    static const char *const cls[] = { "left", "right" };
    char path[1200];
    uint32_t x = 17;

    for (int s = 0; s < 2; s++)
        for (int c = 0; c < 2; c++) {
            int n = s == 0 ? 20 : 6;
            snprintf(path, sizeof path, "%s/shapes", data);
            mkdir(path, 0755);
            snprintf(path, sizeof path, "%s/shapes/%s", data, split[s]);
            mkdir(path, 0755);
            snprintf(path, sizeof path, "%s/shapes/%s/%s", data, split[s], cls[c]);
            if (mkdir(path, 0755) != 0)
                return -1;
            for (int i = 0; i < n; i++) {
                unsigned char px[8 * 8], *png;
                size_t len;
                FILE *f;
                tj_synth_image(px, 8, 8, 2, c, &x);
                if (pngenc_gray(&png, &len, px, 8, 8, NULL, 0) != 0)
                    return -1;
                snprintf(path, sizeof path, "%s/shapes/%s/%s/%02d.png", data, split[s], cls[c], i);
                f = fopen(path, "wb");
                if (f == NULL || fwrite(png, 1, len, f) != len) {
                    free(png);
                    if (f != NULL)
                        fclose(f);
                    return -1;
                }
                fclose(f);
                free(png);
            }
        }
    return 0;
}

static void test_folder(void)
{
    cJSON *doc;
    const cJSON *ds = NULL;
    long id;

    CHECK(tj_request(port, "GET", "/v1/datasets", NULL, &doc) == 200);
    for (const cJSON *d = tj_get(doc, "datasets") ? tj_get(doc, "datasets")->child : NULL;
         d != NULL; d = d->next)
        if (strcmp(tj_str(d, "name"), "shapes") == 0)
            ds = d;
    CHECK(ds != NULL);
    if (ds != NULL) {
        CHECK(strcmp(tj_str(ds, "format"), "image-folder") == 0);
        CHECK(tj_num(ds, "num_classes") == 2 && tj_num(ds, "sizes.train") == 40 &&
              tj_num(ds, "sizes.test") == 12);
        CHECK(strcmp(cJSON_GetArrayItem(tj_get(ds, "class_names"), 1)->valuestring, "right") == 0);
    }
    cJSON_Delete(doc);
    id = tj_submit(port, folder_job);
    CHECK(id > 0 && tj_wait_status(port, id, "succeeded", 60));
    check_evaluation(id, 12, "test");
    {
        char path[96];
        snprintf(path, sizeof path, "/v1/models/%ld", id);
        CHECK(tj_request(port, "GET", path, NULL, &doc) == 200);
        CHECK(strcmp(cJSON_GetArrayItem(tj_get(doc, "classes"), 0)->valuestring, "left") == 0);
        CHECK(cJSON_IsNumber(tj_get(doc, "accuracy.test")));
        cJSON_Delete(doc);
    }
}

int main(int argc, char **argv)
{
    dproc d;
    long small, lng;
    int st;

    dp_dirs dirs;
    int rc = dp_setup(&dirs, "convnetd-test-serve", argc, argv);
    if (rc != 0)
        return rc;
    const char *state = dirs.state, *data = dirs.data, *log = dirs.log;
    if (tj_write_synth(data, "synth", 800, H, W, K, 21) != 0 ||
        tj_write_synth_test(data, "synth", 200, H, W, K, 22) != 0 ||
        write_folder_dataset(data) != 0) {
        fprintf(stderr, "cannot write the data sets\n");
        return 1;
    }
    if (dp_start(&d, argv[1], state, data, log, NULL) != 0)
        return 1;
    port = d.port;

    small = tj_submit(port, small_job);
    CHECK(small > 0 && tj_wait_status(port, small, "succeeded", 60));
    test_models(small);
    test_classify(small);
    test_bad_images(small);
    test_kserve(small);
    check_evaluation(small, 200, "test");
    test_filters(small);

    lng = tj_submit(port, long_job);
    CHECK(lng > 0);
    test_while_training(small, lng);
    {
        char path[64];
        snprintf(path, sizeof path, "/v1/jobs/%ld/cancel", lng);
        CHECK(tj_request(port, "POST", path, NULL, NULL) == 200);
    }
    test_folder();

    st = dp_stop(&d, SIGTERM, 30);
    CHECKF(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status %d", st);
    dp_cleanup(&dirs, check_failures);
    return check_result("daemon_serve");
}
