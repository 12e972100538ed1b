/* data.c: in-memory data sets, splits, the channel mean and minibatch
 * gathering (the part of data loading that runs every training step).
 * File formats live in data_idx.c and data_cifar.c; this file does no I/O. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "nn/data.h"
#include "internal.h"

/* ---- creation ---------------------------------------------------------- */

nn_status nn_dataset_create(nn_dataset **out, int n, int c, int h, int w,
                            int num_classes, char *err)
{
    nn_dataset *d = NULL;
    size_t bytes;

    if (!out)
        return nn_fail(err, NN_ERR_ARG, "nn_dataset_create: out is NULL");
    *out = NULL;
    if (n < 1 || h < 1 || w < 1 || c < 1 || c > NN_DATASET_MAX_CHANNELS)
        return nn_fail(err, NN_ERR_ARG,
                       "dataset shape %d x %d x %d x %d: need n, h, w >= 1 and 1 <= c <= %d",
                       n, c, h, w, NN_DATASET_MAX_CHANNELS);
    if (num_classes < 1 || num_classes > NN_DATASET_MAX_CLASSES)
        return nn_fail(err, NN_ERR_ARG, "num_classes %d: need 1..%d",
                       num_classes, NN_DATASET_MAX_CLASSES);
    /* one factor at a time so the product cannot overflow size_t */
    bytes = (size_t)n;
    if (bytes > NN_DATASET_MAX_BYTES / (size_t)c
        || (bytes *= (size_t)c) > NN_DATASET_MAX_BYTES / (size_t)h
        || (bytes *= (size_t)h) > NN_DATASET_MAX_BYTES / (size_t)w)
        return nn_fail(err, NN_ERR_ARG,
                       "dataset %d x %d x %d x %d exceeds the %zu-byte limit",
                       n, c, h, w, NN_DATASET_MAX_BYTES);
    bytes *= (size_t)w;

    d = calloc(1, sizeof *d);
    if (!d)
        goto nomem;
    d->n = n;
    d->c = c;
    d->h = h;
    d->w = w;
    /* calloc, not malloc + memset: a loader that fails on a bogus header
     * before touching the pages never commits the memory */
    d->images = calloc(bytes, 1);
    d->labels = calloc((size_t)n, sizeof *d->labels);
    d->class_names = calloc((size_t)num_classes, sizeof *d->class_names);
    if (!d->images || !d->labels || !d->class_names)
        goto nomem;
    /* num_classes is set only as names are made, so free() on the failure
     * path sees exactly the names that exist */
    for (int i = 0; i < num_classes; i++) {
        char buf[16];
        snprintf(buf, sizeof buf, "%d", i);
        d->class_names[i] = malloc(strlen(buf) + 1);
        if (!d->class_names[i])
            goto nomem;
        strcpy(d->class_names[i], buf);
        d->num_classes = i + 1;
    }
    *out = d;
    return NN_OK;

nomem:
    nn_dataset_free(d);
    return nn_fail(err, NN_ERR_NOMEM, "out of memory for a %d x %d x %d x %d dataset",
                   n, c, h, w);
}

nn_status nn_dataset_set_class_name(nn_dataset *d, int i, const char *name,
                                    char *err)
{
    size_t len;
    char *copy;

    if (!d || !name)
        return nn_fail(err, NN_ERR_ARG, "nn_dataset_set_class_name: %s is NULL",
                       d ? "name" : "dataset");
    if (i < 0 || i >= d->num_classes)
        return nn_fail(err, NN_ERR_ARG, "class index %d out of range 0..%d",
                       i, d->num_classes - 1);
    len = strlen(name);
    if (len < 1 || len > NN_CLASS_NAME_MAX)
        return nn_fail(err, NN_ERR_ARG, "class %d: name must be 1..%d bytes, got %zu",
                       i, NN_CLASS_NAME_MAX, len);
    copy = malloc(len + 1);
    if (!copy)
        return nn_fail(err, NN_ERR_NOMEM, "out of memory for class name %d", i);
    memcpy(copy, name, len + 1);
    free(d->class_names[i]);
    d->class_names[i] = copy;
    return NN_OK;
}

void nn_dataset_free(nn_dataset *d)
{
    if (!d)
        return;
    if (d->class_names)
        for (int i = 0; i < d->num_classes; i++)
            free(d->class_names[i]);
    free(d->class_names);
    free(d->labels);
    free(d->images);
    free(d);
}

