/* solver.c: the training loop (the report's Solver), its configuration as
 * JSON, accuracy checks, and checkpoints that resume step for step.
 *
 * Determinism: one nn_rng stream drives shuffling and augmentation; the
 * state at the start of each epoch is kept so a restored solver can redraw
 * that epoch's permutation. Dropout draws from a hash of (seed, iteration).
 * Time spent in accuracy checks is not counted as training time. */
#define _POSIX_C_SOURCE 200809L
#include <cjson/cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "nn/checkpoint.h"
#include "nn/solver.h"
#include "internal.h"
#include "jsonw.h"
#include "solver_internal.h"

struct nn_solver {
    nn_model *m;
    nn_backend *b;
    nn_split train, val;
    float mean[NN_DATASET_MAX_CHANNELS];
    nn_solver_config cfg;
    long per_epoch, total;        /* iterations per epoch, in all */
    long t;                       /* iterations done */
    int epoch;                    /* epochs completed */
    double lr;                    /* in force now */
    nn_rng rng, rng_epoch;        /* now; at the start of the current epoch */
    int *perm;                    /* this epoch's order of the training split */
    int *train_subset;            /* fixed sample for train accuracy */
    int n_train_subset;
    int *eval_idx;                /* scratch for gathering evaluation batches */
    const nn_solver_hooks *hooks; /* nn_solver_run's, while it runs */
    nn_tensor x_host, y_host;     /* one batch on the host */
    nn_tensor x_dev, y_dev;       /* the same on the device (== host on the CPU) */
    int dev_owned;
    /* A device backend keeps the training and validation images on the
     * device when they fit: normalised and uploaded once, then each batch
     * is gathered there from a plan of (index, dy, dx, flip) per sample,
     * drawn as nn_dataset_gather draws. x.data NULL: that split streams
     * from the host instead. */
    struct resident {
        const nn_split *split;
        nn_tensor x, y;
    } res[2];
    nn_tensor plan_host, plan_dev; /* (max_batch, 4) */
    nn_tensor state;              /* optimizer state, slots x params */
    nn_tensor best_params, best_buffers;
    double loss, train_acc, val_acc, best_val_acc;
    double elapsed;               /* training seconds */
    int checked_first;            /* the accuracy check after iteration 1 done */
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- configuration ------------------------------------------------------ */

nn_solver_config nn_solver_defaults(void)
{
    nn_solver_config c = {
        .optim = nn_optim_defaults(NN_ADAM),
        .lr_decay = 1.0,
        .batch_size = 64,
        .num_epochs = 1,
        .max_iterations = 0,
        .seed = 0,
        .print_every = 50,
        .num_train_samples = 1000,
        .num_val_samples = 0,
    };
    return c;
}

static nn_status num_field(double *out, const cJSON *o, const char *key, double lo,
                           double hi, int lo_open, char *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v)
        return NN_OK;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return nn_fail(err, NN_ERR_ARG, "solver.%s: must be a number", key);
    double x = v->valuedouble;
    if ((lo_open ? !(x > lo) : !(x >= lo)) || !(x <= hi))
        return nn_fail(err, NN_ERR_ARG, "solver.%s: must be %s %g and <= %g, got %g", key,
                       lo_open ? ">" : ">=", lo, hi, x);
    *out = x;
    return NN_OK;
}

static nn_status int_field(long *out, const cJSON *o, const char *key, long lo,
                           long hi, char *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v)
        return NN_OK;
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble))
        return nn_fail(err, NN_ERR_ARG, "solver.%s: must be an integer", key);
    if (v->valuedouble < (double)lo || v->valuedouble > (double)hi)
        return nn_fail(err, NN_ERR_ARG, "solver.%s: must be in %ld..%ld, got %g", key, lo,
                       hi, v->valuedouble);
    *out = (long)v->valuedouble;
    return NN_OK;
}

