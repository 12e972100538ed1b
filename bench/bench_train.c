/* bench_train.c: one training run on Fashion-MNIST, measured: training
 * throughput (images/s and GFLOP/s next to the BLAS peak), validation and
 * test accuracy, peak RSS against the memory the run accounts for, a
 * profile of where an iteration's time goes (API level, then per layer
 * through the backend's ops), and PyTorch's peer script on the same run in
 * the same process tree for a ratio that survives machine drift.
 *
 * Default: the report's three-layer convnet run (hidden 500, Adam 2e-3,
 * batch 64, 48,000/12,000 split, one epoch). --config runs a model + solver
 * JSON (bench/configs/). Not a test: goals are printed, never asserted. */
#define _POSIX_C_SOURCE 200809L
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include "bench_common.h"
#include "nn/blas.h"
#include "nn/solver.h"
#ifdef CONVNET_HAVE_CUDA
#include "nn_cuda/nn_cuda.h"
#endif

#ifdef NN_DOUBLE
#error "bench_train times float training: link it against nn, not nn_f64"
#endif
#ifndef BENCH_REPO_ROOT
#define BENCH_REPO_ROOT "."
#endif
#ifndef BENCH_CONFIG_DIR
#define BENCH_CONFIG_DIR BENCH_REPO_ROOT "/bench/configs"
#endif
/* The shared folder sits beside the repository checkout. */
#define TORCH_SCRIPT BENCH_REPO_ROOT "/../shared/peers/torch_three_layer.py"
#define DEEP_CONFIG BENCH_CONFIG_DIR "/deep_fmnist.json"

#define MB (1024.0 * 1024.0)
#define MAX_LAYERS 64

/* The report's run; torch_three_layer.py trains exactly this. */
static const char three_layer_model[] =
    "{\"preset\":\"three_layer_convnet\",\"num_filters\":32,\"filter_size\":7,"
    "\"hidden_dim\":500,\"weight_scale\":1e-3,\"reg\":1e-3}";
static const char three_layer_solver[] =
    "{\"update_rule\":\"adam\",\"learning_rate\":2e-3,\"batch_size\":64,\"epochs\":1,"
    "\"print_every\":50,\"seed\":0}";

typedef struct options {
    int iters;                /* 0: whole epochs */
    int threads;
    int epochs;               /* 0: the run's own */
    int device;               /* -1: CPU, else a CUDA device index */
    int torch;                /* 0: --no-torch */
    int profile_iters;        /* 0: no profile */
    const char *preset, *config, *torch_script, *data_dir;
} options;

/* What to train: from the built-in preset or a --config file. */
typedef struct run_spec {
    char name[32];            /* "preset=" in the output */
    char *model_json;         /* malloc'd */
    nn_solver_config sc;
    double val_fraction;
    int torch_peer;           /* the PyTorch script trains this same run */
} run_spec;

/* One layer of the canonical model JSON with its shapes and work. */
typedef struct layer_info {
    char type[16];
    int filters, size, stride, pad, bias, units;
    double p, eps, momentum;
    int in[3], out[3];        /* (C,H,W) of one image */
    size_t params;
    double fwd_flop, bwd_flop; /* per image; 0 for element-wise layers */
    double fwd_ms, bwd_ms;    /* per iteration, from the layer profile */
} layer_info;

typedef struct curve_point {
    long iteration;
    int epoch;
    double train_acc, val_acc, elapsed_s, wall_s, lr;
} curve_point;

typedef struct hook_state {
    curve_point *pts;
    int n, cap;
    double t0;
} hook_state;

/* ---- small helpers ------------------------------------------------------ */

static char *read_file(const char *path, char *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, NN_ERRLEN, "%s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = NULL;
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && n < (1L << 20) &&
        fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n + 1)) != NULL &&
        fread(buf, 1, (size_t)n, f) == (size_t)n) {
        buf[n] = 0;
    } else {
        snprintf(err, NN_ERRLEN, "%s: cannot read (or larger than 1 MiB)", path);
        free(buf);
        buf = NULL;
    }
    fclose(f);
    return buf;
}

/* Resident-set figures from /proc/self/status ("VmRSS", "VmHWM"), in
 * bytes; 0 when unreadable. */
static double proc_status_bytes(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return 0;
    char line[256];
    double kb = 0;
    size_t klen = strlen(key);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
            kb = strtod(line + klen + 1, NULL);
            break;
        }
    fclose(f);
    return kb * 1024.0;
}

/* The 1-minute load average, to judge how noisy a run was; -1 if unknown. */
static double loadavg(void)
{
    FILE *f = fopen("/proc/loadavg", "r");
    double l = -1;
    if (f) {
        if (fscanf(f, "%lf", &l) != 1)
            l = -1;
        fclose(f);
    }
    return l;
}

/* User + system CPU seconds of this process (RUSAGE_SELF) or of its
 * waited-for children (RUSAGE_CHILDREN). CPU seconds over wall seconds x
 * threads is the share of its cores a run got: well below 1 means other
 * processes took them and its time is inflated. */
static double cpu_seconds(int who)
{
    struct rusage ru;
    if (getrusage(who, &ru) != 0)
        return 0;
    return (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec +
           (double)ru.ru_stime.tv_sec + 1e-6 * (double)ru.ru_stime.tv_usec;
}

static double peak_rss_bytes(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return (double)ru.ru_maxrss * 1024.0;   /* Linux: KiB */
}

/* Uniform in [-1, 1) from nn's seeded generator (STYLE.md: never rand()). */
static void fill_uniform(nn_real *x, size_t n, uint64_t seed)
{
    nn_rng r;
    nn_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++)
        x[i] = (nn_real)(2.0 * nn_rng_uniform(&r) - 1.0);
}

/* ---- what to run -------------------------------------------------------- */

static int spec_builtin(run_spec *rs, const char *preset, char *err)
{
    memset(rs, 0, sizeof *rs);
    rs->sc = nn_solver_defaults();
    rs->val_fraction = 0.2;
    if (strcmp(preset, "three_layer_convnet") != 0) {
        snprintf(err, NN_ERRLEN, "unknown preset \"%s\"", preset);
        return -1;
    }
    snprintf(rs->name, sizeof rs->name, "%s", preset);
    rs->torch_peer = 1;
    rs->model_json = malloc(sizeof three_layer_model);
    if (!rs->model_json) {
        snprintf(err, NN_ERRLEN, "out of memory");
        return -1;
    }
    memcpy(rs->model_json, three_layer_model, sizeof three_layer_model);
    return nn_solver_config_parse(&rs->sc, three_layer_solver, err) == NN_OK ? 0 : -1;
}

/* A config file: {"description": "...", "model": {...}, "solver": {...},
 * "data": {"val_fraction": 0.2}}. Unknown keys are errors, as everywhere in
 * this project's configuration. */
