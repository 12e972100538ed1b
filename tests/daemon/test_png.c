/* test_png.c: PNG encoding and the filter-grid picture.
 *
 * Everything encoded is decoded again with image.c's decoder (libpng) and
 * compared pixel for pixel: plain images exactly; filter grids against a
 * reference drawing computed here from the documented formula (geometry,
 * per-filter min-max to 0..255, nearest-neighbour enlargement, gutters). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "image.h"
#include "pngenc.h"

static uint64_t rng_state = 0x2545f4914f6cdd1dULL;

static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 32);
}

static float rndf(void)
{
    return (float)((double)rnd() / 4294967296.0 * 2.0 - 1.0);
}

static void test_encode(void)
{
    char err[256];
    for (int channels = 1; channels <= 3; channels += 2) {
        const int w = 17, h = 9;
        uint8_t px[17 * 9 * 3], *png = NULL;
        size_t len = 0;
        image img;
        int rc;
        for (size_t i = 0; i < sizeof px; i++)
            px[i] = (uint8_t)rnd();
        rc = channels == 1 ? pngenc_gray(&png, &len, px, w, h, err, sizeof err)
                           : pngenc_rgb(&png, &len, px, w, h, err, sizeof err);
        CHECKF(rc == 0, "%s", err);
        CHECK(png != NULL && len > 8 && image_detect(png, len) == IMAGE_FMT_PNG);
        CHECKF(image_decode(&img, png, len, 0, err, sizeof err) == IMAGE_OK, "%s", err);
        CHECK(img.w == w && img.h == h && img.c == channels);
        if (img.px != NULL)
            CHECK(memcmp(img.px, px, (size_t)w * h * channels) == 0);
        image_free(&img);
        free(png);
    }
    {
        uint8_t px[4] = { 0 }, *png = (uint8_t *)1;
        size_t len = 5;
        CHECK(pngenc_gray(&png, &len, px, 0, 1, err, sizeof err) == -1 && png == NULL && len == 0);
        CHECK(pngenc_rgb(&png, &len, NULL, 1, 1, err, sizeof err) == -1);
        CHECK(pngenc_gray(&png, &len, px, 1, FILTERS_MAX_SIDE + 1, NULL, 0) == -1);
        CHECK(pngenc_gray(NULL, &len, px, 1, 1, err, sizeof err) == -1);
    }
}

static void test_layout(void)
{
    filters_grid g;
    /* The report's net: 32 filters of 3x7x7. */
    CHECK(filters_layout(&g, 32, 3, 7, 7) == 0);
    CHECK(g.cols == 6 && g.rows == 6 && g.scale == 5 && g.cell_w == 35 && g.cell_h == 35);
    CHECK(g.gutter == FILTERS_GUTTER && g.channels == 3);
    CHECK(g.width == 6 * 35 + 7 * FILTERS_GUTTER && g.height == g.width);
    CHECK(filters_layout(&g, 1, 1, 3, 3) == 0 && g.cols == 1 && g.rows == 1 && g.scale == 11);
    CHECK(g.width == 33 + 2 * FILTERS_GUTTER && g.channels == 1);
    CHECK(filters_layout(&g, 10, 2, 5, 5) == 0 && g.cols == 4 && g.rows == 3 && g.channels == 1);
    CHECK(filters_layout(&g, 16, 1, 1, 1) == 0 && g.cols == 4 && g.rows == 4 && g.scale == 32);
    CHECK(filters_layout(&g, 17, 1, 3, 5) == 0 && g.cols == 5 && g.rows == 4);
    CHECK(g.scale == 11 && g.cell_w == 55 && g.cell_h == 33);
    CHECK(g.width == 5 * 55 + 6 * FILTERS_GUTTER && g.height == 4 * 33 + 5 * FILTERS_GUTTER);
    CHECK(filters_layout(&g, 64, 3, 40, 40) == 0 && g.scale == 1);
    for (int k = 1; k <= 200; k++) {
        CHECK(filters_layout(&g, k, 1, 3, 3) == 0);
        CHECK(g.cols == (int)ceil(sqrt((double)k)));
        CHECK(g.cols * g.rows >= k && g.cols * (g.rows - 1) < k);
    }
    CHECK(filters_layout(&g, 0, 3, 7, 7) == -1);
    CHECK(filters_layout(&g, FILTERS_MAX_K + 1, 3, 7, 7) == -1);
    CHECK(filters_layout(&g, 8, 0, 7, 7) == -1);
    CHECK(filters_layout(&g, 8, 3, FILTERS_MAX_RS + 1, 7) == -1);
    /* Every size in range, but the picture would be too wide. */
    CHECK(filters_layout(&g, FILTERS_MAX_K, 3, FILTERS_MAX_RS, FILTERS_MAX_RS) == -1);
    CHECK(filters_layout(NULL, 8, 3, 7, 7) == -1);
}