nn_status nn_solver_config_parse(nn_solver_config *cfg, const char *json, char *err)
{
    if (!cfg || !json)
        return nn_fail(err, NN_ERR_ARG, "solver: config or JSON is NULL");
    cJSON *o = cJSON_Parse(json);
    nn_status st = NN_OK;
    nn_solver_config c = *cfg;
    if (!cJSON_IsObject(o)) {
        st = nn_fail(err, NN_ERR_ARG, "solver: must be a JSON object");
        goto done;
    }
    static const char *const known[] = {
        "update_rule", "learning_rate", "momentum", "decay_rate", "beta1", "beta2",
        "epsilon", "lr_decay", "batch_size", "epochs", "max_iterations", "seed",
        "print_every", "num_train_samples", "num_val_samples", "augment", NULL };
    for (const cJSON *it = o->child; it; it = it->next) {
        int ok = 0;
        for (int i = 0; known[i]; i++)
            ok |= it->string && strcmp(it->string, known[i]) == 0;
        if (!ok) {
            st = nn_fail(err, NN_ERR_ARG, "solver.%.60s: unknown field",
                         it->string ? it->string : "?");
            goto done;
        }
    }
    const cJSON *rule = cJSON_GetObjectItemCaseSensitive(o, "update_rule");
    if (rule) {
        int r = cJSON_IsString(rule) ? nn_update_rule_parse(rule->valuestring) : -1;
        if (r < 0) {
            st = nn_fail(err, NN_ERR_ARG, "solver.update_rule: must be one of sgd, "
                         "sgd_momentum, rmsprop, adam");
            goto done;
        }
        double lr = c.optim.learning_rate;
        c.optim = nn_optim_defaults((nn_update_rule)r);
        if (!cJSON_GetObjectItemCaseSensitive(o, "learning_rate") && r == (int)cfg->optim.rule)
            c.optim.learning_rate = lr;
    }
    long batch = c.batch_size, epochs = c.num_epochs, maxit = c.max_iterations,
         print = c.print_every, ntrain = c.num_train_samples, nval = c.num_val_samples,
         seed = (long)c.seed;
    if ((st = num_field(&c.optim.learning_rate, o, "learning_rate", 0, 10, 1, err)) ||
        (st = num_field(&c.optim.momentum, o, "momentum", 0, 1, 0, err)) ||
        (st = num_field(&c.optim.decay_rate, o, "decay_rate", 0, 1, 0, err)) ||
        (st = num_field(&c.optim.beta1, o, "beta1", 0, 0.999999, 0, err)) ||
        (st = num_field(&c.optim.beta2, o, "beta2", 0, 0.999999999, 0, err)) ||
        (st = num_field(&c.optim.epsilon, o, "epsilon", 0, 1, 1, err)) ||
        (st = num_field(&c.lr_decay, o, "lr_decay", 0, 1, 1, err)) ||
        (st = int_field(&batch, o, "batch_size", 1, 4096, err)) ||
        (st = int_field(&epochs, o, "epochs", 1, 10000, err)) ||
        (st = int_field(&maxit, o, "max_iterations", 0, 1000000000L, err)) ||
        (st = int_field(&seed, o, "seed", 0, 2147483647L, err)) ||
        (st = int_field(&print, o, "print_every", 0, 1000000000L, err)) ||
        (st = int_field(&ntrain, o, "num_train_samples", 0, 1000000000L, err)) ||
        (st = int_field(&nval, o, "num_val_samples", 0, 1000000000L, err)))
        goto done;
    c.batch_size = (int)batch;
    c.num_epochs = (int)epochs;
    c.max_iterations = maxit;
    c.seed = (uint64_t)seed;
    c.print_every = (int)print;
    c.num_train_samples = (int)ntrain;
    c.num_val_samples = (int)nval;
    const cJSON *aug = cJSON_GetObjectItemCaseSensitive(o, "augment");
    if (aug) {
        if (!cJSON_IsObject(aug)) {
            st = nn_fail(err, NN_ERR_ARG, "solver.augment: must be an object");
            goto done;
        }
        for (const cJSON *it = aug->child; it; it = it->next)
            if (!it->string || (strcmp(it->string, "crop_pad") && strcmp(it->string, "hflip"))) {
                st = nn_fail(err, NN_ERR_ARG, "solver.augment.%.60s: unknown field",
                             it->string ? it->string : "?");
                goto done;
            }
        const cJSON *cp = cJSON_GetObjectItemCaseSensitive(aug, "crop_pad");
        const cJSON *hf = cJSON_GetObjectItemCaseSensitive(aug, "hflip");
        if (cp) {
            if (!cJSON_IsNumber(cp) || cp->valuedouble != floor(cp->valuedouble) ||
                cp->valuedouble < 0 || cp->valuedouble > 16) {
                st = nn_fail(err, NN_ERR_ARG, "solver.augment.crop_pad: must be an integer "
                             "in 0..16");
                goto done;
            }
            c.augment.crop_pad = (int)cp->valuedouble;
        }
        if (hf) {
            if (!cJSON_IsBool(hf)) {
                st = nn_fail(err, NN_ERR_ARG, "solver.augment.hflip: must be true or false");
                goto done;
            }
            c.augment.hflip = cJSON_IsTrue(hf);
        }
    }
    *cfg = c;
done:
    cJSON_Delete(o);
    return st;
}

