/* solver_ckpt.c: checkpoints of a model and its solver (nn_solver_save,
 * nn_solver_restore) and loading a model for serving (nn_model_load), on
 * top of the generic container in checkpoint.c. The metadata document is
 * described in docs/checkpoint.md. */
#define _POSIX_C_SOURCE 200809L
#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "nn/checkpoint.h"
#include "nn/solver.h"
#include "internal.h"
#include "jsonw.h"
#include "solver_internal.h" /* the solver's fields, through a view */

#ifdef NN_DOUBLE
#define DISK NN_F64
#else
#define DISK NN_F32
#endif

static void rng_to_json(int *ok, cJSON *o, const char *key, const nn_rng *r)
{
    char a[20], b[20];
    snprintf(a, sizeof a, "%016" PRIx64, r->s[0]);
    snprintf(b, sizeof b, "%016" PRIx64, r->s[1]);
    cJSON *arr = jw_array(ok, o, key);
    jw_str(ok, arr, NULL, a);
    jw_str(ok, arr, NULL, b);
}

static int rng_from_json(nn_rng *r, const cJSON *o, const char *key)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != 2)
        return -1;
    for (int i = 0; i < 2; i++) {
        const cJSON *v = cJSON_GetArrayItem(a, i);
        if (!cJSON_IsString(v))
            return -1;
        char *end;
        r->s[i] = strtoull(v->valuestring, &end, 16);
        if (*end || end == v->valuestring)
            return -1;
    }
    return 0;
}

static double num(const cJSON *o, const char *key, double def)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : def;
}

/* Host copy of a device tensor into dst (same size). */
static nn_status to_host(nn_backend *b, nn_real *dst, const nn_tensor *src, char *err)
{
    if (src->size == 0)
        return NN_OK;
    nn_tensor h = nn_tensor_1d(dst, (int)src->size);
    nn_tensor s1 = *src;
    s1.ndim = 1;
    s1.shape[0] = (int)src->size;
    nn_status st = nn_tensor_copy(b, &h, &s1);
    return st ? nn_fail(err, st, "%s", nn_backend_errmsg(b)) : NN_OK;
}

static nn_status to_dev(nn_backend *b, nn_tensor *dst, const nn_real *src, char *err)
{
    if (dst->size == 0)
        return NN_OK;
    nn_tensor h = nn_tensor_1d((nn_real *)src, (int)dst->size);
    nn_tensor d1 = *dst;
    d1.ndim = 1;
    d1.shape[0] = (int)dst->size;
    nn_status st = nn_tensor_copy(b, &d1, &h);
    return st ? nn_fail(err, st, "%s", nn_backend_errmsg(b)) : NN_OK;
}

