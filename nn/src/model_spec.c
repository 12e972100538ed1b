/* model_spec.c: the model JSON: presets expanded into layer lists, every
 * field checked with its JSON path in the message, shapes propagated, and
 * the canonical document written back. No allocation of the model itself:
 * model.c builds from the parsed spec. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "jsonw.h"
#include "model_spec.h"
#include "internal.h"

/* ---- field helpers ------------------------------------------------------ */

static nn_status unknown_fields(const cJSON *obj, const char *path,
                                const char *const *allowed, char *err)
{
    for (const cJSON *it = obj->child; it; it = it->next) {
        int ok = 0;
        for (int i = 0; allowed[i]; i++)
            if (it->string && strcmp(it->string, allowed[i]) == 0)
                ok = 1;
        if (!ok)
            return nn_fail(err, NN_ERR_ARG, "%s.%s: unknown field", path,
                           it->string ? it->string : "?");
    }
    return NN_OK;
}

static nn_status get_int(int *out, const cJSON *obj, const char *key, int def,
                         int lo, int hi, const char *path, char *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v) {
        *out = def;
        return NN_OK;
    }
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble))
        return nn_fail(err, NN_ERR_ARG, "%s.%s: must be an integer", path, key);
    if (v->valuedouble < lo || v->valuedouble > hi)
        return nn_fail(err, NN_ERR_ARG, "%s.%s: must be in %d..%d, got %g", path, key,
                       lo, hi, v->valuedouble);
    *out = (int)v->valuedouble;
    return NN_OK;
}

static nn_status get_num(double *out, const cJSON *obj, const char *key, double def,
                         double lo, double hi, const char *path, char *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v) {
        *out = def;
        return NN_OK;
    }
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return nn_fail(err, NN_ERR_ARG, "%s.%s: must be a number", path, key);
    if (v->valuedouble < lo || v->valuedouble > hi)
        return nn_fail(err, NN_ERR_ARG, "%s.%s: must be in [%g, %g], got %g", path, key,
                       lo, hi, v->valuedouble);
    *out = v->valuedouble;
    return NN_OK;
}

static nn_status get_bool(int *out, const cJSON *obj, const char *key, int def,
                          const char *path, char *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v) {
        *out = def;
        return NN_OK;
    }
    if (!cJSON_IsBool(v))
        return nn_fail(err, NN_ERR_ARG, "%s.%s: must be true or false", path, key);
    *out = cJSON_IsTrue(v);
    return NN_OK;
}

/* An array of small non-negative ints, e.g. num_filters or max_pools. */
static nn_status get_int_list(int *out, int *count, int cap, const cJSON *obj,
                              const char *key, int lo, int hi, const char *path,
                              char *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v)
        return NN_OK; /* caller's default stays */
    if (!cJSON_IsArray(v))
        return nn_fail(err, NN_ERR_ARG, "%s.%s: must be an array of integers", path, key);
    int n = cJSON_GetArraySize(v);
    if (n > cap)
        return nn_fail(err, NN_ERR_ARG, "%s.%s: at most %d entries, got %d", path, key,
                       cap, n);
    int i = 0;
    for (const cJSON *it = v->child; it; it = it->next, i++) {
        if (!cJSON_IsNumber(it) || it->valuedouble != floor(it->valuedouble) ||
            it->valuedouble < lo || it->valuedouble > hi)
            return nn_fail(err, NN_ERR_ARG, "%s.%s[%d]: must be an integer in %d..%d",
                           path, key, i, lo, hi);
        out[i] = (int)it->valuedouble;
    }
    *count = n;
    return NN_OK;
}

/* ---- layers ------------------------------------------------------------- */

static const char *const kind_names[] = { "conv", "relu", "maxpool", "linear",
                                          "batchnorm", "dropout" };

const char *nn_layer_kind_name(layer_kind k) { return kind_names[k]; }