char *nn_solver_config_json(const nn_solver_config *c)
{
    cJSON *o = cJSON_CreateObject();
    int ok = o != NULL;
    jw_str(&ok, o, "update_rule", nn_update_rule_name(c->optim.rule));
    jw_num(&ok, o, "learning_rate", c->optim.learning_rate);
    jw_num(&ok, o, "momentum", c->optim.momentum);
    jw_num(&ok, o, "decay_rate", c->optim.decay_rate);
    jw_num(&ok, o, "beta1", c->optim.beta1);
    jw_num(&ok, o, "beta2", c->optim.beta2);
    jw_num(&ok, o, "epsilon", c->optim.epsilon);
    jw_num(&ok, o, "lr_decay", c->lr_decay);
    jw_num(&ok, o, "batch_size", c->batch_size);
    jw_num(&ok, o, "epochs", c->num_epochs);
    jw_num(&ok, o, "max_iterations", (double)c->max_iterations);
    jw_num(&ok, o, "seed", (double)c->seed);
    jw_num(&ok, o, "print_every", c->print_every);
    jw_num(&ok, o, "num_train_samples", c->num_train_samples);
    jw_num(&ok, o, "num_val_samples", c->num_val_samples);
    cJSON *a = jw_object(&ok, o, "augment");
    jw_num(&ok, a, "crop_pad", c->augment.crop_pad);
    jw_bool(&ok, a, "hflip", c->augment.hflip);
    return jw_finish(ok, o);
}

/* ---- creation ----------------------------------------------------------- */

static nn_status dev_alloc(nn_solver *s, nn_tensor *t, size_t n, char *err)
{
    *t = nn_tensor_1d(NULL, (int)(n ? n : 1));
    nn_status st = nn_backend_alloc(s->b, t);
    if (st)
        return nn_fail(err, st, "%s", nn_backend_errmsg(s->b));
    return NN_OK;
}

/* The most a split may take on the device (more streams from the host),
 * and what must stay free beside it for cuBLAS and the step's temporaries. */
#define RESIDENT_MAX_BYTES ((size_t)4 << 30)
#define RESIDENT_HEADROOM_BYTES ((size_t)256 << 20)

/* Allocates t (shape set) on the device; NN_ERR_NOMEM is returned quietly
 * (the caller streams instead), other failures with their message. */
static nn_status try_alloc(nn_solver *s, nn_tensor *t, char *err)
{
    nn_status st = nn_backend_alloc(s->b, t);
    if (st != NN_OK && st != NN_ERR_NOMEM)
        return nn_fail(err, st, "%s", nn_backend_errmsg(s->b));
    return st;
}

/* Uploads split's images, normalised, and labels for nn_backend_gather, a
 * batch at a time through the host batch buffers. Best effort, after
 * everything training needs is allocated: leaves r->x.data NULL (the split
 * streams from the host) when the backend has no gather, the split is
 * empty or too big, or the device would be left with less than the
 * headroom. Plans carry indices as nn_real, exact up to 2^24 in float. */