nn_status nn_solver_save(nn_solver *s, const char *path,
                         const char *const *class_names, const char *extra_json,
                         char *err)
{
    solver_view v;
    solver_get_view(s, &v);
    nn_model *m = v.model;
    nn_backend *b = nn_model_backend(m);
    const nn_model_config *mc = nn_model_cfg(m);
    const int nt = nn_model_num_tensors(m);
    nn_ckpt_tensor *tt = calloc((size_t)nt + 3, sizeof *tt);
    size_t total = nn_model_num_params(m) + nn_model_buffers(m)->size + v.state->size +
                   v.best_params->size + v.best_buffers->size;
    nn_real *host = malloc(sizeof(nn_real) * (total ? total : 1));
    cJSON *meta = cJSON_CreateObject();
    char *meta_s = NULL, *solver_s = NULL;
    nn_status st = NN_OK;
    if (!tt || !host || !meta) {
        st = nn_fail(err, NN_ERR_NOMEM, "out of memory writing a checkpoint");
        goto done;
    }
    int n = 0;
    nn_real *p = host;
    for (int i = 0; i < nt; i++) {
        const char *name;
        int kind;
        nn_tensor *param;
        nn_model_tensor(m, i, &name, &kind, &param, NULL);
        nn_ckpt_tensor *t = &tt[n++];
        snprintf(t->name, sizeof t->name, "%s/%s", kind == 2 ? "buffer" : "param", name);
        t->ndim = param->ndim;
        memcpy(t->shape, param->shape, sizeof t->shape);
        t->dtype = DISK;
        t->data = p;
        if ((st = to_host(b, p, param, err)))
            goto done;
        p += param->size;
    }
    const struct { const char *name; const nn_tensor *t; } extra[] = {
        { "optim/state", v.state }, { "best/params", v.best_params },
        { "best/buffers", v.best_buffers } };
    for (int i = 0; i < 3; i++) {
        if (extra[i].t->size == 0 || (i == 2 && nn_model_buffers(m)->size == 0) ||
            (i == 0 && v.slots == 0))
            continue;
        nn_ckpt_tensor *t = &tt[n++];
        snprintf(t->name, sizeof t->name, "%s", extra[i].name);
        t->ndim = 1;
        t->shape[0] = (int)extra[i].t->size;
        t->dtype = DISK;
        t->data = p;
        if ((st = to_host(b, p, extra[i].t, err)))
            goto done;
        p += extra[i].t->size;
    }

    int ok = 1;
    jw_str(&ok, meta, "format", "convnetd-checkpoint");
    jw_item(&ok, meta, "model", cJSON_Parse(nn_model_json(m)));
    cJSON *in = jw_array(&ok, meta, "input");
    jw_num(&ok, in, NULL, mc->channels);
    jw_num(&ok, in, NULL, mc->height);
    jw_num(&ok, in, NULL, mc->width);
    jw_num(&ok, meta, "num_classes", mc->num_classes);
    cJSON *cn = jw_array(&ok, meta, "class_names");
    for (int i = 0; i < mc->num_classes; i++) {
        char def[16];
        snprintf(def, sizeof def, "%d", i);
        jw_str(&ok, cn, NULL, class_names ? class_names[i] : def);
    }
    cJSON *mean = jw_array(&ok, meta, "mean");
    for (int i = 0; i < mc->channels; i++)
        jw_num(&ok, mean, NULL, v.mean[i]);
    solver_s = nn_solver_config_json(v.cfg);
    jw_item(&ok, meta, "solver", solver_s ? cJSON_Parse(solver_s) : NULL);
    cJSON *pos = jw_object(&ok, meta, "position");
    jw_num(&ok, pos, "iteration", (double)*v.t);
    jw_num(&ok, pos, "epoch", *v.epoch);
    jw_num(&ok, pos, "learning_rate", *v.lr);
    jw_num(&ok, pos, "loss", *v.loss);
    jw_num(&ok, pos, "train_acc", *v.train_acc);
    jw_num(&ok, pos, "val_acc", *v.val_acc);
    jw_num(&ok, pos, "best_val_acc", *v.best_val_acc);
    jw_num(&ok, pos, "elapsed_s", *v.elapsed);
    rng_to_json(&ok, pos, "rng", v.rng);
    rng_to_json(&ok, pos, "rng_epoch", v.rng_epoch);
    if (extra_json) {
        cJSON *x = cJSON_Parse(extra_json);
        if (!cJSON_IsObject(x)) { /* NULL too: bad JSON (or no memory) */
            cJSON_Delete(x);
            st = nn_fail(err, NN_ERR_ARG, "checkpoint extra metadata is not a JSON object");
            goto done;
        }
        jw_item(&ok, meta, "extra", x);
    }
    meta_s = jw_finish(ok, meta);
    meta = NULL;
    if (!meta_s) {
        st = nn_fail(err, NN_ERR_NOMEM, "out of memory writing a checkpoint");
        goto done;
    }
    st = nn_ckpt_write(path, meta_s, tt, n, err);
done:
    cJSON_Delete(meta);
    free(meta_s);
    free(solver_s);
    free(host);
    free(tt);
    return st;
}

/* Copies the stored tensor `name` into dst (same element count). */
static nn_status load_tensor(nn_backend *b, nn_tensor *dst, const nn_ckpt_tensor *tt,
                             int n, const char *name, const char *path, char *err)
{
    const nn_ckpt_tensor *t = nn_ckpt_find(tt, n, name);
    if (!t)
        return nn_fail(err, NN_ERR_FORMAT, "%s: no tensor '%s'", path, name);
    size_t count = 1;
    for (int i = 0; i < t->ndim; i++)
        count *= (size_t)t->shape[i];
    if (count != dst->size)
        return nn_fail(err, NN_ERR_FORMAT, "%s: tensor '%s' has %zu elements, the model "
                       "needs %zu", path, name, count, dst->size);
    return to_dev(b, dst, t->data, err);
}