static nn_status parse_layer(layer_spec *ls, const cJSON *o, const char *path,
                             int is_last, char *err)
{
    if (!cJSON_IsObject(o))
        return nn_fail(err, NN_ERR_ARG, "%s: must be an object", path);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "type");
    if (!cJSON_IsString(t))
        return nn_fail(err, NN_ERR_ARG, "%s.type: required, one of conv, relu, maxpool, "
                       "linear, batchnorm, dropout", path);
    int kind = -1;
    for (int i = 0; i < 6; i++)
        if (strcmp(t->valuestring, kind_names[i]) == 0)
            kind = i;
    if (kind < 0)
        return nn_fail(err, NN_ERR_ARG, "%s.type: unknown layer type \"%.40s\"", path,
                       t->valuestring);
    memset(ls, 0, sizeof *ls);
    ls->kind = (layer_kind)kind;
    switch (ls->kind) {
    case LAYER_CONV: {
        static const char *const ok[] = { "type", "filters", "size", "stride", "pad",
                                          "bias", NULL };
        NN_TRY(unknown_fields(o, path, ok, err));
        if (!cJSON_GetObjectItemCaseSensitive(o, "filters"))
            return nn_fail(err, NN_ERR_ARG, "%s.filters: required", path);
        NN_TRY(get_int(&ls->filters, o, "filters", 0, 1, 4096, path, err));
        NN_TRY(get_int(&ls->size, o, "size", 3, 1, 64, path, err));
        NN_TRY(get_int(&ls->stride, o, "stride", 1, 1, 64, path, err));
        NN_TRY(get_int(&ls->pad, o, "pad", 0, 0, 64, path, err));
        NN_TRY(get_bool(&ls->bias, o, "bias", 1, path, err));
        break;
    }
    case LAYER_MAXPOOL: {
        static const char *const ok[] = { "type", "size", "stride", NULL };
        NN_TRY(unknown_fields(o, path, ok, err));
        NN_TRY(get_int(&ls->size, o, "size", 2, 1, 64, path, err));
        NN_TRY(get_int(&ls->stride, o, "stride", ls->size, 1, 64, path, err));
        break;
    }
    case LAYER_RELU: {
        static const char *const ok[] = { "type", NULL };
        NN_TRY(unknown_fields(o, path, ok, err));
        break;
    }
    case LAYER_LINEAR: {
        static const char *const ok[] = { "type", "units", NULL };
        NN_TRY(unknown_fields(o, path, ok, err));
        if (!is_last && !cJSON_GetObjectItemCaseSensitive(o, "units"))
            return nn_fail(err, NN_ERR_ARG, "%s.units: required (only the last layer "
                           "may leave it to the number of classes)", path);
        NN_TRY(get_int(&ls->units, o, "units", 0, 1, 1 << 20, path, err));
        break;
    }
    case LAYER_BATCHNORM: {
        static const char *const ok[] = { "type", "eps", "momentum", NULL };
        NN_TRY(unknown_fields(o, path, ok, err));
        NN_TRY(get_num(&ls->eps, o, "eps", 1e-5, 1e-12, 1, path, err));
        NN_TRY(get_num(&ls->momentum, o, "momentum", 0.9, 0, 1, path, err));
        break;
    }
    case LAYER_DROPOUT: {
        static const char *const ok[] = { "type", "p", NULL };
        NN_TRY(unknown_fields(o, path, ok, err));
        NN_TRY(get_num(&ls->p, o, "p", 0.5, 0, 0.99, path, err));
        break;
    }
    }
    return NN_OK;
}

static nn_status push(model_spec *s, layer_spec ls, char *err)
{
    if (s->num_layers >= NN_MAX_LAYERS)
        return nn_fail(err, NN_ERR_ARG, "model: more than %d layers", NN_MAX_LAYERS);
    s->layers[s->num_layers++] = ls;
    return NN_OK;
}

/* ---- presets ------------------------------------------------------------ */