static nn_status make_resident(nn_solver *s, struct resident *r, const nn_split *split,
                               char *err)
{
    const nn_model_config *mc = nn_model_cfg(s->m);
    const size_t img = (size_t)mc->channels * mc->height * mc->width;
    r->split = split;
    if (split->count < 1 || !nn_backend_supports(s->b, NN_OP_GATHER) ||
        (size_t)split->count * img * sizeof(nn_real) > RESIDENT_MAX_BYTES ||
        (sizeof(nn_real) == 4 && split->count > (1 << 24)))
        return NN_OK;
    nn_status st;
    if (!s->plan_host.data) {
        s->plan_host = nn_tensor_2d(malloc(sizeof(nn_real) * 4 * (size_t)mc->max_batch),
                                    mc->max_batch, 4);
        if (!s->plan_host.data)
            return nn_fail(err, NN_ERR_NOMEM, "out of memory");
    }
    if (!s->plan_dev.data) {
        s->plan_dev = s->plan_host;
        s->plan_dev.data = NULL;
        if ((st = try_alloc(s, &s->plan_dev, err)))
            return st == NN_ERR_NOMEM ? NN_OK : st;
    }
    r->x = nn_tensor_4d(NULL, split->count, mc->channels, mc->height, mc->width);
    r->y = nn_tensor_1d(NULL, split->count);
    nn_tensor room = nn_tensor_1d(NULL, (int)(RESIDENT_HEADROOM_BYTES / sizeof(nn_real)));
    if ((st = try_alloc(s, &r->x, err)) == NN_OK && (st = try_alloc(s, &r->y, err)) == NN_OK)
        st = try_alloc(s, &room, err);
    nn_backend_release(s->b, &room);
    if (st != NN_OK) {
        nn_backend_release(s->b, &r->x);
        nn_backend_release(s->b, &r->y);
        r->x.data = r->y.data = NULL;
        return st == NN_ERR_NOMEM ? NN_OK : st;
    }
    for (int i0 = 0; i0 < split->count; i0 += mc->max_batch) {
        const int n = split->count - i0 < mc->max_batch ? split->count - i0 : mc->max_batch;
        for (int j = 0; j < n; j++)
            s->eval_idx[j] = i0 + j;
        NN_TRY(nn_dataset_gather(s->x_host.data, s->y_host.data, split, s->eval_idx, n,
                                 s->mean, NULL, NULL, err));
        nn_tensor xh = nn_tensor_4d(s->x_host.data, n, mc->channels, mc->height, mc->width);
        nn_tensor yh = nn_tensor_1d(s->y_host.data, n), xd = xh, yd = yh;
        xd.data = r->x.data + (size_t)i0 * img;
        yd.data = r->y.data + i0;
        xd.device = yd.device = r->x.device;
        if ((st = nn_tensor_copy(s->b, &xd, &xh)) || (st = nn_tensor_copy(s->b, &yd, &yh)))
            return nn_fail(err, st, "%s", nn_backend_errmsg(s->b));
    }
    return NN_OK;
}