static int spec_config(run_spec *rs, const char *path, char *err)
{
    memset(rs, 0, sizeof *rs);
    rs->sc = nn_solver_defaults();
    rs->val_fraction = 0.2;
    char *text = read_file(path, err);
    if (!text)
        return -1;
    int rc = -1;
    char msg[NN_ERRLEN] = "";
    cJSON *o = cJSON_Parse(text);
    if (!cJSON_IsObject(o)) {
        snprintf(msg, sizeof msg, "not a JSON object");
        goto done;
    }
    for (const cJSON *it = o->child; it; it = it->next)
        if (!it->string || (strcmp(it->string, "description") != 0 &&
                            strcmp(it->string, "model") != 0 &&
                            strcmp(it->string, "solver") != 0 &&
                            strcmp(it->string, "data") != 0)) {
            snprintf(msg, sizeof msg, "%.60s: unknown field (description, model, solver, "
                     "data)", it->string ? it->string : "?");
            goto done;
        }
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(o, "model");
    const cJSON *solver = cJSON_GetObjectItemCaseSensitive(o, "solver");
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(o, "data");
    if (!cJSON_IsObject(model)) {
        snprintf(msg, sizeof msg, "model: required, an object");
        goto done;
    }
    if (solver && !cJSON_IsObject(solver)) {
        snprintf(msg, sizeof msg, "solver: must be an object");
        goto done;
    }
    if (data && !cJSON_IsObject(data)) {
        snprintf(msg, sizeof msg, "data: must be an object");
        goto done;
    }
    for (const cJSON *it = data ? data->child : NULL; it; it = it->next) {
        if (!it->string || strcmp(it->string, "val_fraction") != 0) {
            snprintf(msg, sizeof msg, "data.%.60s: unknown field (val_fraction)",
                     it->string ? it->string : "?");
            goto done;
        }
        if (!cJSON_IsNumber(it) || !(it->valuedouble > 0 && it->valuedouble < 1)) {
            snprintf(msg, sizeof msg, "data.val_fraction: must be in (0, 1)");
            goto done;
        }
        rs->val_fraction = it->valuedouble;
    }
    const cJSON *preset = cJSON_GetObjectItemCaseSensitive(model, "preset");
    snprintf(rs->name, sizeof rs->name, "%s",
             cJSON_IsString(preset) ? preset->valuestring : "custom");
    if (!(rs->model_json = cJSON_PrintUnformatted(model))) {
        snprintf(msg, sizeof msg, "out of memory");
        goto done;
    }
    if (solver) {
        char *sj = cJSON_PrintUnformatted(solver);
        nn_status st = sj ? nn_solver_config_parse(&rs->sc, sj, msg) : NN_ERR_NOMEM;
        free(sj);
        if (st != NN_OK) {
            if (!msg[0])
                snprintf(msg, sizeof msg, "%s", nn_status_str(st));
            goto done;
        }
    }
    rc = 0;
done:
    if (rc != 0)
        snprintf(err, NN_ERRLEN, "%s: %s", path, msg);
    cJSON_Delete(o);
    free(text);
    return rc;
}

/* ---- the model's layers, shapes and FLOPs ------------------------------- */

static int json_int(const cJSON *o, const char *k, int dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valueint : dflt;
}