static nn_status load_params(nn_model *m, const nn_ckpt_tensor *tt, int n, int use_best,
                             const char *path, char *err)
{
    nn_backend *b = nn_model_backend(m);
    if (use_best && nn_ckpt_find(tt, n, "best/params")) {
        NN_TRY(load_tensor(b, nn_model_params(m), tt, n, "best/params", path, err));
        if (nn_model_buffers(m)->size)
            NN_TRY(load_tensor(b, nn_model_buffers(m), tt, n, "best/buffers", path, err));
        return NN_OK;
    }
    for (int i = 0; i < nn_model_num_tensors(m); i++) {
        const char *name;
        int kind;
        nn_tensor *param;
        char full[NN_CKPT_NAME_MAX];
        nn_model_tensor(m, i, &name, &kind, &param, NULL);
        snprintf(full, sizeof full, "%s/%s", kind == 2 ? "buffer" : "param", name);
        NN_TRY(load_tensor(b, param, tt, n, full, path, err));
    }
    return NN_OK;
}

nn_status nn_solver_restore(nn_solver *s, const char *path, char *err)
{
    solver_view v;
    solver_get_view(s, &v);
    char *meta_s = NULL;
    nn_ckpt_tensor *tt = NULL;
    int n = 0;
    NN_TRY(nn_ckpt_read(path, &meta_s, &tt, &n, err));
    nn_status st = NN_OK;
    cJSON *meta = cJSON_Parse(meta_s);
    cJSON *mine = cJSON_Parse(nn_model_json(v.model));
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(meta, "model");
    const cJSON *pos = cJSON_GetObjectItemCaseSensitive(meta, "position");
    const cJSON *solver = cJSON_GetObjectItemCaseSensitive(meta, "solver");
    const cJSON *rule = solver ? cJSON_GetObjectItemCaseSensitive(solver, "update_rule") : NULL;
    if (!cJSON_IsObject(meta) || !model || !cJSON_IsObject(pos) || !cJSON_IsString(rule)) {
        st = nn_fail(err, NN_ERR_FORMAT, "%s: metadata lacks model, solver or position", path);
        goto done;
    }
    if (!cJSON_Compare(model, mine, 1)) {
        st = nn_fail(err, NN_ERR_ARG, "%s: the checkpoint is of a different model", path);
        goto done;
    }
    if (nn_update_rule_parse(rule->valuestring) != (int)v.cfg->optim.rule) {
        st = nn_fail(err, NN_ERR_ARG, "%s: the checkpoint was trained with %s, the solver "
                     "uses %s", path, rule->valuestring, nn_update_rule_name(v.cfg->optim.rule));
        goto done;
    }
    nn_backend *b = nn_model_backend(v.model);
    if ((st = load_params(v.model, tt, n, 0, path, err)))
        goto done;
    if (v.slots && (st = load_tensor(b, v.state, tt, n, "optim/state", path, err)))
        goto done;
    if (nn_ckpt_find(tt, n, "best/params")) {
        if ((st = load_tensor(b, v.best_params, tt, n, "best/params", path, err)))
            goto done;
        if (nn_model_buffers(v.model)->size &&
            (st = load_tensor(b, v.best_buffers, tt, n, "best/buffers", path, err)))
            goto done;
    }
    nn_rng r, re;
    if (rng_from_json(&r, pos, "rng") || rng_from_json(&re, pos, "rng_epoch")) {
        st = nn_fail(err, NN_ERR_FORMAT, "%s: bad RNG state in the metadata", path);
        goto done;
    }
    long t = (long)num(pos, "iteration", -1);
    if (t < 0 || t > solver_total(s)) {
        st = nn_fail(err, NN_ERR_FORMAT, "%s: iteration %ld is outside this run's 0..%ld",
                     path, t, solver_total(s));
        goto done;
    }
    *v.t = t;
    *v.epoch = (int)num(pos, "epoch", 0);
    *v.lr = num(pos, "learning_rate", v.cfg->optim.learning_rate);
    *v.loss = num(pos, "loss", 0);
    *v.train_acc = num(pos, "train_acc", -1);
    *v.val_acc = num(pos, "val_acc", -1);
    *v.best_val_acc = num(pos, "best_val_acc", -1);
    *v.elapsed = num(pos, "elapsed_s", 0);
    *v.rng = r;
    *v.rng_epoch = re;
    solver_redraw_epoch(s);
done:
    cJSON_Delete(meta);
    cJSON_Delete(mine);
    nn_ckpt_free(meta_s, tt, n);
    return st;
}