nn_status nn_solver_create(nn_solver **out, nn_model *m, const nn_split *train,
                           const nn_split *val, const float *mean,
                           const nn_solver_config *cfg, char *err)
{
    if (!out || !m || !train || !train->data || !mean || !cfg)
        return nn_fail(err, NN_ERR_ARG, "solver: NULL argument");
    *out = NULL;
    const nn_model_config *mc = nn_model_cfg(m);
    const nn_dataset *d = train->data;
    if (d->c != mc->channels || d->h != mc->height || d->w != mc->width)
        return nn_fail(err, NN_ERR_SHAPE, "data set images are %dx%dx%d, the model takes "
                       "%dx%dx%d", d->c, d->h, d->w, mc->channels, mc->height, mc->width);
    if (d->num_classes > mc->num_classes)
        return nn_fail(err, NN_ERR_SHAPE, "data set has %d classes, the model %d",
                       d->num_classes, mc->num_classes);
    if (cfg->batch_size < 1 || cfg->batch_size > mc->max_batch)
        return nn_fail(err, NN_ERR_ARG, "solver.batch_size: must be in 1..%d, got %d",
                       mc->max_batch, cfg->batch_size);
    if (cfg->num_epochs < 1)
        return nn_fail(err, NN_ERR_ARG, "solver.epochs: must be >= 1");
    if (train->count < 1)
        return nn_fail(err, NN_ERR_ARG, "solver: the training split is empty");
    if (cfg->augment.crop_pad > d->h || cfg->augment.crop_pad > d->w)
        return nn_fail(err, NN_ERR_ARG, "solver.augment.crop_pad: larger than the image");

    nn_solver *s = calloc(1, sizeof *s);
    if (!s)
        return nn_fail(err, NN_ERR_NOMEM, "out of memory");
    nn_status st;
    s->m = m;
    s->b = nn_model_backend(m);
    s->train = *train;
    if (val)
        s->val = *val;
    memcpy(s->mean, mean, sizeof(float) * (size_t)d->c);
    s->cfg = *cfg;
    if (s->cfg.num_train_samples <= 0)
        s->cfg.num_train_samples = 1000;
    s->per_epoch = train->count / cfg->batch_size;
    if (s->per_epoch < 1)
        s->per_epoch = 1;
    s->total = s->per_epoch * cfg->num_epochs;
    if (cfg->max_iterations > 0 && cfg->max_iterations < s->total)
        s->total = cfg->max_iterations;
    s->lr = cfg->optim.learning_rate;
    s->train_acc = s->val_acc = s->best_val_acc = -1;
    nn_rng_seed(&s->rng, cfg->seed ^ 0x5eed5eed5eedULL);
    s->rng_epoch = s->rng;

    const int B = mc->max_batch;
    const size_t img = (size_t)mc->channels * mc->height * mc->width;
    s->perm = malloc(sizeof(int) * (size_t)train->count);
    s->n_train_subset = train->count < s->cfg.num_train_samples ? train->count
                                                                 : s->cfg.num_train_samples;
    s->train_subset = malloc(sizeof(int) * (size_t)train->count);
    s->eval_idx = malloc(sizeof(int) * (size_t)B);
    s->x_host = nn_tensor_4d(malloc(sizeof(nn_real) * img * (size_t)B), B, mc->channels,
                             mc->height, mc->width);
    s->y_host = nn_tensor_1d(malloc(sizeof(nn_real) * (size_t)B), B);
    if (!s->perm || !s->train_subset || !s->eval_idx || !s->x_host.data || !s->y_host.data) {
        st = nn_fail(err, NN_ERR_NOMEM, "out of memory");
        goto fail;
    }
    /* A fixed random subset for train accuracy, from its own stream so it
     * does not depend on the training order. */
    nn_rng sub;
    nn_rng_seed(&sub, cfg->seed ^ 0x7a1ULL);
    nn_split_shuffle(s->train_subset, train->count, &sub);
    if (nn_backend_device(s->b) == NN_DEVICE_CPU) {
        s->x_dev = s->x_host;
        s->y_dev = s->y_host;
    } else {
        s->x_dev = s->x_host;
        s->y_dev = s->y_host;
        s->x_dev.data = s->y_dev.data = NULL;
        if ((st = nn_backend_alloc(s->b, &s->x_dev)) || (st = nn_backend_alloc(s->b, &s->y_dev))) {
            st = nn_fail(err, st, "%s", nn_backend_errmsg(s->b));
            goto fail;
        }
        s->dev_owned = 1;
    }
    const size_t P = nn_model_num_params(m);
    const size_t slots = (size_t)nn_optim_state_slots(cfg->optim.rule);
    if ((st = dev_alloc(s, &s->state, slots * P, err)) ||
        (st = dev_alloc(s, &s->best_params, P, err)) ||
        (st = dev_alloc(s, &s->best_buffers, nn_model_buffers(m)->size, err)))
        goto fail;
    if (s->dev_owned && ((st = make_resident(s, &s->res[0], &s->train, err)) ||
                         (st = make_resident(s, &s->res[1], &s->val, err))))
        goto fail;
    *out = s;
    return NN_OK;
fail:
    nn_solver_free(s);
    return st;
}

void nn_solver_free(nn_solver *s)
{
    if (!s)
        return;
    if (s->dev_owned) {
        nn_backend_release(s->b, &s->x_dev);
        nn_backend_release(s->b, &s->y_dev);
        nn_backend_release(s->b, &s->plan_dev);
        for (int k = 0; k < 2; k++) {
            nn_backend_release(s->b, &s->res[k].x);
            nn_backend_release(s->b, &s->res[k].y);
        }
    }
    free(s->plan_host.data);
    nn_backend_release(s->b, &s->state);
    nn_backend_release(s->b, &s->best_params);
    nn_backend_release(s->b, &s->best_buffers);
    free(s->x_host.data);
    free(s->y_host.data);
    free(s->perm);
    free(s->train_subset);
    free(s->eval_idx);
    free(s);
}