static double json_num(const cJSON *o, const char *k, double dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

/* Walks nn_model_json()'s canonical layer list (what nn built, presets
 * expanded) and fills L[0..n). FLOPs count multiply-adds as 2 and only the
 * GEMM-shaped work: conv forward 2·K·C·R·S·P·Q, backward dW the same and dX
 * the same except in the first layer (nn skips its input gradient); linear
 * forward 2·D·M, backward dW and dX likewise. ReLU, pooling, batch norm,
 * dropout, the loss and the optimizer are a few FLOPs per element and are
 * left out (their time is not: see the profile). */
static int describe_layers(layer_info *L, int max, const char *model_json,
                           const nn_model_config *mc, char *err)
{
    cJSON *o = cJSON_Parse(model_json);
    const cJSON *layers = cJSON_GetObjectItemCaseSensitive(o, "layers");
    int n = 0;
    if (!cJSON_IsArray(layers)) {
        snprintf(err, NN_ERRLEN, "model JSON has no layer list");
        cJSON_Delete(o);
        return -1;
    }
    int c = mc->channels, h = mc->height, w = mc->width;
    for (const cJSON *j = layers->child; j && n < max; j = j->next, n++) {
        layer_info *l = &L[n];
        memset(l, 0, sizeof *l);
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(j, "type");
        snprintf(l->type, sizeof l->type, "%s", cJSON_IsString(type) ? type->valuestring : "?");
        l->in[0] = c, l->in[1] = h, l->in[2] = w;
        if (strcmp(l->type, "conv") == 0) {
            l->filters = json_int(j, "filters", 1);
            l->size = json_int(j, "size", 1);
            l->stride = json_int(j, "stride", 1);
            l->pad = json_int(j, "pad", 0);
            const cJSON *b = cJSON_GetObjectItemCaseSensitive(j, "bias");
            l->bias = !cJSON_IsFalse(b);
            h = (h + 2 * l->pad - l->size) / l->stride + 1;
            w = (w + 2 * l->pad - l->size) / l->stride + 1;
            double f = 2.0 * l->filters * c * l->size * l->size * h * w;
            l->params = (size_t)l->filters * c * l->size * l->size + (l->bias ? l->filters : 0);
            c = l->filters;
            l->fwd_flop = f;
            l->bwd_flop = n > 0 ? 2 * f : f;
        } else if (strcmp(l->type, "maxpool") == 0) {
            l->size = json_int(j, "size", 2);
            l->stride = json_int(j, "stride", 2);
            h = (h - l->size) / l->stride + 1;
            w = (w - l->size) / l->stride + 1;
        } else if (strcmp(l->type, "linear") == 0) {
            double D = (double)c * h * w;
            l->units = json_int(j, "units", 0);
            if (l->units <= 0)
                l->units = mc->num_classes;
            l->params = (size_t)D * l->units + l->units;
            l->fwd_flop = 2.0 * D * l->units;
            l->bwd_flop = n > 0 ? 2 * l->fwd_flop : l->fwd_flop;
            c = l->units, h = w = 1;
        } else if (strcmp(l->type, "batchnorm") == 0) {
            l->eps = json_num(j, "eps", 1e-5);
            l->momentum = json_num(j, "momentum", 0.9);
            l->params = 2 * (size_t)c;
        } else if (strcmp(l->type, "dropout") == 0) {
            l->p = json_num(j, "p", 0.5);
        } else if (strcmp(l->type, "relu") != 0) {
            snprintf(err, NN_ERRLEN, "model JSON: unknown layer type \"%.15s\"", l->type);
            cJSON_Delete(o);
            return -1;
        }
        l->out[0] = c, l->out[1] = h, l->out[2] = w;
    }
    cJSON_Delete(o);
    return n;
}

static void shape_str(char *buf, size_t cap, const int *chw)
{
    if (chw[1] == 1 && chw[2] == 1)
        snprintf(buf, cap, "%d", chw[0]);
    else
        snprintf(buf, cap, "%dx%dx%d", chw[0], chw[1], chw[2]);
}

/* ---- the solver's hooks ------------------------------------------------- */

static void on_log(void *user, const char *line)
{
    (void)user;
    printf("%s\n", line);
    fflush(stdout);
}

/* Keeps the learning curve: every epoch end, and the last iteration when
 * --iters stops mid-epoch. */
static int on_epoch(void *user, const nn_solver_progress *p)
{
    hook_state *h = user;
    if ((p->epoch_end || p->iteration == p->num_iterations) && h->n < h->cap)
        h->pts[h->n++] = (curve_point){
            .iteration = p->iteration, .epoch = p->epoch, .train_acc = p->train_acc,
            .val_acc = p->val_acc, .elapsed_s = p->elapsed_s,
            .wall_s = bench_now_s() - h->t0, .lr = p->learning_rate };
    return 0;
}

/* ---- the profile -------------------------------------------------------- */

/* A device tensor of the given shape, filled from host data src (which
 * holds at least its size) or zero when src is NULL. */
static nn_status dev_tensor(nn_backend *b, nn_tensor *t, int ndim, const int *shape,
                            nn_real *src)
{
    *t = ndim == 1 ? nn_tensor_1d(NULL, shape[0])
       : ndim == 2 ? nn_tensor_2d(NULL, shape[0], shape[1])
                   : nn_tensor_4d(NULL, shape[0], shape[1], shape[2], shape[3]);
    nn_status st = nn_backend_alloc(b, t);
    if (st == NN_OK && src) {
        nn_tensor h = *t;
        h.data = src;
        h.device = NN_DEVICE_CPU;
        st = nn_tensor_copy(b, t, &h);
    }
    return st;
}

/* Activation view rule of model.c: (N,C) when H = W = 1, else (N,C,H,W). */
static nn_status act_tensor(nn_backend *b, nn_tensor *t, const int *chw, int N,
                            nn_real *src)
{
    if (chw[1] == 1 && chw[2] == 1)
        return dev_tensor(b, t, 2, (int[]){ N, chw[0] }, src);
    return dev_tensor(b, t, 4, (int[]){ N, chw[0], chw[1], chw[2] }, src);
}

/* Every tensor one layer's forward and backward touch. */
typedef struct layer_tensors {
    nn_tensor inp, out, dout, dinp, w, bias, dw, dbias, ws;
    nn_tensor sm, si, rm, rv, mask;
    int has_dinp;
} layer_tensors;

enum { LT_COUNT = 14 };

static nn_tensor *lt_at(layer_tensors *t, int i)
{
    nn_tensor *all[LT_COUNT] = { &t->inp, &t->out, &t->dout, &t->dinp, &t->w, &t->bias,
                                 &t->dw, &t->dbias, &t->ws, &t->sm, &t->si, &t->rm,
                                 &t->rv, &t->mask };
    return all[i];
}

static void lt_release(nn_backend *b, layer_tensors *t)
{
    for (int i = 0; i < LT_COUNT; i++)
        nn_backend_release(b, lt_at(t, i));
    memset(t, 0, sizeof *t);
}

static nn_status lt_alloc(nn_backend *b, layer_tensors *t, const layer_info *l, int first,
                          int N, nn_real *rnd)
{
    memset(t, 0, sizeof *t);
    nn_status st;
    int C = l->in[0];
    t->has_dinp = !first;
    if (strcmp(l->type, "linear") == 0) {
        int D = l->in[0] * l->in[1] * l->in[2];
        if ((st = dev_tensor(b, &t->inp, 2, (int[]){ N, D }, rnd)) ||
            (!first && (st = dev_tensor(b, &t->dinp, 2, (int[]){ N, D }, NULL))) ||
            (st = dev_tensor(b, &t->w, 2, (int[]){ D, l->units }, rnd)) ||
            (st = dev_tensor(b, &t->dw, 2, (int[]){ D, l->units }, NULL)) ||
            (st = dev_tensor(b, &t->bias, 1, (int[]){ l->units }, rnd)) ||
            (st = dev_tensor(b, &t->dbias, 1, (int[]){ l->units }, NULL)))
            return st;
    } else {
        if ((st = act_tensor(b, &t->inp, l->in, N, rnd)) ||
            (!first && (st = act_tensor(b, &t->dinp, l->in, N, NULL))))
            return st;
    }
    if ((st = act_tensor(b, &t->out, l->out, N, NULL)) ||
        (st = act_tensor(b, &t->dout, l->out, N, rnd)))
        return st;
    if (strcmp(l->type, "conv") == 0) {
        const int ws[4] = { l->filters, C, l->size, l->size };
        size_t wsz = (size_t)C * l->size * l->size * l->out[1] * l->out[2];
        if ((st = dev_tensor(b, &t->w, 4, ws, rnd)) ||
            (st = dev_tensor(b, &t->dw, 4, ws, NULL)) ||
            (l->bias && (st = dev_tensor(b, &t->bias, 1, (int[]){ l->filters }, rnd))) ||
            (l->bias && (st = dev_tensor(b, &t->dbias, 1, (int[]){ l->filters }, NULL))) ||
            (st = dev_tensor(b, &t->ws, 1, (int[]){ (int)wsz }, NULL)))
            return st;
    } else if (strcmp(l->type, "batchnorm") == 0) {
        if ((st = dev_tensor(b, &t->w, 1, (int[]){ C }, rnd)) ||
            (st = dev_tensor(b, &t->bias, 1, (int[]){ C }, rnd)) ||
            (st = dev_tensor(b, &t->dw, 1, (int[]){ C }, NULL)) ||
            (st = dev_tensor(b, &t->dbias, 1, (int[]){ C }, NULL)) ||
            (st = dev_tensor(b, &t->sm, 1, (int[]){ C }, NULL)) ||
            (st = dev_tensor(b, &t->si, 1, (int[]){ C }, NULL)) ||
            (st = dev_tensor(b, &t->rm, 1, (int[]){ C }, NULL)) ||
            (st = dev_tensor(b, &t->rv, 1, (int[]){ C }, NULL)))
            return st;
    } else if (strcmp(l->type, "dropout") == 0) {
        if ((st = dev_tensor(b, &t->mask, 1, (int[]){ (int)t->out.size }, NULL)))
            return st;
    }
    return NN_OK;
}

/* One training-mode forward or backward of layer l, as model.c runs it. */
static nn_status layer_pass(nn_backend *b, const layer_info *l, layer_tensors *t,
                            int backward)
{
    const char *k = l->type;
    nn_tensor *dinp = t->has_dinp ? &t->dinp : NULL;
    if (strcmp(k, "conv") == 0) {
        nn_conv2d_params p = { .stride = l->stride, .pad = l->pad };
        return backward ? nn_backend_conv2d_backward(b, dinp, &t->dw, l->bias ? &t->dbias : NULL,
                                                     &t->dout, &t->inp, &t->w, &p, &t->ws)
                        : nn_backend_conv2d_forward(b, &t->out, &t->inp, &t->w,
                                                    l->bias ? &t->bias : NULL, &p, &t->ws);
    }
    if (strcmp(k, "relu") == 0)
        return backward ? (dinp ? nn_backend_relu_backward(b, dinp, &t->dout, &t->out) : NN_OK)
                        : nn_backend_relu_forward(b, &t->out, &t->inp);
    if (strcmp(k, "maxpool") == 0) {
        nn_pool_params p = { .pool_h = l->size, .pool_w = l->size, .stride = l->stride };
        return backward ? (dinp ? nn_backend_maxpool_backward(b, dinp, &t->dout, &t->inp, &p)
                                : NN_OK)
                        : nn_backend_maxpool_forward(b, &t->out, &t->inp, &p);
    }
    if (strcmp(k, "linear") == 0)
        return backward ? nn_backend_linear_backward(b, dinp, &t->dw, &t->dbias, &t->dout,
                                                     &t->inp, &t->w)
                        : nn_backend_linear_forward(b, &t->out, &t->inp, &t->w, &t->bias);
    if (strcmp(k, "batchnorm") == 0) {
        nn_batchnorm_params p = { .eps = l->eps, .momentum = l->momentum, .training = 1 };
        return backward ? nn_backend_batchnorm_backward(b, dinp, &t->dw, &t->dbias, &t->dout,
                                                        &t->inp, &t->w, &t->sm, &t->si)
                        : nn_backend_batchnorm_forward(b, &t->out, &t->sm, &t->si, &t->rm,
                                                       &t->rv, &t->inp, &t->w, &t->bias, &p);
    }
    if (strcmp(k, "dropout") == 0)
        return backward ? (dinp ? nn_backend_dropout_backward(b, dinp, &t->dout, &t->mask)
                                : NN_OK)
                        : nn_backend_dropout_forward(b, &t->out, &t->mask, &t->inp, l->p, 7);
    return NN_ERR_UNSUPPORTED;
}

/* What one timed phase runs K times. */
typedef enum phase {
    PH_FORWARD, PH_LOSS, PH_OPTIM, PH_STEP, PH_COUNT
} phase;

typedef struct prof_ctx {
    nn_backend *b;
    nn_model *m;
    nn_solver *s;
    nn_tensor x, y, state;
    nn_optim_params op;
    long t;                   /* Adam's step counter for PH_OPTIM */
} prof_ctx;

static nn_status run_phase(prof_ctx *c, phase ph, char *err)
{
    nn_tensor *sc;
    double loss;
    switch (ph) {
    case PH_FORWARD:
        return nn_model_forward(c->m, &sc, &c->x, 1, 1, err);
    case PH_LOSS:
        return nn_model_loss(c->m, &loss, &c->x, &c->y, 1, err);
    case PH_OPTIM: {
        nn_status st = nn_backend_optim_step(c->b, nn_model_params(c->m), &c->state,
                                             nn_model_grads(c->m), &c->op, ++c->t);
        if (st != NN_OK)
            snprintf(err, NN_ERRLEN, "%s", nn_backend_errmsg(c->b));
        return st;
    }
    case PH_STEP:
        return nn_solver_step(c->s, &loss, err);
    case PH_COUNT:
        break;
    }
    return NN_ERR_ARG;
}

/* One timed thing: fn(ctx, arg) is called k times per round. */
typedef nn_status (*timed_fn)(void *ctx, int arg, char *err);

typedef struct prof_item {
    timed_fn fn;
    void *ctx;
    int arg;
    double sec;               /* mean seconds per call, best round */
} prof_item;

/* Times every item: one warm-up call each, then `rounds` rounds in which
 * each item in turn runs k calls; an item's time is its best round's mean.
 * Interleaving the items round by round spreads the noise of a shared
 * machine (other builds) over all of them instead of a few; the backend
 * is synchronised around each timing so an asynchronous device is timed to
 * completion. */
static nn_status time_items(prof_item *it, int n, nn_backend *b, int k, int rounds,
                            char *err)
{
    for (int i = 0; i < n; i++) {
        nn_status st = it[i].fn(it[i].ctx, it[i].arg, err);
        if (st != NN_OK)
            return st;
        it[i].sec = INFINITY;
    }
    for (int r = 0; r < rounds; r++)
        for (int i = 0; i < n; i++) {
            nn_backend_synchronize(b);
            double t0 = bench_now_s();
            for (int j = 0; j < k; j++) {
                nn_status st = it[i].fn(it[i].ctx, it[i].arg, err);
                if (st != NN_OK)
                    return st;
            }
            nn_backend_synchronize(b);
            double t = (bench_now_s() - t0) / k;
            if (t < it[i].sec)
                it[i].sec = t;
        }
    return NN_OK;
}

static nn_status phase_fn(void *ctx, int arg, char *err)
{
    return run_phase(ctx, (phase)arg, err);
}

typedef struct layer_ctx {
    nn_backend *b;
    const layer_info *l;
    layer_tensors *t;
} layer_ctx;

static nn_status layer_fn(void *ctx, int backward, char *err)
{
    layer_ctx *c = ctx;
    nn_status st = layer_pass(c->b, c->l, c->t, backward);
    if (st != NN_OK)
        snprintf(err, NN_ERRLEN, "%s %s: %s", c->l->type, backward ? "backward" : "forward",
                 nn_backend_errmsg(c->b));
    return st;
}

typedef struct misc_ctx {
    nn_backend *b;
    nn_model *m;
    nn_tensor *scores, *dscores, *labels, *dact;
    double v; /* where the loss and L2 sums land: it must outlive the call */
} misc_ctx;

enum { MISC_SOFTMAX, MISC_ZERO_GRADS, MISC_ZERO_DACT, MISC_L2, MISC_COUNT };

static nn_status misc_fn(void *ctx, int what, char *err)
{
    misc_ctx *c = ctx;
    nn_status st = NN_OK;
    switch (what) {
    case MISC_SOFTMAX:
        st = nn_backend_softmax_loss(c->b, &c->v, c->dscores, c->scores, c->labels);
        break;
    case MISC_ZERO_GRADS:
        st = nn_backend_zero(c->b, nn_model_grads(c->m));
        break;
    case MISC_ZERO_DACT:
        st = nn_backend_zero(c->b, c->dact);
        break;
    case MISC_L2: /* as nn_model_loss: only when reg > 0 */
        for (int i = 0; nn_model_reg(c->m) > 0 && i < nn_model_num_tensors(c->m) &&
                        st == NN_OK; i++) {
            int kind;
            nn_tensor *p, *g;
            if (nn_model_tensor(c->m, i, NULL, &kind, &p, &g) == NN_OK && kind == 0)
                st = nn_backend_l2_reg(c->b, &c->v, g, p, nn_model_reg(c->m));
        }
        break;
    }
    if (st != NN_OK)
        snprintf(err, NN_ERRLEN, "%s", nn_backend_errmsg(c->b));
    return st;
}

/* Times the parts of an iteration on a fixed batch. API level: forward
 * alone (nn_model_forward, training mode), nn_model_loss (zeroing, forward,
 * softmax, backward, L2), the optimizer over the whole parameter arena and
 * a full nn_solver_step (which also gathers and normalises a minibatch);
 * the differences give backward and data+other. Then each layer's forward
 * and backward through the backend's ops on tensors of the model's shapes,
 * and the loss, zeroing and L2 parts. Changes the model's parameters: run
 * it after every accuracy has been measured. */
static int profile(nn_model *m, const run_spec *rs, const nn_split *train,
                   const float *mean, layer_info *L, int nl, int k, double run_ms,
                   char *err)
{
    const int rounds = 5;
    nn_backend *b = nn_model_backend(m);
    const nn_model_config *mc = nn_model_cfg(m);
    const int N = rs->sc.batch_size;
    const size_t P = nn_model_num_params(m);
    const int slots = nn_optim_state_slots(rs->sc.optim.rule);
    int rc = -1;
    nn_status st = NN_OK;
    err[0] = 0;
    prof_ctx c = { .b = b, .m = m, .op = rs->sc.optim };
    nn_tensor scores = { 0 }, dscores = { 0 }, dact = { 0 };
    layer_tensors *lt = calloc((size_t)nl, sizeof *lt);
    layer_ctx *lc = calloc((size_t)nl, sizeof *lc);
    enum { NI_MAX = PH_COUNT + 2 * MAX_LAYERS + MISC_COUNT };
    prof_item items[NI_MAX];
    int ni = 0;

    /* The random host buffer every profiled tensor is filled from. */
    size_t maxsz = (size_t)N * mc->channels * mc->height * mc->width;
    size_t act_total = 0;
    for (int i = 0; i < nl; i++) {
        size_t in = (size_t)N * L[i].in[0] * L[i].in[1] * L[i].in[2];
        size_t out = (size_t)N * L[i].out[0] * L[i].out[1] * L[i].out[2];
        act_total += out / (size_t)N * (size_t)mc->max_batch;
        if (in > maxsz) maxsz = in;
        if (out > maxsz) maxsz = out;
        if (L[i].params > maxsz) maxsz = L[i].params;
    }
    nn_real *rnd = malloc(sizeof(nn_real) * maxsz);
    nn_real *labels = malloc(sizeof(nn_real) * (size_t)N);
    int *idx = malloc(sizeof(int) * (size_t)N);
    if (!rnd || !labels || !idx || !lt || !lc) {
        snprintf(err, NN_ERRLEN, "out of memory");
        goto out;
    }

    /* One fixed minibatch: the first N training images. */
    for (int i = 0; i < N; i++)
        idx[i] = i % train->count;
    if ((st = nn_dataset_gather(rnd, labels, train, idx, N, mean, NULL, NULL, err)) ||
        (st = dev_tensor(b, &c.x, 4, (int[]){ N, mc->channels, mc->height, mc->width }, rnd)) ||
        (st = dev_tensor(b, &c.y, 1, (int[]){ N }, labels)) ||
        (st = dev_tensor(b, &c.state, 1, (int[]){ (int)(P * (size_t)(slots > 0 ? slots : 1)) },
                         NULL)))
        goto out;
    nn_solver_config sc = rs->sc;
    sc.num_epochs = 1;
    sc.max_iterations = (long)(rounds + 1) * k + 1;
    sc.print_every = 0;
    if ((st = nn_solver_create(&c.s, m, train, NULL, mean, &sc, err)))
        goto out;
    for (int ph = 0; ph < PH_COUNT; ph++)
        items[ni++] = (prof_item){ .fn = phase_fn, .ctx = &c, .arg = ph };

    /* Per layer, through the backend's ops. */
    fill_uniform(rnd, maxsz, 42);
    for (int i = 0; i < nl; i++) {
        if ((st = lt_alloc(b, &lt[i], &L[i], i == 0, N, rnd)))
            goto out;
        lc[i] = (layer_ctx){ .b = b, .l = &L[i], .t = &lt[i] };
        items[ni++] = (prof_item){ .fn = layer_fn, .ctx = &lc[i], .arg = 0 };
        items[ni++] = (prof_item){ .fn = layer_fn, .ctx = &lc[i], .arg = 1 };
    }
    const int K = mc->num_classes;
    for (int i = 0; i < N; i++)
        labels[i] = (nn_real)(i % K);
    if ((st = dev_tensor(b, &scores, 2, (int[]){ N, K }, rnd)) ||
        (st = dev_tensor(b, &dscores, 2, (int[]){ N, K }, NULL)) ||
        (st = dev_tensor(b, &dact, 1, (int[]){ (int)act_total }, NULL)))
        goto out;
    misc_ctx mcx = { .b = b, .m = m, .scores = &scores, .dscores = &dscores,
                     .labels = &c.y, .dact = &dact };
    const int misc0 = ni;
    for (int i = 0; i < MISC_COUNT; i++)
        items[ni++] = (prof_item){ .fn = misc_fn, .ctx = &mcx, .arg = i };

    if ((st = time_items(items, ni, b, k, rounds, err)))
        goto out;

    double t[PH_COUNT];
    for (int ph = 0; ph < PH_COUNT; ph++)
        t[ph] = items[ph].sec;
    double fwd = t[PH_FORWARD] * 1e3, bwd = (t[PH_LOSS] - t[PH_FORWARD]) * 1e3;
    double opt = t[PH_OPTIM] * 1e3, step = t[PH_STEP] * 1e3;
    double other = step - t[PH_LOSS] * 1e3 - opt;
    printf("\nprofile: batch %d, ms per iteration (best of %d interleaved rounds of %d "
           "iterations, one fixed batch)\n", N, rounds, k);
    printf("  forward       %8.2f ms %5.1f%%  nn_model_forward, training mode\n", fwd,
           100 * fwd / step);
    printf("  backward      %8.2f ms %5.1f%%  nn_model_loss - forward: zeroing, softmax, "
           "backward, L2\n", bwd, 100 * bwd / step);
    printf("  optimizer     %8.2f ms %5.1f%%  %s over %zu parameters (%d state slots)\n",
           opt, 100 * opt / step, nn_update_rule_name(rs->sc.optim.rule), P, slots);
    printf("  data+other    %8.2f ms %5.1f%%  nn_solver_step - loss - optimizer: gather, "
           "normalise, copy, bookkeeping\n", other, 100 * other / step);
    printf("  step          %8.2f ms         nn_solver_step = %.0f images/s; the training "
           "run averaged %.2f ms\n", step, N / t[PH_STEP], run_ms);
    printf("bench=profile forward_ms=%.3f backward_ms=%.3f optimizer_ms=%.3f other_ms=%.3f "
           "step_ms=%.3f\n", fwd, bwd, opt, other, step);

    double sum_f = 0, sum_b = 0;
    for (int i = 0; i < nl; i++) {
        L[i].fwd_ms = items[PH_COUNT + 2 * i].sec * 1e3;
        L[i].bwd_ms = items[PH_COUNT + 2 * i + 1].sec * 1e3;
        sum_f += L[i].fwd_ms;
        sum_b += L[i].bwd_ms;
    }
    double misc[MISC_COUNT], misc_ms = 0;
    for (int i = 0; i < MISC_COUNT; i++)
        misc_ms += (misc[i] = items[misc0 + i].sec * 1e3);
    printf("\nper layer (backend ops on the model's shapes, batch %d):\n", N);
    printf("   # %-9s %-10s %10s %9s %8s %8s %9s %8s %8s\n", "layer", "out", "params",
           "fwd_MFLOP", "fwd_ms", "GFLOP/s", "bwd_MFLOP", "bwd_ms", "GFLOP/s");
    for (int i = 0; i < nl; i++) {
        const layer_info *l = &L[i];
        char shp[32];
        shape_str(shp, sizeof shp, l->out);
        printf("  %2d %-9s %-10s %10zu", i, l->type, shp, l->params);
        if (l->fwd_flop > 0)
            printf(" %9.1f %8.3f %8.1f %9.1f %8.3f %8.1f\n", l->fwd_flop * N * 1e-6,
                   l->fwd_ms, l->fwd_flop * N / (l->fwd_ms * 1e6), l->bwd_flop * N * 1e-6,
                   l->bwd_ms, l->bwd_flop * N / (l->bwd_ms * 1e6));
        else
            printf(" %9s %8.3f %8s %9s %8.3f %8s\n", "-", l->fwd_ms, "-", "-", l->bwd_ms,
                   "-");
    }
    printf("  softmax loss %.3f ms, zero grads (%zu) %.3f ms, zero activation grads (%zu) "
           "%.3f ms, L2 %.3f ms\n", misc[MISC_SOFTMAX], P, misc[MISC_ZERO_GRADS], act_total,
           misc[MISC_ZERO_DACT], misc[MISC_L2]);
    printf("  sum of layers: forward %.2f ms (model %.2f), backward + softmax/zero/L2 %.2f ms "
           "(model %.2f)\n", sum_f, fwd, sum_b + misc_ms, bwd);
    rc = 0;
out:
    if (st != NN_OK && !err[0])
        snprintf(err, NN_ERRLEN, "%s: %s", nn_status_str(st), nn_backend_errmsg(b));
    for (int i = 0; lt && i < nl; i++)
        lt_release(b, &lt[i]);
    nn_solver_free(c.s);
    nn_backend_release(b, &c.x);
    nn_backend_release(b, &c.y);
    nn_backend_release(b, &c.state);
    nn_backend_release(b, &scores);
    nn_backend_release(b, &dscores);
    nn_backend_release(b, &dact);
    free(lt);
    free(lc);
    free(rnd);
    free(labels);
    free(idx);
    return rc;
}

/* ---- BLAS peak ---------------------------------------------------------- */

/* GFLOP/s of an n x n x n float nn_gemm, best of `reps` after a warm-up
 * (bench_sgemm measures the same with more options). 0 on failure. */
static double sgemm_peak(int n, int reps)
{
    size_t nn2 = (size_t)n * (size_t)n;
    nn_real *A = malloc(nn2 * sizeof *A), *B = malloc(nn2 * sizeof *B),
            *C = calloc(nn2, sizeof *C);
    double best = INFINITY;
    if (A && B && C) {
        fill_uniform(A, nn2, 1);
        fill_uniform(B, nn2, 2);
        for (int r = -1; r < reps; r++) {
            double t0 = bench_now_s();
            if (nn_gemm(0, 0, n, n, n, 1, A, n, B, n, 0, C, n) != NN_OK) {
                best = INFINITY;
                break;
            }
            double t = bench_now_s() - t0;
            if (r >= 0 && t < best)
                best = t;
        }
    }
    free(A);
    free(B);
    free(C);
    return isfinite(best) ? 2.0 * n * n * (double)n / best * 1e-9 : 0;
}

/* ---- PyTorch ------------------------------------------------------------ */

typedef struct torch_result {
    double images_per_s, test_acc, images;
    double fwd_s, bwd_s, step_s, other_s;   /* its breakdown line; NAN if absent */
    double cpu_share;                       /* of T cores over the child's life */
    int ok;
} torch_result;

static double field(const char *line, const char *key)
{
    const char *p = strstr(line, key);
    return p ? strtod(p + strlen(key), NULL) : NAN;
}

static void run_torch(torch_result *r, const char *script, const options *o,
                      const nn_solver_config *sc)
{
    *r = (torch_result){ .images_per_s = NAN, .test_acc = NAN, .fwd_s = NAN,
                         .cpu_share = NAN };
    char args[128], why[256];
    if (o->iters > 0)
        snprintf(args, sizeof args, "--threads %d --epochs %d --iters %d", o->threads,
                 sc->num_epochs, o->iters);
    else
        snprintf(args, sizeof args, "--threads %d --epochs %d", o->threads, sc->num_epochs);
    printf("\ntorch: %s %s %s\n", BENCH_PYTHON, script, args);
    double t0 = bench_now_s(), c0 = cpu_seconds(RUSAGE_CHILDREN);
    FILE *p = bench_python_open(script, args, o->threads, why, sizeof why);
    if (!p) {
        printf("torch: unavailable (%s)\n", why);
        return;
    }
    char line[1024];
    while (fgets(line, sizeof line, p)) {
        printf("torch| %s", line);
        if (strncmp(line, "RESULT ", 7) == 0) {
            r->images_per_s = field(line, " images_per_s=");
            r->test_acc = field(line, " test_acc=");
            r->images = field(line, " images=");
            r->ok = isfinite(r->images_per_s) && r->images_per_s > 0;
        } else if (strncmp(line, "breakdown:", 10) == 0 &&
                   sscanf(line, "breakdown: forward+loss %lf s, backward %lf s, adam step "
                          "%lf s, other %lf s", &r->fwd_s, &r->bwd_s, &r->step_s,
                          &r->other_s) != 4) {
            r->fwd_s = NAN;
        }
    }
    fflush(stdout);
    int st = bench_python_close(p);
    r->cpu_share = (cpu_seconds(RUSAGE_CHILDREN) - c0) / ((bench_now_s() - t0) * o->threads);
    if (!r->ok)
        printf("torch: no RESULT line (%s exited with status %d)\n", BENCH_PYTHON, st);
}

/* ---- main --------------------------------------------------------------- */

static void usage(void)
{
    fprintf(stderr,
            "usage: bench_train [--iters N] [--threads T] [--preset P] [--device D]\n"
            "                   [--epochs E] [--config FILE] [--no-torch]\n"
            "                   [--torch-script PATH] [--profile-iters K] [--data-dir DIR]\n"
            "  --iters N          stop after N iterations (default: whole epochs)\n"
            "  --threads T        CPU backend and BLAS threads, and PyTorch's (default 2)\n"
            "  --preset P         three_layer_convnet (default: the report's run) or\n"
            "                     deep_convnet (= --config " DEEP_CONFIG ")\n"
            "  --device D         cpu (default) or cuda[:N]\n"
            "  --epochs E         override the run's epochs\n"
            "  --config FILE      {\"model\":{...},\"solver\":{...},\"data\":{\"val_fraction\":x}}\n"
            "  --no-torch         skip the PyTorch baseline\n"
            "  --torch-script P   default " TORCH_SCRIPT "\n"
            "  --profile-iters K  iterations per profile round (default 10; 0: no profile)\n"
            "  --data-dir DIR     Fashion-MNIST's folder (default: found by nn)\n");
}

static int parse_args(options *o, int argc, char **argv)
{
    *o = (options){ .threads = 2, .device = -1, .torch = 1, .profile_iters = 10,
                    .preset = "three_layer_convnet", .torch_script = TORCH_SCRIPT };
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int ok = 1;
        if (strcmp(a, "--no-torch") == 0) {
            o->torch = 0;
            continue;
        }
        if (!v)
            ok = 0;
        else if (strcmp(a, "--iters") == 0)
            ok = bench_parse_int(v, 1, 100000000, &o->iters) == 0;
        else if (strcmp(a, "--threads") == 0)
            ok = bench_parse_int(v, 1, 1024, &o->threads) == 0;
        else if (strcmp(a, "--epochs") == 0)
            ok = bench_parse_int(v, 1, 10000, &o->epochs) == 0;
        else if (strcmp(a, "--profile-iters") == 0)
            ok = bench_parse_int(v, 0, 100000, &o->profile_iters) == 0;
        else if (strcmp(a, "--preset") == 0)
            o->preset = v;
        else if (strcmp(a, "--config") == 0)
            o->config = v;
        else if (strcmp(a, "--torch-script") == 0)
            o->torch_script = v;
        else if (strcmp(a, "--data-dir") == 0)
            o->data_dir = v;
        else if (strcmp(a, "--device") == 0) {
            if (strcmp(v, "cpu") == 0)
                o->device = -1;
            else if (strcmp(v, "cuda") == 0)
                o->device = 0;
            else
                ok = strncmp(v, "cuda:", 5) == 0 &&
                     bench_parse_int(v + 5, 0, 1023, &o->device) == 0;
        } else
            ok = 0;
        if (!ok) {
            usage();
            return -1;
        }
        i++;
    }
    if (strcmp(o->preset, "deep_convnet") == 0 && !o->config)
        o->config = DEEP_CONFIG;
    else if (strcmp(o->preset, "three_layer_convnet") != 0) {
        fprintf(stderr, "bench_train: unknown preset \"%s\" (three_layer_convnet, "
                "deep_convnet)\n", o->preset);
        return -1;
    }
    return 0;
}