static nn_status three_layer(model_spec *s, const cJSON *o, char *err)
{
    static const char *const ok[] = { "preset", "num_filters", "filter_size",
                                      "hidden_dim", "weight_scale", "reg",
                                      "weight_initializer", NULL };
    NN_TRY(unknown_fields(o, "model", ok, err));
    int nf, fs, hd;
    NN_TRY(get_int(&nf, o, "num_filters", 32, 1, 4096, "model", err));
    NN_TRY(get_int(&fs, o, "filter_size", 7, 1, 63, "model", err));
    NN_TRY(get_int(&hd, o, "hidden_dim", 100, 1, 1 << 20, "model", err));
    if (fs % 2 == 0)
        return nn_fail(err, NN_ERR_ARG, "model.filter_size: must be odd (padding "
                       "(filter_size-1)/2 keeps the size), got %d", fs);
    NN_TRY(push(s, (layer_spec){ .kind = LAYER_CONV, .filters = nf, .size = fs,
                                 .stride = 1, .pad = (fs - 1) / 2, .bias = 1 }, err));
    NN_TRY(push(s, (layer_spec){ .kind = LAYER_RELU }, err));
    NN_TRY(push(s, (layer_spec){ .kind = LAYER_MAXPOOL, .size = 2, .stride = 2 }, err));
    NN_TRY(push(s, (layer_spec){ .kind = LAYER_LINEAR, .units = hd }, err));
    NN_TRY(push(s, (layer_spec){ .kind = LAYER_RELU }, err));
    return push(s, (layer_spec){ .kind = LAYER_LINEAR, .units = 0 }, err);
}

static nn_status deep(model_spec *s, const cJSON *o, char *err)
{
    static const char *const ok[] = { "preset", "num_filters", "max_pools",
                                      "batchnorm", "weight_scale", "reg",
                                      "weight_initializer", NULL };
    NN_TRY(unknown_fields(o, "model", ok, err));
    int filters[NN_MAX_LAYERS / 4] = { 8, 8, 8 }, nf = 3;
    int pools[NN_MAX_LAYERS / 4] = { 0, 1, 2 }, np = 3, bn = 0;
    NN_TRY(get_int_list(filters, &nf, NN_MAX_LAYERS / 4, o, "num_filters", 1, 4096,
                        "model", err));
    NN_TRY(get_int_list(pools, &np, NN_MAX_LAYERS / 4, o, "max_pools", 0,
                        NN_MAX_LAYERS, "model", err));
    NN_TRY(get_bool(&bn, o, "batchnorm", 0, "model", err));
    if (nf < 1)
        return nn_fail(err, NN_ERR_ARG, "model.num_filters: needs at least one entry");
    for (int i = 0; i < np; i++)
        if (pools[i] >= nf)
            return nn_fail(err, NN_ERR_ARG, "model.max_pools[%d]: %d is not a conv layer "
                           "index (0..%d)", i, pools[i], nf - 1);
    for (int i = 0; i < nf; i++) {
        /* Batch norm subtracts the batch mean: a bias before it would be
         * a parameter with a gradient of exactly zero. */
        NN_TRY(push(s, (layer_spec){ .kind = LAYER_CONV, .filters = filters[i],
                                     .size = 3, .stride = 1, .pad = 1, .bias = !bn }, err));
        if (bn)
            NN_TRY(push(s, (layer_spec){ .kind = LAYER_BATCHNORM, .eps = 1e-5,
                                         .momentum = 0.9 }, err));
        NN_TRY(push(s, (layer_spec){ .kind = LAYER_RELU }, err));
        for (int j = 0; j < np; j++)
            if (pools[j] == i) {
                NN_TRY(push(s, (layer_spec){ .kind = LAYER_MAXPOOL, .size = 2,
                                             .stride = 2 }, err));
                break;
            }
    }
    return push(s, (layer_spec){ .kind = LAYER_LINEAR, .units = 0 }, err);
}

/* ---- shapes ------------------------------------------------------------- */