/* The reference drawing of filters (K,C,R,S): gw x gh x ch bytes. */
static uint8_t *reference(const filters_grid *g, const float *wt, int K, int C, int R, int S)
{
    int ch = C == 3 ? 3 : 1;
    size_t n = (size_t)g->width * g->height * ch;
    uint8_t *px = malloc(n);
    memset(px, FILTERS_GUTTER_VALUE, n);
    for (int k = 0; k < K; k++) {
        const float *f = wt + (size_t)k * C * R * S;
        double lo = INFINITY, hi = -INFINITY;
        double v[3][64][64];
        for (int c = 0; c < ch; c++)
            for (int r = 0; r < R; r++)
                for (int s = 0; s < S; s++) {
                    double x = 0;
                    if (ch == 3 || C == 1) {
                        x = f[(c * R + r) * S + s];
                    } else {
                        for (int cc = 0; cc < C; cc++)
                            x += f[(cc * R + r) * S + s];
                        x /= C;
                    }
                    v[c][r][s] = x;
                    if (isfinite(x)) {
                        lo = x < lo ? x : lo;
                        hi = x > hi ? x : hi;
                    }
                }
        for (int y = 0; y < R * g->scale; y++)
            for (int x = 0; x < S * g->scale; x++)
                for (int c = 0; c < ch; c++) {
                    double val = v[c][y / g->scale][x / g->scale];
                    int gx = g->gutter + (k % g->cols) * (g->cell_w + g->gutter) + x;
                    int gy = g->gutter + (k / g->cols) * (g->cell_h + g->gutter) + y;
                    uint8_t p = 128;
                    if (!isfinite(val))
                        p = 0;
                    else if (hi > lo)
                        p = (uint8_t)lround((val - lo) / (hi - lo) * 255);
                    px[((size_t)gy * g->width + gx) * ch + c] = p;
                }
    }
    return px;
}

static void check_grid(int K, int C, int R, int S, const float *wt, const char *what)
{
    char err[256];
    uint8_t *png = NULL, *ref;
    size_t len;
    filters_grid g, want;
    image img;
    int ch = C == 3 ? 3 : 1;

    CHECKF(filters_png(&png, &len, &g, wt, K, C, R, S, err, sizeof err) == 0, "%s: %s", what, err);
    if (png == NULL)
        return;
    CHECK(filters_layout(&want, K, C, R, S) == 0 && memcmp(&want, &g, sizeof g) == 0);
    CHECKF(image_decode(&img, png, len, 0, err, sizeof err) == IMAGE_OK, "%s: %s", what, err);
    CHECKF(img.w == g.width && img.h == g.height && img.c == ch, "%s: %dx%dx%d", what, img.w,
           img.h, img.c);
    if (img.px != NULL && img.c == ch) {
        ref = reference(&g, wt, K, C, R, S);
        size_t n = (size_t)img.w * img.h * ch, bad = 0;
        for (size_t i = 0; i < n; i++)
            bad += img.px[i] != ref[i];
        CHECKF(bad == 0, "%s: %zu bytes differ from the reference drawing", what, bad);
        free(ref);
    }
    image_free(&img);
    free(png);
}