/* ---- training ----------------------------------------------------------- */

#define BK(s, expr)                                                              \
    do {                                                                         \
        nn_status _s = (expr);                                                   \
        if (_s != NN_OK)                                                         \
            return nn_fail(err, _s, "%s", nn_backend_errmsg((s)->b));            \
    } while (0)

/* Gathers n samples of split (indices idx) into the device batch, and
 * their labels into y_host. */
static nn_status load_batch(nn_solver *s, const nn_split *split, const int *idx, int n,
                            const nn_augment *aug, char *err)
{
    /* By content: callers of nn_solver_accuracy pass their own copies. */
    const struct resident *r = NULL;
    for (int k = 0; k < 2 && !r; k++)
        if (s->res[k].x.data && s->res[k].split->data == split->data &&
            s->res[k].split->begin == split->begin && s->res[k].split->count == split->count)
            r = &s->res[k];
    if (r) {
        nn_real *plan = s->plan_host.data;
        for (int j = 0; j < n; j++) {
            int dy, dx, flip;
            if (idx[j] < 0 || idx[j] >= split->count)
                return nn_fail(err, NN_ERR_ARG, "idx[%d] = %d outside the split's 0..%d",
                               j, idx[j], split->count - 1);
            nn_augment_draw(aug, &s->rng, &dy, &dx, &flip);
            plan[4 * j] = (nn_real)idx[j];
            plan[4 * j + 1] = (nn_real)dy;
            plan[4 * j + 2] = (nn_real)dx;
            plan[4 * j + 3] = (nn_real)flip;
            s->y_host.data[j] = (nn_real)split->data->labels[split->begin + idx[j]];
        }
        const nn_model_config *mc = nn_model_cfg(s->m);
        nn_tensor ph = nn_tensor_2d(plan, n, 4), pd = ph;
        pd.data = s->plan_dev.data;
        pd.device = s->plan_dev.device;
        nn_tensor xd = nn_tensor_4d(s->x_dev.data, n, mc->channels, mc->height, mc->width);
        nn_tensor yd = nn_tensor_1d(s->y_dev.data, n);
        xd.device = yd.device = s->x_dev.device;
        BK(s, nn_tensor_copy(s->b, &pd, &ph));
        BK(s, nn_backend_gather(s->b, &xd, &yd, &r->x, &r->y, &pd));
        return NN_OK;
    }
    NN_TRY(nn_dataset_gather(s->x_host.data, s->y_host.data, split, idx, n, s->mean,
                             aug, &s->rng, err));
    if (s->dev_owned) {
        const nn_model_config *mc = nn_model_cfg(s->m);
        nn_tensor xh = nn_tensor_4d(s->x_host.data, n, mc->channels, mc->height, mc->width);
        nn_tensor xd = xh, yh = nn_tensor_1d(s->y_host.data, n), yd = yh;
        xd.data = s->x_dev.data;
        xd.device = s->x_dev.device;
        yd.data = s->y_dev.data;
        yd.device = s->y_dev.device;
        BK(s, nn_tensor_copy(s->b, &xd, &xh));
        BK(s, nn_tensor_copy(s->b, &yd, &yh));
    }
    return NN_OK;
}