/* ---- splits and normalisation ------------------------------------------ */

nn_split nn_dataset_all(const nn_dataset *d)
{
    nn_split s = { d, 0, d ? d->n : 0 };
    return s;
}

nn_status nn_dataset_split(nn_split *train, nn_split *val, const nn_dataset *d,
                           double val_fraction, int limit, char *err)
{
    int total, nval;

    if (!train || !d)
        return nn_fail(err, NN_ERR_ARG, "nn_dataset_split: %s is NULL",
                       d ? "train" : "dataset");
    if (!(val_fraction >= 0.0 && val_fraction < 1.0)) /* NaN fails too */
        return nn_fail(err, NN_ERR_ARG, "val_fraction must be in [0, 1), got %g",
                       val_fraction);
    if (val_fraction > 0.0 && !val)
        return nn_fail(err, NN_ERR_ARG,
                       "nn_dataset_split: val is NULL but val_fraction is %g",
                       val_fraction);
    if (limit < 0)
        return nn_fail(err, NN_ERR_ARG, "limit must be >= 0 (0: all), got %d", limit);
    total = (limit == 0 || limit > d->n) ? d->n : limit;
    nval = (int)floor(val_fraction * total + 0.5);
    if (val_fraction > 0.0 && nval == 0)
        return nn_fail(err, NN_ERR_ARG,
                       "val_fraction %g of %d samples leaves no validation sample",
                       val_fraction, total);
    if (total - nval < 1)
        return nn_fail(err, NN_ERR_ARG,
                       "val_fraction %g of %d samples leaves no training sample",
                       val_fraction, total);
    train->data = d;
    train->begin = 0;
    train->count = total - nval;
    if (val) {
        val->data = d;
        val->begin = total - nval;
        val->count = nval;
    }
    return NN_OK;
}

static nn_status check_split(const nn_split *s, const char *fn, char *err)
{
    if (!s || !s->data)
        return nn_fail(err, NN_ERR_ARG, "%s: split or its data set is NULL", fn);
    if (s->begin < 0 || s->count < 1 || s->begin > s->data->n - s->count)
        return nn_fail(err, NN_ERR_ARG, "%s: split [%d, +%d) is empty or outside 0..%d",
                       fn, s->begin, s->count, s->data->n);
    return NN_OK;
}

nn_status nn_dataset_channel_mean(float *mean, const nn_split *s, char *err)
{
    if (!mean)
        return nn_fail(err, NN_ERR_ARG, "nn_dataset_channel_mean: mean is NULL");
    NN_TRY(check_split(s, "nn_dataset_channel_mean", err));

    const nn_dataset *d = s->data;
    size_t plane = (size_t)d->h * (size_t)d->w;
    for (int ch = 0; ch < d->c; ch++) {
        /* a byte histogram, then one exact sum: no rounding drift over
         * millions of pixels, and the inner loop is a load and an add */
        uint64_t hist[256] = { 0 }, sum = 0;
        for (int i = s->begin; i < s->begin + s->count; i++) {
            const uint8_t *p = d->images + ((size_t)i * (size_t)d->c + (size_t)ch) * plane;
            for (size_t k = 0; k < plane; k++)
                hist[p[k]]++;
        }
        for (int v = 1; v < 256; v++)
            sum += hist[v] * (uint64_t)v;
        mean[ch] = (float)((double)sum / (255.0 * (double)plane * (double)s->count));
    }
    return NN_OK;
}

/* ---- minibatches -------------------------------------------------------- */

