/* test_faults.c: SQLite-style fault injection. Every allocation nn makes
 * (malloc, calloc, realloc, aligned_alloc, strdup, and cJSON's through its
 * hooks) goes through counting wrappers (ld --wrap); the k-th one fails.
 * For k = 1, 2, ... each operation below must either succeed (k beyond its
 * last allocation) or return an error status, and afterwards no allocation
 * may be left live: model building, training steps with a checkpoint,
 * data loading, checkpoint loading and model loading. Run under ASan in
 * the sanitizer build as well. */
#define _POSIX_C_SOURCE 200809L
#include <cjson/cJSON.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "nn/checkpoint.h"
#include "nn/solver.h"
#include "testcore.h"

/* ---- counting allocator ------------------------------------------------- */

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);
void *__real_aligned_alloc(size_t a, size_t n);
void __real_free(void *p);

/* Atomic: the CPU backend's worker threads free their start-up argument
 * while the main thread allocates. */
static atomic_long calls, live;
static long fail_at;
static atomic_int failed;

static int fail_now(void)
{
    if (fail_at > 0 && ++calls == fail_at) {
        failed = 1;
        return 1;
    }
    return 0;
}

void *__wrap_malloc(size_t n)
{
    if (fail_now())
        return NULL;
    void *p = __real_malloc(n);
    live += p != NULL;
    return p;
}

void *__wrap_calloc(size_t n, size_t m)
{
    if (fail_now())
        return NULL;
    void *p = __real_calloc(n, m);
    live += p != NULL;
    return p;
}

void *__wrap_realloc(void *p, size_t n)
{
    if (fail_now())
        return NULL;
    void *q = __real_realloc(p, n);
    live += p == NULL && q != NULL;
    return q;
}

void *__wrap_aligned_alloc(size_t a, size_t n)
{
    if (fail_now())
        return NULL;
    void *p = __real_aligned_alloc(a, n);
    live += p != NULL;
    return p;
}

char *__wrap_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = __wrap_malloc(n);
    if (p)
        memcpy(p, s, n);
    return p;
}

void __wrap_free(void *p)
{
    live -= p != NULL;
    __real_free(p);
}

/* ---- the operations ------------------------------------------------------ */

static char dir[] = "/tmp/nn_faults_XXXXXX";
static char ckpt[512], idx_img[512], idx_lab[512];

typedef nn_status (*op_fn)(void);

static nn_status op_model(void)
{
    nn_backend *b = NULL;
    nn_model *m = NULL;
    char err[NN_ERRLEN];
    nn_model_config cfg = { .channels = 1, .height = 8, .width = 8, .num_classes = 3,
                            .max_batch = 4, .seed = 1 };
    nn_status st = nn_cpu_backend_create(2, &b, err);
    if (st == NN_OK)
        st = nn_model_create(&m, b, "{\"preset\":\"deep_convnet\",\"num_filters\":[2,3],"
                             "\"max_pools\":[0],\"batchnorm\":true}", &cfg, err);
    nn_model_free(m);
    nn_backend_free(b);
    return st;
}

static nn_dataset *tiny_data(void)
{
    nn_dataset *d = NULL;
    if (nn_dataset_create(&d, 12, 1, 8, 8, 3, NULL) != NN_OK)
        return NULL;
    for (int i = 0; i < 12 * 64; i++)
        d->images[i] = (uint8_t)(i * 7);
    for (int i = 0; i < 12; i++)
        d->labels[i] = (uint16_t)(i % 3);
    return d;
}

/* Train two steps and write a checkpoint. */
static nn_status op_train(void)
{
    nn_backend *b = NULL;
    nn_model *m = NULL;
    nn_solver *s = NULL;
    char err[NN_ERRLEN];
    nn_dataset *d = tiny_data();
    if (!d)
        return NN_ERR_NOMEM;
    nn_split tr, va;
    float mean[1];
    nn_status st = nn_dataset_split(&tr, &va, d, 0.25, 0, err);
    if (st == NN_OK)
        st = nn_dataset_channel_mean(mean, &tr, err);
    nn_model_config cfg = { .channels = 1, .height = 8, .width = 8, .num_classes = 3,
                            .max_batch = 4, .seed = 1 };
    nn_solver_config sc = nn_solver_defaults();
    sc.batch_size = 4;
    sc.num_epochs = 2;
    if (st == NN_OK)
        st = nn_cpu_backend_create(2, &b, err);
    if (st == NN_OK)
        st = nn_model_create(&m, b, "{\"layers\":[{\"type\":\"conv\",\"filters\":2,\"size\":3,"
                             "\"pad\":1},{\"type\":\"relu\"},{\"type\":\"maxpool\"},"
                             "{\"type\":\"dropout\",\"p\":0.2},{\"type\":\"linear\"}]}",
                             &cfg, err);
    if (st == NN_OK)
        st = nn_solver_create(&s, m, &tr, &va, mean, &sc, err);
    for (int i = 0; st == NN_OK && i < 2; i++)
        st = nn_solver_step(s, NULL, err);
    if (st == NN_OK)
        st = nn_solver_save(s, ckpt, NULL, "{\"job\":7}", err);
    nn_solver_free(s);
    nn_model_free(m);
    nn_backend_free(b);
    nn_dataset_free(d);
    return st;
}