static nn_status propagate(model_spec *s, const nn_model_config *cfg, char *err)
{
    int c = cfg->channels, h = cfg->height, w = cfg->width;
    for (int i = 0; i < s->num_layers; i++) {
        layer_spec *l = &s->layers[i];
        l->in[0] = c;
        l->in[1] = h;
        l->in[2] = w;
        switch (l->kind) {
        case LAYER_CONV: {
            int p = nn_conv2d_out_dim(h, l->size, l->stride, l->pad);
            int q = nn_conv2d_out_dim(w, l->size, l->stride, l->pad);
            if (!p || !q)
                return nn_fail(err, NN_ERR_SHAPE, "model.layers[%d]: conv kernel %d with "
                               "pad %d does not fit the %dx%d input", i, l->size, l->pad,
                               h, w);
            c = l->filters;
            h = p;
            w = q;
            break;
        }
        case LAYER_MAXPOOL:
            if (l->size > h || l->size > w)
                return nn_fail(err, NN_ERR_SHAPE, "model.layers[%d]: maxpool window %d "
                               "is larger than the %dx%d input", i, l->size, h, w);
            h = 1 + (h - l->size) / l->stride;
            w = 1 + (w - l->size) / l->stride;
            break;
        case LAYER_LINEAR:
            if (l->units == 0) {
                if (i != s->num_layers - 1)
                    return nn_fail(err, NN_ERR_ARG, "model.layers[%d].units: required", i);
                l->units = cfg->num_classes;
            }
            c = l->units;
            h = w = 1;
            break;
        case LAYER_RELU:
        case LAYER_BATCHNORM:
        case LAYER_DROPOUT:
            break;
        }
        l->out[0] = c;
        l->out[1] = h;
        l->out[2] = w;
    }
    const layer_spec *last = &s->layers[s->num_layers - 1];
    if (last->kind != LAYER_LINEAR || last->units != cfg->num_classes)
        return nn_fail(err, NN_ERR_SHAPE, "model.layers: the last layer must be linear "
                       "with one unit per class (%d)", cfg->num_classes);
    return NN_OK;
}

/* ---- entry points ------------------------------------------------------- */