nn_status nn_solver_step(nn_solver *s, double *loss, char *err)
{
    if (s->t >= s->total)
        return nn_fail(err, NN_ERR_ARG, "solver: training is already done");
    const int B = s->cfg.batch_size;
    const long it = s->t % s->per_epoch;
    if (it == 0) {
        s->rng_epoch = s->rng;
        nn_split_shuffle(s->perm, s->train.count, &s->rng);
    }
    /* The last batch of an epoch may be short when count < batch_size. */
    int n = B;
    if ((long)B * (it + 1) > s->train.count)
        n = s->train.count - (int)((long)B * it);
    NN_TRY(load_batch(s, &s->train, s->perm + it * B, n, &s->cfg.augment, err));
    const nn_model_config *mc = nn_model_cfg(s->m);
    nn_tensor x = s->x_dev, y = s->y_dev;
    x.shape[0] = n;
    x.size = (size_t)n * mc->channels * mc->height * mc->width;
    y.shape[0] = n;
    y.size = (size_t)n;
    uint64_t dseed = s->cfg.seed * 0x9e3779b97f4a7c15ULL + (uint64_t)s->t;
    NN_TRY(nn_model_loss(s->m, &s->loss, &x, &y, dseed, err));
    if (!isfinite(s->loss))
        return nn_fail(err, NN_ERR_ARG, "loss diverged to %g at iteration %ld; lower "
                       "solver.learning_rate", s->loss, s->t + 1);
    nn_optim_params op = s->cfg.optim;
    op.learning_rate = s->lr;
    BK(s, nn_backend_optim_step(s->b, nn_model_params(s->m), &s->state,
                                nn_model_grads(s->m), &op, s->t + 1));
    s->t++;
    if (s->t % s->per_epoch == 0) {
        s->epoch++;
        s->lr *= s->cfg.lr_decay;
    }
    if (loss)
        *loss = s->loss;
    return NN_OK;
}

int nn_solver_done(const nn_solver *s) { return s->t >= s->total; }

void nn_solver_progress_get(const nn_solver *s, nn_solver_progress *p)
{
    memset(p, 0, sizeof *p);
    p->iteration = s->t;
    p->num_iterations = s->total;
    p->epoch = s->epoch;
    p->num_epochs = s->cfg.num_epochs;
    p->loss = s->loss;
    p->learning_rate = s->lr;
    p->train_acc = s->train_acc;
    p->val_acc = s->val_acc;
    p->best_val_acc = s->best_val_acc;
    p->elapsed_s = s->elapsed;
    p->images_per_s = s->elapsed > 0 ? (double)s->t * s->cfg.batch_size / s->elapsed : 0;
}

nn_status nn_solver_accuracy(nn_solver *s, double *acc, const nn_split *split,
                             int num_samples, char *err)
{
    if (!acc || !split)
        return nn_fail(err, NN_ERR_ARG, "accuracy: NULL argument");
    int n = split->count;
    if (num_samples > 0 && num_samples < n)
        n = num_samples;
    if (n == 0) {
        *acc = -1;
        return NN_OK;
    }
    const int B = nn_model_cfg(s->m)->max_batch;
    const int K = nn_model_cfg(s->m)->num_classes;
    nn_real *scores = malloc(sizeof(nn_real) * (size_t)B * (size_t)K);
    if (!scores)
        return nn_fail(err, NN_ERR_NOMEM, "out of memory");
    const int *subset = split == &s->train ? s->train_subset : NULL;
    long correct = 0;
    nn_status st = NN_OK;
    for (int i = 0; i < n && st == NN_OK; i += B) {
        int nb = n - i < B ? n - i : B;
        for (int j = 0; j < nb; j++)
            s->eval_idx[j] = subset ? subset[i + j] : i + j;
        if ((st = load_batch(s, split, s->eval_idx, nb, NULL, err)))
            break;
        const nn_model_config *mc = nn_model_cfg(s->m);
        nn_tensor x = s->x_dev;
        x.shape[0] = nb;
        x.size = (size_t)nb * mc->channels * mc->height * mc->width;
        nn_tensor *sc;
        if ((st = nn_model_forward(s->m, &sc, &x, 0, 0, err)))
            break;
        nn_tensor hs = nn_tensor_2d(scores, nb, K);
        if ((st = nn_tensor_copy(s->b, &hs, sc))) {
            st = nn_fail(err, st, "%s", nn_backend_errmsg(s->b));
            break;
        }
        for (int j = 0; j < nb; j++) {
            int best = 0;
            for (int k = 1; k < K; k++)
                if (scores[(size_t)j * K + k] > scores[(size_t)j * K + best])
                    best = k;
            correct += best == (int)s->y_host.data[j];
        }
        if (s->hooks && s->hooks->between_batches)
            s->hooks->between_batches(s->hooks->user);
    }
    free(scores);
    if (st == NN_OK)
        *acc = (double)correct / n;
    return st;
}