void nn_split_shuffle(int *perm, int count, nn_rng *rng)
{
    if (!perm || !rng || count <= 0)
        return;
    for (int i = 0; i < count; i++)
        perm[i] = i;
    for (int i = count - 1; i > 0; i--) {
        int j = (int)nn_rng_below(rng, (uint32_t)i + 1);
        int t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

/* One channel plane of one sample, cropped (shifted by dy, dx with zeros
 * outside) and optionally mirrored. The slow path; the plain copy is
 * inlined in nn_dataset_gather. */
static void plane_augmented(nn_real *out, const uint8_t *src, const nn_real *lut,
                            int h, int w, int dy, int dx, int flip)
{
    for (int y = 0; y < h; y++) {
        nn_real *row = out + (size_t)y * (size_t)w;
        int sy = y + dy;
        if (sy < 0 || sy >= h) {
            for (int x = 0; x < w; x++)
                row[x] = 0;
            continue;
        }
        const uint8_t *srow = src + (size_t)sy * (size_t)w;
        for (int x = 0; x < w; x++) {
            int sx = x + dx;
            nn_real v = (sx >= 0 && sx < w) ? lut[srow[sx]] : 0;
            row[flip ? w - 1 - x : x] = v;
        }
    }
}

void nn_augment_draw(const nn_augment *aug, nn_rng *rng, int *dy, int *dx, int *flip)
{
    const int pad = aug ? aug->crop_pad : 0;
    *dy = *dx = *flip = 0;
    if (pad > 0) {
        *dy = (int)nn_rng_below(rng, 2u * (uint32_t)pad + 1) - pad;
        *dx = (int)nn_rng_below(rng, 2u * (uint32_t)pad + 1) - pad;
    }
    if (aug && aug->hflip)
        *flip = (int)nn_rng_below(rng, 2);
}

nn_status nn_dataset_gather(nn_real *x, nn_real *labels, const nn_split *s,
                            const int *idx, int n, const float *mean,
                            const nn_augment *aug, nn_rng *rng, char *err)
{
    /* pixel -> pixel/255 - mean per channel: 256 entries per channel, built
     * per call (a few hundred operations against n*c*h*w lookups) */
    nn_real lut[NN_DATASET_MAX_CHANNELS][256];
    int pad = aug ? aug->crop_pad : 0, hflip = aug ? aug->hflip != 0 : 0;

    if (!x || !idx)
        return nn_fail(err, NN_ERR_ARG, "nn_dataset_gather: %s is NULL", x ? "idx" : "x");
    NN_TRY(check_split(s, "nn_dataset_gather", err));
    if (n < 1)
        return nn_fail(err, NN_ERR_ARG, "nn_dataset_gather: n must be >= 1, got %d", n);

    const nn_dataset *d = s->data;
    int c = d->c, h = d->h, w = d->w;
    if (pad < 0 || pad > h || pad > w)
        return nn_fail(err, NN_ERR_ARG, "crop_pad must be in 0..%d, got %d",
                       h < w ? h : w, pad);
    if ((pad || hflip) && !rng)
        return nn_fail(err, NN_ERR_ARG, "nn_dataset_gather: augmentation needs an rng");
    if (c < 1 || c > NN_DATASET_MAX_CHANNELS) /* a struct edited by hand */
        return nn_fail(err, NN_ERR_ARG, "dataset has %d channels, at most %d supported",
                       c, NN_DATASET_MAX_CHANNELS);
    for (int j = 0; j < n; j++)
        if (idx[j] < 0 || idx[j] >= s->count)
            return nn_fail(err, NN_ERR_ARG, "idx[%d] = %d outside the split's 0..%d",
                           j, idx[j], s->count - 1);

    for (int ch = 0; ch < c; ch++) {
        double m = mean ? (double)mean[ch] : 0.0;
        for (int v = 0; v < 256; v++)
            lut[ch][v] = (nn_real)((double)v / 255.0 - m);
    }

    size_t plane = (size_t)h * (size_t)w, img = (size_t)c * plane;
    for (int j = 0; j < n; j++) {
        size_t i = (size_t)s->begin + (size_t)idx[j];
        const uint8_t *src = d->images + i * img;
        nn_real *dst = x + (size_t)j * img;
        int dy = 0, dx = 0, flip = 0;

        if (d->labels[i] >= d->num_classes)
            return nn_fail(err, NN_ERR_FORMAT, "sample %zu has label %d, but %s has %d classes",
                           i, d->labels[i], d->name[0] ? d->name : "the data set",
                           d->num_classes);
        if (labels)
            labels[j] = (nn_real)d->labels[i];
        nn_augment_draw(aug, rng, &dy, &dx, &flip);
        for (int ch = 0; ch < c; ch++) {
            const uint8_t *sp = src + (size_t)ch * plane;
            nn_real *dp = dst + (size_t)ch * plane;
            if (dy | dx | flip) {
                plane_augmented(dp, sp, lut[ch], h, w, dy, dx, flip);
            } else {
                const nn_real *t = lut[ch];
                for (size_t k = 0; k < plane; k++)
                    dp[k] = t[sp[k]];
            }
        }
    }
    return NN_OK;
}