nn_status nn_model_spec_parse(model_spec *s, const char *json,
                              const nn_model_config *cfg, char *err)
{
    memset(s, 0, sizeof *s);
    if (!json || !cfg)
        return nn_fail(err, NN_ERR_ARG, "model: spec or config is NULL");
    if (cfg->channels < 1 || cfg->height < 1 || cfg->width < 1 || cfg->num_classes < 2 ||
        cfg->max_batch < 1 || cfg->channels > 4096 || cfg->height > 4096 ||
        cfg->width > 4096 || cfg->num_classes > 100000)
        return nn_fail(err, NN_ERR_ARG, "model: bad input shape %dx%dx%d, %d classes or "
                       "batch %d", cfg->channels, cfg->height, cfg->width,
                       cfg->num_classes, cfg->max_batch);
    cJSON *o = cJSON_Parse(json);
    nn_status st = NN_OK;
    if (!o || !cJSON_IsObject(o)) {
        st = nn_fail(err, NN_ERR_ARG, "model: must be a JSON object");
        goto done;
    }
    const cJSON *preset = cJSON_GetObjectItemCaseSensitive(o, "preset");
    if (preset && !cJSON_IsString(preset)) {
        st = nn_fail(err, NN_ERR_ARG, "model.preset: must be a string");
        goto done;
    }
    int gaussian_default = 1;
    if (preset) {
        snprintf(s->preset, sizeof s->preset, "%s", preset->valuestring);
        if (strcmp(preset->valuestring, "three_layer_convnet") == 0) {
            st = three_layer(s, o, err);
        } else if (strcmp(preset->valuestring, "deep_convnet") == 0) {
            st = deep(s, o, err);
            gaussian_default = 0;
        } else {
            st = nn_fail(err, NN_ERR_ARG, "model.preset: unknown preset \"%.40s\" "
                         "(three_layer_convnet, deep_convnet)", preset->valuestring);
        }
        if (st)
            goto done;
    } else {
        static const char *const ok[] = { "layers", "weight_scale", "reg",
                                          "weight_initializer", "from_preset", NULL };
        if ((st = unknown_fields(o, "model", ok, err)))
            goto done;
        const cJSON *layers = cJSON_GetObjectItemCaseSensitive(o, "layers");
        if (!cJSON_IsArray(layers) || cJSON_GetArraySize(layers) < 1) {
            st = nn_fail(err, NN_ERR_ARG, "model.layers: required (or a \"preset\"), a "
                         "non-empty array");
            goto done;
        }
        int n = cJSON_GetArraySize(layers), i = 0;
        if (n > NN_MAX_LAYERS) {
            st = nn_fail(err, NN_ERR_ARG, "model.layers: at most %d layers, got %d",
                         NN_MAX_LAYERS, n);
            goto done;
        }
        for (const cJSON *it = layers->child; it; it = it->next, i++) {
            char path[48];
            snprintf(path, sizeof path, "model.layers[%d]", i);
            if ((st = parse_layer(&s->layers[i], it, path, i == n - 1, err)))
                goto done;
        }
        s->num_layers = n;
        const cJSON *fp = cJSON_GetObjectItemCaseSensitive(o, "from_preset");
        if (cJSON_IsString(fp))
            snprintf(s->preset, sizeof s->preset, "%s", fp->valuestring);
    }
    const cJSON *init = cJSON_GetObjectItemCaseSensitive(o, "weight_initializer");
    s->kaiming = !gaussian_default;
    if (init) {
        if (cJSON_IsString(init) && strcmp(init->valuestring, "gaussian") == 0)
            s->kaiming = 0;
        else if (cJSON_IsString(init) && strcmp(init->valuestring, "kaiming") == 0)
            s->kaiming = 1;
        else {
            st = nn_fail(err, NN_ERR_ARG, "model.weight_initializer: must be \"gaussian\" "
                         "or \"kaiming\"");
            goto done;
        }
    }
    if ((st = get_num(&s->weight_scale, o, "weight_scale", 1e-3, 0, 10, "model", err)) ||
        (st = get_num(&s->reg, o, "reg", 0, 0, 1e3, "model", err)))
        goto done;
    st = propagate(s, cfg, err);
done:
    cJSON_Delete(o);
    return st;
}

char *nn_model_spec_json(const model_spec *s)
{
    int ok = 1;
    cJSON *o = cJSON_CreateObject();
    ok = o != NULL;
    cJSON *layers = jw_array(&ok, o, "layers");
    for (int i = 0; i < s->num_layers; i++) {
        const layer_spec *l = &s->layers[i];
        cJSON *j = jw_object(&ok, layers, NULL);
        jw_str(&ok, j, "type", kind_names[l->kind]);
        switch (l->kind) {
        case LAYER_CONV:
            jw_num(&ok, j, "filters", l->filters);
            jw_num(&ok, j, "size", l->size);
            jw_num(&ok, j, "stride", l->stride);
            jw_num(&ok, j, "pad", l->pad);
            if (!l->bias)
                jw_bool(&ok, j, "bias", 0);
            break;
        case LAYER_MAXPOOL:
            jw_num(&ok, j, "size", l->size);
            jw_num(&ok, j, "stride", l->stride);
            break;
        case LAYER_LINEAR:
            jw_num(&ok, j, "units", l->units);
            break;
        case LAYER_BATCHNORM:
            jw_num(&ok, j, "eps", l->eps);
            jw_num(&ok, j, "momentum", l->momentum);
            break;
        case LAYER_DROPOUT:
            jw_num(&ok, j, "p", l->p);
            break;
        case LAYER_RELU:
            break;
        }
    }
    jw_str(&ok, o, "weight_initializer", s->kaiming ? "kaiming" : "gaussian");
    jw_num(&ok, o, "weight_scale", s->weight_scale);
    jw_num(&ok, o, "reg", s->reg);
    if (s->preset[0])
        jw_str(&ok, o, "from_preset", s->preset);
    return jw_finish(ok, o);
}