static nn_status op_idx(void)
{
    nn_dataset *d = NULL;
    nn_status st = nn_dataset_load_idx(&d, idx_img, idx_lab, NULL);
    nn_dataset_free(d);
    return st;
}

static nn_status op_ckpt_read(void)
{
    char *meta = NULL;
    nn_ckpt_tensor *t = NULL;
    int n = 0;
    nn_status st = nn_ckpt_read(ckpt, &meta, &t, &n, NULL);
    nn_ckpt_free(meta, t, n);
    return st;
}

static nn_status op_model_load(void)
{
    nn_backend *b = NULL;
    nn_model *m = NULL;
    nn_model_info info;
    memset(&info, 0, sizeof info);
    nn_status st = nn_cpu_backend_create(1, &b, NULL);
    if (st == NN_OK)
        st = nn_model_load(&m, &info, b, ckpt, 4, 1, NULL);
    if (st == NN_OK)
        nn_model_info_free(&info);
    nn_model_free(m);
    nn_backend_free(b);
    return st;
}

/* Runs op failing the k-th allocation for every k until it completes
 * without a failure; returns the number of allocations it needs. */
static long sweep(const char *name, op_fn op)
{
    long k;
    for (k = 1; k < 100000; k++) {
        calls = 0;
        failed = 0;
        fail_at = k;
        long before = live;
        nn_status st = op();
        fail_at = 0;
        if (!CHECK(live == before, "%s: failing allocation %ld leaks %ld allocation(s)", name,
                   k, live - before))
            return -1;
        if (!failed) {
            CHECK(st == NN_OK, "%s: fails without an injected fault: %s", name,
                  nn_status_str(st));
            break;
        }
        if (!CHECK(st != NN_OK, "%s: allocation %ld failed but the call returned OK", name, k))
            return -1;
    }
    printf("%-12s %4ld allocations, each failure returned an error and leaked nothing\n",
           name, k - 1);
    CHECK(k > 2, "%s: the wrappers saw allocations", name);
    return k - 1;
}

int main(void)
{
    cJSON_Hooks hooks = { __wrap_malloc, __wrap_free };
    cJSON_InitHooks(&hooks);
    if (!mkdtemp(dir))
        return 1;
    snprintf(ckpt, sizeof ckpt, "%s/model.ckpt", dir);
    snprintf(idx_img, sizeof idx_img, "%s/img.idx", dir);
    snprintf(idx_lab, sizeof idx_lab, "%s/lab.idx", dir);
    /* fixtures: 3 images of 4x4, labels 0..2 */
    FILE *f = fopen(idx_img, "wb");
    unsigned char h[16] = { 0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 4 };
    fwrite(h, 1, 16, f);
    for (int i = 0; i < 48; i++)
        fputc(i, f);
    fclose(f);
    f = fopen(idx_lab, "wb");
    unsigned char hl[8] = { 0, 0, 8, 1, 0, 0, 0, 3 };
    fwrite(hl, 1, 8, f);
    fputc(0, f);
    fputc(1, f);
    fputc(2, f);
    fclose(f);

    if (op_train() != NN_OK) { /* the checkpoint the loaders read */
        fprintf(stderr, "setup: training failed\n");
        return 1;
    }
    sweep("model", op_model);
    sweep("train+save", op_train);
    sweep("idx", op_idx);
    sweep("ckpt read", op_ckpt_read);
    sweep("model load", op_model_load);
    unlink(ckpt);
    unlink(idx_img);
    unlink(idx_lab);
    rmdir(dir);
    return tu_finish("nn_faults");
}