void nn_model_info_free(nn_model_info *info)
{
    if (!info)
        return;
    if (info->class_names)
        for (int i = 0; i < info->cfg.num_classes; i++)
            free(info->class_names[i]);
    free(info->class_names);
    free(info->meta_json);
    memset(info, 0, sizeof *info);
}

nn_status nn_model_load(nn_model **out, nn_model_info *info, nn_backend *b,
                        const char *path, int max_batch, int use_best, char *err)
{
    if (!out || !b || !path)
        return nn_fail(err, NN_ERR_ARG, "model load: NULL argument");
    *out = NULL;
    char *meta_s = NULL;
    nn_ckpt_tensor *tt = NULL;
    int n = 0;
    NN_TRY(nn_ckpt_read(path, &meta_s, &tt, &n, err));
    nn_status st = NN_OK;
    nn_model *m = NULL;
    char *model_s = NULL;
    nn_model_info inf;
    memset(&inf, 0, sizeof inf);
    cJSON *meta = cJSON_Parse(meta_s);
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(meta, "model");
    const cJSON *input = cJSON_GetObjectItemCaseSensitive(meta, "input");
    const cJSON *names = cJSON_GetObjectItemCaseSensitive(meta, "class_names");
    const cJSON *mean = cJSON_GetObjectItemCaseSensitive(meta, "mean");
    const cJSON *pos = cJSON_GetObjectItemCaseSensitive(meta, "position");
    int k = (int)num(meta, "num_classes", 0);
    if (!cJSON_IsObject(model) || !cJSON_IsArray(input) || cJSON_GetArraySize(input) != 3 ||
        !cJSON_IsArray(names) || cJSON_GetArraySize(names) != k || k < 2 ||
        !cJSON_IsArray(mean)) {
        st = nn_fail(err, NN_ERR_FORMAT, "%s: metadata lacks model, input, class_names "
                     "or mean", path);
        goto done;
    }
    inf.cfg.channels = (int)cJSON_GetArrayItem(input, 0)->valuedouble;
    inf.cfg.height = (int)cJSON_GetArrayItem(input, 1)->valuedouble;
    inf.cfg.width = (int)cJSON_GetArrayItem(input, 2)->valuedouble;
    inf.cfg.num_classes = k;
    inf.cfg.max_batch = max_batch;
    if (inf.cfg.channels < 1 || inf.cfg.channels > 4 ||
        cJSON_GetArraySize(mean) != inf.cfg.channels) {
        st = nn_fail(err, NN_ERR_FORMAT, "%s: bad input shape or mean", path);
        goto done;
    }
    for (int i = 0; i < inf.cfg.channels; i++)
        inf.mean[i] = (float)cJSON_GetArrayItem(mean, i)->valuedouble;
    if (!(inf.class_names = calloc((size_t)k, sizeof(char *)))) {
        st = nn_fail(err, NN_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (int i = 0; i < k; i++) {
        const cJSON *c = cJSON_GetArrayItem(names, i);
        if (!cJSON_IsString(c) || !(inf.class_names[i] = strdup(c->valuestring))) {
            st = nn_fail(err, NN_ERR_FORMAT, "%s: class_names[%d] is not a string", path, i);
            goto done;
        }
    }
    inf.iteration = (long)num(pos, "iteration", 0);
    inf.epoch = (int)num(pos, "epoch", 0);
    inf.best_val_acc = num(pos, "best_val_acc", -1);
    if (!(model_s = cJSON_PrintUnformatted(model))) {
        st = nn_fail(err, NN_ERR_NOMEM, "out of memory");
        goto done;
    }
    if ((st = nn_model_create(&m, b, model_s, &inf.cfg, err)) ||
        (st = load_params(m, tt, n, use_best, path, err)))
        goto done;
    *out = m;
    m = NULL;
    if (info) {
        inf.meta_json = meta_s;
        meta_s = NULL;
        *info = inf;
        memset(&inf, 0, sizeof inf);
    }
done:
    nn_model_free(m);
    nn_model_info_free(&inf);
    free(model_s);
    cJSON_Delete(meta);
    nn_ckpt_free(meta_s, tt, n);
    return st;
}