static nn_status check_accuracies(nn_solver *s, char *err)
{
    NN_TRY(nn_solver_accuracy(s, &s->train_acc, &s->train, s->cfg.num_train_samples, err));
    NN_TRY(nn_solver_accuracy(s, &s->val_acc, &s->val, s->cfg.num_val_samples, err));
    double score = s->val.count > 0 ? s->val_acc : s->train_acc;
    if (score > s->best_val_acc) {
        s->best_val_acc = score;
        BK(s, nn_tensor_copy(s->b, &s->best_params, nn_model_params(s->m)));
        if (nn_model_buffers(s->m)->size)
            BK(s, nn_tensor_copy(s->b, &s->best_buffers, nn_model_buffers(s->m)));
    }
    return NN_OK;
}

static nn_status run_loop(nn_solver *s, const nn_solver_hooks *h, char *err)
{
    char line[160];
    nn_solver_progress p;
    while (s->t < s->total) {
        double t0 = now_s();
        NN_TRY(nn_solver_step(s, NULL, err));
        s->elapsed += now_s() - t0;
        if (h->log && s->cfg.print_every > 0 &&
            (s->t == 1 || s->t % s->cfg.print_every == 0 || s->t == s->total)) {
            snprintf(line, sizeof line, "(Time %.2f sec; Iteration %ld / %ld) loss: %f",
                     s->elapsed, s->t, s->total, s->loss);
            h->log(h->user, line);
        }
        nn_solver_progress_get(s, &p);
        int stop = h->on_iteration ? h->on_iteration(h->user, &p) : 0;
        int epoch_end = s->t % s->per_epoch == 0;
        if (s->t == 1 || epoch_end || s->t == s->total) {
            NN_TRY(check_accuracies(s, err));
            if (h->log) {
                snprintf(line, sizeof line, "(Epoch %d / %d) train acc: %f; val_acc: %f",
                         s->epoch, s->cfg.num_epochs, s->train_acc, s->val_acc);
                h->log(h->user, line);
            }
            nn_solver_progress_get(s, &p);
            p.epoch_end = epoch_end;
            if (h->on_epoch && h->on_epoch(h->user, &p))
                stop = 1;
        }
        if (stop)
            break;
    }
    return NN_OK;
}

nn_status nn_solver_run(nn_solver *s, const nn_solver_hooks *hooks, char *err)
{
    if (!s)
        return nn_fail(err, NN_ERR_ARG, "solver is NULL");
    static const nn_solver_hooks none;
    s->hooks = hooks ? hooks : &none;
    nn_status st = run_loop(s, s->hooks, err);
    s->hooks = NULL; /* accuracy checks outside a run call no hook */
    return st;
}

nn_status nn_solver_use_best(nn_solver *s, char *err)
{
    if (s->best_val_acc < 0)
        return NN_OK; /* never checked: the current parameters are all we have */
    BK(s, nn_tensor_copy(s->b, nn_model_params(s->m), &s->best_params));
    if (nn_model_buffers(s->m)->size)
        BK(s, nn_tensor_copy(s->b, nn_model_buffers(s->m), &s->best_buffers));
    return NN_OK;
}

/* ---- for solver_ckpt.c -------------------------------------------------- */

void solver_get_view(nn_solver *s, solver_view *v)
{
    v->model = s->m;
    v->cfg = &s->cfg;
    v->mean = s->mean;
    v->slots = nn_optim_state_slots(s->cfg.optim.rule);
    v->state = &s->state;
    v->best_params = &s->best_params;
    v->best_buffers = &s->best_buffers;
    v->t = &s->t;
    v->epoch = &s->epoch;
    v->lr = &s->lr;
    v->loss = &s->loss;
    v->train_acc = &s->train_acc;
    v->val_acc = &s->val_acc;
    v->best_val_acc = &s->best_val_acc;
    v->elapsed = &s->elapsed;
    v->rng = &s->rng;
    v->rng_epoch = &s->rng_epoch;
}

long solver_total(const nn_solver *s) { return s->total; }

void solver_redraw_epoch(nn_solver *s)
{
    if (s->t % s->per_epoch != 0) {
        nn_rng r = s->rng_epoch;
        nn_split_shuffle(s->perm, s->train.count, &r);
    }
}