static void test_filters(void)
{
    char err[256], tag1[FILTERS_ETAG_LEN], tag2[FILTERS_ETAG_LEN];
    enum { K = 5, C = 3, R = 3, S = 3 };
    float wt[K * C * R * S];
    uint8_t *png = NULL;
    size_t len;
    filters_grid g;
    image img;

    for (size_t i = 0; i < sizeof wt / sizeof wt[0]; i++)
        wt[i] = rndf();
    /* Filter 0 spans [-3, 5]: red at (0,0) is its min, blue at (2,2) its max. */
    wt[0] = -3.0f;
    wt[2 * R * S + 2 * S + 2] = 5.0f;
    /* Filter 1 is constant; filter 2 holds a NaN and an Inf. */
    for (int i = 0; i < C * R * S; i++)
        wt[C * R * S + i] = 0.25f;
    wt[2 * C * R * S + 4] = NAN;
    wt[2 * C * R * S + 5] = INFINITY;

    CHECKF(filters_png(&png, &len, &g, wt, K, C, R, S, err, sizeof err) == 0, "%s", err);
    CHECKF(image_decode(&img, png, len, 0, err, sizeof err) == IMAGE_OK, "%s", err);
    /* 5 filters: 3 columns, 2 rows, 11x enlarged 3x3 filters, 2 px gutters. */
    CHECK(g.cols == 3 && g.rows == 2 && g.scale == 11 && g.cell_w == 33);
    CHECK(img.w == 3 * 33 + 4 * FILTERS_GUTTER && img.h == 2 * 33 + 3 * FILTERS_GUTTER);
    CHECK(img.c == 3);
    if (img.px != NULL && img.c == 3) {
        const int gu = FILTERS_GUTTER;
#define PX(x, y, c) img.px[((size_t)(y) * img.w + (x)) * 3 + (c)]
        /* Filter 0's min (red, (0,0)) is 0 over its whole 11x11 block; its
         * max (blue, (2,2)) is 255. */
        CHECK(PX(gu, gu, 0) == 0 && PX(gu + 10, gu + 10, 0) == 0);
        CHECK(PX(gu + 22, gu + 22, 2) == 255 && PX(gu + 32, gu + 32, 2) == 255);
        /* Gutters: the corner, between cells, and the unused sixth cell. */
        for (int c = 0; c < 3; c++) {
            CHECK(PX(0, 0, c) == FILTERS_GUTTER_VALUE);
            CHECK(PX(gu + 33, gu + 5, c) == FILTERS_GUTTER_VALUE);
            CHECK(PX(gu + 33 + 1, gu + 5, c) == FILTERS_GUTTER_VALUE);
            CHECK(PX(gu + 5, gu + 33 + 1, c) == FILTERS_GUTTER_VALUE);
            CHECK(PX(img.w - 1, img.h - 1, c) == FILTERS_GUTTER_VALUE);
            CHECK(PX(2 * (33 + gu) + gu + 16, 33 + 2 * gu + 16, c) == FILTERS_GUTTER_VALUE);
            /* The constant filter is mid-grey. */
            CHECK(PX(33 + 2 * gu + 16, gu + 16, c) == 128);
        }
        /* Filter 2: NaN (channel 0, pixel (1,1)) and Inf ((1,2)) are 0. */
        CHECK(PX(2 * (33 + gu) + gu + 11 + 5, gu + 11 + 5, 0) == 0);
        CHECK(PX(2 * (33 + gu) + gu + 22 + 5, gu + 11 + 5, 0) == 0);
#undef PX
    }
    image_free(&img);
    free(png);

    /* Whole pictures against the reference: RGB, grey, averaged channels. */
    check_grid(K, C, R, S, wt, "rgb 5x3x3x3");
    {
        static float w2[32 * 3 * 7 * 7], w3[10 * 2 * 5 * 5], w4[7 * 1 * 3 * 5], w5[3 * 4 * 2 * 2];
        for (size_t i = 0; i < sizeof w2 / sizeof w2[0]; i++)
            w2[i] = rndf() * 1e-3f;
        for (size_t i = 0; i < sizeof w3 / sizeof w3[0]; i++)
            w3[i] = rndf();
        for (size_t i = 0; i < sizeof w4 / sizeof w4[0]; i++)
            w4[i] = rndf() * 100;
        for (size_t i = 0; i < sizeof w5 / sizeof w5[0]; i++)
            w5[i] = rndf();
        check_grid(32, 3, 7, 7, w2, "three-layer convnet 32x3x7x7");
        check_grid(10, 2, 5, 5, w3, "two channels averaged");
        check_grid(7, 1, 3, 5, w4, "grey non-square");
        check_grid(3, 4, 2, 2, w5, "four channels averaged");
    }

    /* Errors. */
    CHECK(filters_png(&png, &len, NULL, wt, 0, C, R, S, err, sizeof err) == -1 && png == NULL);
    CHECKF(strstr(err, "filters") != NULL, "%s", err);
    CHECK(filters_png(&png, &len, NULL, NULL, K, C, R, S, err, sizeof err) == -1);
    CHECK(filters_png(&png, &len, NULL, wt, K, C, FILTERS_MAX_RS + 1, S, NULL, 0) == -1);

    /* ETags: quoted 16 hex digits, equal for equal weights. */
    filters_etag(tag1, wt, K, C, R, S);
    filters_etag(tag2, wt, K, C, R, S);
    CHECK(strlen(tag1) == 18 && tag1[0] == '"' && tag1[17] == '"');
    CHECK(strcmp(tag1, tag2) == 0);
    wt[7] += 1.0f;
    filters_etag(tag2, wt, K, C, R, S);
    CHECK(strcmp(tag1, tag2) != 0);
    wt[7] -= 1.0f;
    filters_etag(tag2, wt, K * C, 1, R, S); /* same bytes, other shape */
    CHECK(strcmp(tag1, tag2) != 0);
    filters_etag(tag2, NULL, 0, 0, 0, 0);
    CHECK(strlen(tag2) == 18);
}

int main(void)
{
    test_encode();
    test_layout();
    test_filters();
    return check_result("test_png");
}