static nn_status make_backend(nn_backend **b, const options *o, char *err)
{
    if (o->device < 0)
        return nn_cpu_backend_create(o->threads, b, err);
#ifdef CONVNET_HAVE_CUDA
    nn_status st = nn_cuda_backend_create(o->device, b, err);
    if (st == NN_OK) {
        char info[256];
        if (nn_cuda_device_info(o->device, info, sizeof info) == NN_OK)
            printf("device: cuda:%d %s\n", o->device, info);
    }
    return st;
#else
    snprintf(err, NN_ERRLEN, "no CUDA backend in this build");
    return NN_ERR_UNSUPPORTED;
#endif
}

int main(int argc, char **argv)
{
    options o;
    if (parse_args(&o, argc, argv) != 0)
        return 2;
#ifndef CONVNET_HAVE_CUDA
    if (o.device >= 0) {
        fprintf(stderr, "bench_train: --device cuda:%d: this build has no CUDA backend "
                "(nn_cuda was not built: configure with -DCONVNET_CUDA=ON and nvcc)\n",
                o.device);
        return 2;
    }
#endif
    char err[NN_ERRLEN] = "";
    int rc = 1;
    run_spec rs = { 0 };
    nn_backend *b = NULL;
    nn_dataset *train = NULL, *test = NULL;
    nn_model *m = NULL;
    nn_solver *s = NULL;
    hook_state hs = { 0 };
    layer_info L[MAX_LAYERS];

    if ((o.config ? spec_config(&rs, o.config, err) : spec_builtin(&rs, o.preset, err)) != 0) {
        fprintf(stderr, "bench_train: %s\n", err);
        free(rs.model_json);
        return 2;
    }
    if (o.epochs > 0)
        rs.sc.num_epochs = o.epochs;
    if (o.iters > 0)
        rs.sc.max_iterations = o.iters;

    /* ---- set up: backend, data, model, solver ---- */
    nn_status st;
    if ((st = make_backend(&b, &o, err)) != NN_OK) {
        fprintf(stderr, "bench_train: backend: %s\n", err);
        rc = o.device >= 0 ? 2 : 1;
        goto out;
    }
    /* No nn_blas_set_threads(T) here: the CPU backend owns its T threads
     * and keeps the BLAS single-threaded inside them (backend_cpu.c); a
     * T-threaded BLAS on top oversubscribes the cores (measured: the deep
     * config's conv backward over 10x slower). */
    if (o.device >= 0 && nn_blas_init(err) != NN_OK)
        err[0] = 0;   /* only the torch kernel name needs it on a GPU run */
    double rss_start = proc_status_bytes("VmRSS"), load_start = loadavg();
    printf("backend: %s; %d threads; blas: %s; load average %.2f\n", nn_backend_name(b),
           o.threads, nn_blas_info(), load_start);

    double t0 = bench_now_s();
    if ((st = nn_dataset_load_fashion_mnist(&train, &test, o.data_dir, err)) != NN_OK) {
        fprintf(stderr, "bench_train: data: %s\n", err);
        goto out;
    }
    nn_split tr, va, te = nn_dataset_all(test);
    float mean[NN_DATASET_MAX_CHANNELS];
    if (nn_dataset_split(&tr, &va, train, rs.val_fraction, 0, err) != NN_OK ||
        nn_dataset_channel_mean(mean, &tr, err) != NN_OK) {
        fprintf(stderr, "bench_train: split: %s\n", err);
        goto out;
    }
    printf("data: fashion-mnist train %d, val %d, test %d (mean %.4f), loaded in %.2f s\n",
           tr.count, va.count, te.count, mean[0], bench_now_s() - t0);

    nn_model_config mc = { .channels = train->c, .height = train->h, .width = train->w,
                           .num_classes = train->num_classes,
                           .max_batch = rs.sc.batch_size, .seed = rs.sc.seed };
    if (nn_model_create(&m, b, rs.model_json, &mc, err) != NN_OK) {
        fprintf(stderr, "bench_train: model: %s\n", err);
        goto out;
    }
    int nl = describe_layers(L, MAX_LAYERS, nn_model_json(m), &mc, err);
    if (nl < 0) {
        fprintf(stderr, "bench_train: %s\n", err);
        goto out;
    }
    double flop_fwd = 0, flop_bwd = 0;
    for (int i = 0; i < nl; i++)
        flop_fwd += L[i].fwd_flop, flop_bwd += L[i].bwd_flop;
    char *solver_json = nn_solver_config_json(&rs.sc);
    printf("model: %s\nparameters: %zu\nsolver: %s\n", nn_model_json(m),
           nn_model_num_params(m), solver_json ? solver_json : "?");
    free(solver_json);
    if (nn_solver_create(&s, m, &tr, &va, mean, &rs.sc, err) != NN_OK) {
        fprintf(stderr, "bench_train: solver: %s\n", err);
        goto out;
    }

    /* ---- train ---- */
    hs.cap = rs.sc.num_epochs + 2;
    hs.pts = calloc((size_t)hs.cap, sizeof *hs.pts);
    if (!hs.pts) {
        fprintf(stderr, "bench_train: out of memory\n");
        goto out;
    }
    nn_solver_hooks hooks = { .user = &hs, .on_epoch = on_epoch, .log = on_log };
    double cpu0 = cpu_seconds(RUSAGE_SELF);
    hs.t0 = bench_now_s();
    if (nn_solver_run(s, &hooks, err) != NN_OK) {
        fprintf(stderr, "bench_train: training: %s\n", err);
        goto out;
    }
    double wall = bench_now_s() - hs.t0;
    double cpu_share = (cpu_seconds(RUSAGE_SELF) - cpu0) / (wall * o.threads);
    nn_solver_progress p;
    nn_solver_progress_get(s, &p);
    double test_final, test_best;
    if (nn_solver_accuracy(s, &test_final, &te, 0, err) != NN_OK) {
        fprintf(stderr, "bench_train: test accuracy: %s\n", err);
        goto out;
    }
    test_best = test_final;
    if (p.best_val_acc > p.val_acc) {   /* the report's Solver keeps the best */
        if (nn_solver_use_best(s, err) != NN_OK ||
            nn_solver_accuracy(s, &test_best, &te, 0, err) != NN_OK) {
            fprintf(stderr, "bench_train: test accuracy (best params): %s\n", err);
            goto out;
        }
    }
    double rss_peak = peak_rss_bytes(), hwm = proc_status_bytes("VmHWM");

    printf("\ncurve:\n  %5s %9s %9s %9s %10s %10s %9s\n", "epoch", "iteration", "train_acc",
           "val_acc", "train_s", "wall_s", "lr");
    for (int i = 0; i < hs.n; i++)
        printf("  %5d %9ld %9.4f %9.4f %10.1f %10.1f %9.3g\n", hs.pts[i].epoch,
               hs.pts[i].iteration, hs.pts[i].train_acc, hs.pts[i].val_acc,
               hs.pts[i].elapsed_s, hs.pts[i].wall_s, hs.pts[i].lr);
    double ips = p.images_per_s, gflops = (flop_fwd + flop_bwd) * ips * 1e-9;
    printf("\ntraining: %ld iterations of %d in %.2f s (accuracy checks excluded; %.1f s "
           "wall) = %.1f images/s, %.2f ms/iteration; got %.0f%% of %d cores\n",
           p.iteration, rs.sc.batch_size, p.elapsed_s, wall, ips,
           p.elapsed_s * 1e3 / (double)(p.iteration ? p.iteration : 1), 100 * cpu_share,
           o.threads);
    printf("accuracy: val %.4f (best %.4f), test %.4f", p.val_acc, p.best_val_acc, test_final);
    if (test_best != test_final)
        printf(", test with the best-val params %.4f", test_best);
    printf("\n");

    /* ---- memory ---- */
    const size_t P = nn_model_num_params(m), R = sizeof(nn_real);
    const size_t nbuf = nn_model_buffers(m)->size;
    const int slots = nn_optim_state_slots(rs.sc.optim.rule);
    double data_b = 0;
    const nn_dataset *sets[2] = { train, test };
    for (int i = 0; i < 2; i++)
        data_b += (double)sets[i]->n * sets[i]->c * sets[i]->h * sets[i]->w +
                  (double)sets[i]->n * sizeof *sets[i]->labels;
    double params_b = (double)(P + nbuf) * R, grads_b = (double)P * R;
    double state_b = (double)slots * P * R, best_b = (double)(P + nbuf) * R;
    double act_b = (double)nn_model_bytes(m) - (double)(2 * P + nbuf) * R;
    size_t img = (size_t)mc.channels * mc.height * mc.width;
    double solver_b = (double)rs.sc.batch_size * (img + 1) * R +
                      2.0 * tr.count * sizeof(int) +
                      (double)rs.sc.batch_size * (sizeof(int) + mc.num_classes * R);
    double acc_b = data_b + params_b + grads_b + state_b + best_b + act_b + solver_b;
    int on_host = o.device < 0;
    printf("\nmemory (MB = 2^20 bytes):\n");
    printf("  data (uint8 images + uint16 labels, train+test) %8.1f\n", data_b / MB);
    printf("  parameters (+ buffers)                           %8.1f\n", params_b / MB);
    printf("  gradients                                        %8.1f\n", grads_b / MB);
    printf("  optimizer state (%d x params)                     %8.1f\n", slots,
           state_b / MB);
    printf("  best-val parameters (+ buffers)                  %8.1f\n", best_b / MB);
    printf("  activations + their grads + scratch + im2col     %8.1f\n", act_b / MB);
    printf("  solver batch and index buffers                   %8.1f\n", solver_b / MB);
    printf("  accounted                                        %8.1f%s\n", acc_b / MB,
           on_host ? "" : " (model and solver terms are on the GPU)");
    printf("  peak RSS %.1f (VmHWM %.1f); RSS at start (code, libc, BLAS) %.1f, "
           "not accounted\n", rss_peak / MB, hwm / MB, rss_start / MB);
    if (!on_host)
        acc_b = data_b + rs.sc.batch_size * (img + 1) * R;

    /* ---- profile ---- */
    if (o.profile_iters > 0 &&
        profile(m, &rs, &tr, mean, L, nl, o.profile_iters,
                p.elapsed_s * 1e3 / (double)(p.iteration ? p.iteration : 1), err) != 0) {
        fprintf(stderr, "bench_train: profile: %s\n", err);
        goto out;
    }

    /* ---- PyTorch ---- */
    torch_result tq = { .images_per_s = NAN, .test_acc = NAN, .fwd_s = NAN };
    if (!o.torch)
        printf("\ntorch: skipped (--no-torch)\n");
    else if (!rs.torch_peer)
        printf("\ntorch: skipped (the peer script trains only the report's "
               "three_layer_convnet run)\n");
    else
        run_torch(&tq, o.torch_script, &o, &rs.sc);
    if (tq.ok)
        printf("torch got %.0f%% of %d cores over its run (data loading and accuracy "
               "included)\n", 100 * tq.cpu_share, o.threads);
    if (tq.ok && isfinite(tq.fwd_s) && tq.images > 0) {
        double it = tq.images / rs.sc.batch_size;
        printf("torch breakdown per iteration: forward+loss %.2f ms, backward %.2f ms, "
               "adam %.2f ms, other %.2f ms\n", tq.fwd_s * 1e3 / it, tq.bwd_s * 1e3 / it,
               tq.step_s * 1e3 / it, tq.other_s * 1e3 / it);
    }

    /* ---- GFLOP/s against the BLAS peak ----
     * Last, because it sets the BLAS to T threads, which the CPU backend
     * must not run under (see above). */
    double peak = 0;
    printf("\nflops: %.2f MFLOP/image (forward %.2f, backward %.2f; GEMM-shaped work only: "
           "element-wise layers, loss and optimizer not counted)\n",
           (flop_fwd + flop_bwd) * 1e-6, flop_fwd * 1e-6, flop_bwd * 1e-6);
    if (on_host) {
        nn_blas_set_threads(o.threads);
        peak = sgemm_peak(2048, 3);
        printf("flops: training reached %.1f GFLOP/s = %.0f%% of the sgemm 2048^3 peak "
               "%.1f GFLOP/s (%d BLAS threads)\n", gflops, peak > 0 ? 100 * gflops / peak : 0,
               peak, o.threads);
    } else {
        printf("flops: training reached %.1f GFLOP/s on the device\n", gflops);
    }

    /* ---- results ---- */
    char tshare[32] = "na";
    if (tq.ok)
        snprintf(tshare, sizeof tshare, "%.2f", tq.cpu_share);
    /* This run itself adds about T to the load average. */
    double load_end = loadavg();
    printf("\nload average (1 min): %.2f at start, %.2f at the end%s\n", load_start, load_end,
           fmax(load_start, load_end) > o.threads + 1.0
               ? ": other processes shared the cores; times are inflated" : "");
    printf("goals: images/s ratio to PyTorch >= 4 with test acc >= 0.84 after one epoch "
           "(three_layer_convnet); test acc >= 0.935 within 15 min (deep_convnet); "
           "peak RSS <= 1.5x accounted\n");
    printf("bench=train_detail preset=%s device=%s threads=%d iterations=%ld epochs=%d "
           "train_time_s=%.3f wall_s=%.3f val_acc=%.4f test_acc_final=%.4f "
           "gflops=%.2f blas_peak_gflops=%.1f loadavg=%.2f,%.2f cpu_share=%.2f "
           "torch_cpu_share=%s\n", rs.name, on_host ? "cpu" : "cuda", o.threads,
           p.iteration, p.epoch, p.elapsed_s, wall, p.val_acc, test_final, gflops, peak,
           load_start, load_end, cpu_share, tshare);
    printf("bench=memory peak_rss_mb=%.1f accounted_mb=%.1f ratio=%.2f\n", rss_peak / MB,
           acc_b / MB, rss_peak / acc_b);
    char tips[32] = "na", tratio[32] = "na";
    if (tq.ok) {
        snprintf(tips, sizeof tips, "%.1f", tq.images_per_s);
        snprintf(tratio, sizeof tratio, "%.2f", ips / tq.images_per_s);
    }
    printf("bench=train preset=%s images_per_s=%.1f test_acc=%.4f torch_images_per_s=%s "
           "ratio=%s\n", rs.name, ips, test_best, tips, tratio);
    rc = 0;
out:
    nn_solver_free(s);
    nn_model_free(m);
    nn_dataset_free(train);
    nn_dataset_free(test);
    nn_backend_free(b);
    free(rs.model_json);
    free(hs.pts);
    return rc;
}
