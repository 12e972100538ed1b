/* pngenc.c: PNG encoding into memory and the filter-grid picture (see
 * pngenc.h).
 *
 * libpng reports errors by longjmp: as in image.c, the resources live in a
 * job struct in the caller's frame and the libpng calls run in a function
 * of their own that owns the setjmp. */
#include "pngenc.h"

#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <png.h>

#include "util.h"

/* Bumped whenever the drawing changes, so cached pictures are not reused. */
#define FILTERS_DRAWING_VERSION "filters-v1"

/* ---- encoding ---- */

typedef struct enc_job {
    png_structp png;
    png_infop info;
    const uint8_t *px;
    int w, h, channels;
    uint8_t *buf;           /* the PNG so far */
    size_t len, cap;
    char msg[200];
} enc_job;

static void enc_on_error(png_structp png, png_const_charp msg)
{
    enc_job *j = png_get_error_ptr(png);
    snprintf(j->msg, sizeof j->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void enc_on_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

static void enc_on_write(png_structp png, png_bytep data, size_t n)
{
    enc_job *j = png_get_io_ptr(png);
    if (n > j->cap - j->len) {
        size_t cap = j->cap ? j->cap : 4096;
        uint8_t *p;
        while (cap - j->len < n) {
            if (cap > SIZE_MAX / 2)
                png_error(png, "output too large");
            cap *= 2;
        }
        p = realloc(j->buf, cap);
        if (p == NULL)
            png_error(png, "out of memory");
        j->buf = p;
        j->cap = cap;
    }
    memcpy(j->buf + j->len, data, n);
    j->len += n;
}

static void enc_on_flush(png_structp png)
{
    (void)png;
}

static int enc_run(enc_job *j)
{
    size_t stride = (size_t)j->w * (size_t)j->channels;

    if (setjmp(png_jmpbuf(j->png)))
        return -1;
    png_set_write_fn(j->png, j, enc_on_write, enc_on_flush);
    png_set_IHDR(j->png, j->info, (png_uint_32)j->w, (png_uint_32)j->h, 8,
                 j->channels == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_GRAY,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(j->png, j->info);
    for (int y = 0; y < j->h; y++)
        png_write_row(j->png, j->px + (size_t)y * stride);
    png_write_end(j->png, NULL);
    return 0;
}

static int encode(uint8_t **out, size_t *out_len, const uint8_t *px, int w, int h,
                  int channels, char *err, size_t errlen)
{
    enc_job j;
    int rc = -1;

    if (out == NULL || out_len == NULL)
        return set_err(err, errlen, "png: no output");
    *out = NULL;
    *out_len = 0;
    if (px == NULL || w < 1 || h < 1 || w > FILTERS_MAX_SIDE || h > FILTERS_MAX_SIDE)
        return set_err(err, errlen, "png: bad image %dx%d", w, h);
    memset(&j, 0, sizeof j);
    j.px = px;
    j.w = w;
    j.h = h;
    j.channels = channels;
    j.png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &j, enc_on_error, enc_on_warning);
    if (j.png != NULL)
        j.info = png_create_info_struct(j.png);
    if (j.png == NULL || j.info == NULL) {
        set_err(err, errlen, "png: out of memory creating the encoder");
        goto done;
    }
    if (enc_run(&j) != 0) {
        set_err(err, errlen, "png: encode failed: %s", j.msg);
        goto done;
    }
    *out = j.buf;
    *out_len = j.len;
    j.buf = NULL;
    rc = 0;
done:
    png_destroy_write_struct(&j.png, &j.info); /* NULLs are fine */
    free(j.buf);
    return rc;
}

int pngenc_gray(uint8_t **out, size_t *out_len, const uint8_t *px, int w, int h,
                char *err, size_t errlen)
{
    return encode(out, out_len, px, w, h, 1, err, errlen);
}

int pngenc_rgb(uint8_t **out, size_t *out_len, const uint8_t *px, int w, int h,
               char *err, size_t errlen)
{
    return encode(out, out_len, px, w, h, 3, err, errlen);
}

/* ---- the filter grid ---- */

int filters_layout(filters_grid *g, int K, int C, int R, int S)
{
    int side;
    long long width, height;

    if (g == NULL || K < 1 || K > FILTERS_MAX_K || C < 1 || C > FILTERS_MAX_C ||
        R < 1 || R > FILTERS_MAX_RS || S < 1 || S > FILTERS_MAX_RS)
        return -1;
    memset(g, 0, sizeof *g);
    g->cols = (int)ceil(sqrt((double)K));
    while (g->cols * g->cols < K) /* guard sqrt's rounding */
        g->cols++;
    while (g->cols > 1 && (g->cols - 1) * (g->cols - 1) >= K)
        g->cols--;
    g->rows = (K + g->cols - 1) / g->cols;
    side = R < S ? R : S;
    g->scale = (FILTERS_MIN_CELL + side - 1) / side;
    if (g->scale < 1)
        g->scale = 1;
    g->cell_w = S * g->scale;
    g->cell_h = R * g->scale;
    g->gutter = FILTERS_GUTTER;
    g->channels = C == 3 ? 3 : 1;
    width = (long long)g->cols * g->cell_w + (long long)(g->cols + 1) * g->gutter;
    height = (long long)g->rows * g->cell_h + (long long)(g->rows + 1) * g->gutter;
    if (width > FILTERS_MAX_SIDE || height > FILTERS_MAX_SIDE)
        return -1;
    g->width = (int)width;
    g->height = (int)height;
    return 0;
}

/* Draws filter f (C,R,S) into its cell of px. vals is scratch of
 * channels*R*S doubles. */
static void draw_filter(uint8_t *px, const filters_grid *g, int k, const float *f,
                        int C, int R, int S, double *vals)
{
    int ch = g->channels;
    size_t rs = (size_t)R * (size_t)S, n = (size_t)ch * rs;
    double lo = INFINITY, hi = -INFINITY;
    int x0 = g->gutter + (k % g->cols) * (g->cell_w + g->gutter);
    int y0 = g->gutter + (k / g->cols) * (g->cell_h + g->gutter);

    for (size_t i = 0; i < rs; i++) {
        if (ch == 3 || C == 1) {
            for (int c = 0; c < ch; c++)
                vals[(size_t)c * rs + i] = f[(size_t)c * rs + i];
        } else {
            /* Any non-finite channel makes the mean non-finite: drawn 0. */
            double sum = 0;
            for (int c = 0; c < C; c++)
                sum += f[(size_t)c * rs + i];
            vals[i] = sum / C;
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(vals[i]))
            continue;
        lo = fmin(lo, vals[i]);
        hi = fmax(hi, vals[i]);
    }
    for (int r = 0; r < R; r++) {
        for (int s = 0; s < S; s++) {
            uint8_t pix[3];
            for (int c = 0; c < ch; c++) {
                double v = vals[(size_t)c * rs + (size_t)r * S + s];
                if (!isfinite(v))
                    pix[c] = 0;
                else if (!(hi > lo))
                    pix[c] = 128;
                else
                    pix[c] = (uint8_t)floor((v - lo) / (hi - lo) * 255.0 + 0.5);
            }
            for (int dy = 0; dy < g->scale; dy++) {
                uint8_t *row = px + ((size_t)(y0 + r * g->scale + dy) * (size_t)g->width +
                                     (size_t)(x0 + s * g->scale)) * (size_t)ch;
                for (int dx = 0; dx < g->scale; dx++)
                    memcpy(row + (size_t)dx * (size_t)ch, pix, (size_t)ch);
            }
        }
    }
}

int filters_png(uint8_t **out, size_t *out_len, filters_grid *grid, const float *weight,
                int K, int C, int R, int S, char *err, size_t errlen)
{
    filters_grid g;
    uint8_t *px = NULL;
    double *vals = NULL;
    size_t npx, fsize;
    int rc = -1;

    if (out == NULL || out_len == NULL)
        return set_err(err, errlen, "filters: no output");
    *out = NULL;
    *out_len = 0;
    if (weight == NULL)
        return set_err(err, errlen, "filters: no weights");
    if (filters_layout(&g, K, C, R, S) != 0)
        return set_err(err, errlen,
                       "filters: cannot draw %d filters of %dx%dx%d (limits: %d filters, "
                       "%d channels, %d px kernels, %d px picture)", K, C, R, S, FILTERS_MAX_K,
                       FILTERS_MAX_C, FILTERS_MAX_RS, FILTERS_MAX_SIDE);
    npx = (size_t)g.width * (size_t)g.height * (size_t)g.channels;
    fsize = (size_t)C * (size_t)R * (size_t)S;
    px = malloc(npx);
    vals = malloc((size_t)g.channels * (size_t)R * (size_t)S * sizeof *vals);
    if (px == NULL || vals == NULL) {
        set_err(err, errlen, "filters: out of memory");
        goto done;
    }
    memset(px, FILTERS_GUTTER_VALUE, npx);
    for (int k = 0; k < K; k++)
        draw_filter(px, &g, k, weight + (size_t)k * fsize, C, R, S, vals);
    rc = g.channels == 3 ? pngenc_rgb(out, out_len, px, g.width, g.height, err, errlen)
                         : pngenc_gray(out, out_len, px, g.width, g.height, err, errlen);
    if (rc == 0 && grid != NULL)
        *grid = g;
done:
    free(px);
    free(vals);
    return rc;
}

static uint64_t fnv1a(uint64_t h, const void *data, size_t n)
{
    const uint8_t *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

void filters_etag(char *out, const float *weight, int K, int C, int R, int S)
{
    int32_t dims[4] = { K, C, R, S };
    uint64_t h = 0xcbf29ce484222325ULL;
    size_t n = 0;

    if (K > 0 && C > 0 && R > 0 && S > 0)
        n = (size_t)K * (size_t)C * (size_t)R * (size_t)S;
    h = fnv1a(h, FILTERS_DRAWING_VERSION, sizeof FILTERS_DRAWING_VERSION - 1);
    h = fnv1a(h, dims, sizeof dims);
    if (weight != NULL && n > 0)
        h = fnv1a(h, weight, n * sizeof *weight);
    snprintf(out, FILTERS_ETAG_LEN, "\"%016llx\"", (unsigned long long)h);
}
