/* test_image.c: image decoding and conversion to model inputs.
 *
 * PNGs of every colour type and bit depth (palette with and without tRNS,
 * grey 1/2/4/8/16, grey+alpha, RGB, RGBA, tRNS on grey and RGB, interlaced)
 * are written here with libpng itself from known samples and must decode
 * to the expected 8-bit pixels; JPEGs are written with libjpeg and must
 * decode within a tolerance. Broken input (truncated at every byte, bad
 * CRCs, bad zlib data, huge headers, random bytes, random mutations) must
 * give an error, never a crash or a leak (run under ASan too). */
#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <png.h>
#include <jpeglib.h>

#include "check.h"
#include "image.h"

/* ---- helpers ---- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 32);
}

static double seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint32_t crc32_png(const uint8_t *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
    }
    return c ^ 0xffffffffu;
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Finds chunk `type` in a PNG: offset of its length field, or 0. */
static size_t find_chunk(const uint8_t *p, size_t len, const char *type)
{
    size_t o = 8;
    while (o + 12 <= len) {
        uint32_t n = get32(p + o);
        if (memcmp(p + o + 4, type, 4) == 0)
            return o;
        o += 12 + n;
    }
    return 0;
}

/* Recomputes the CRC of the chunk at offset o. */
static void fix_crc(uint8_t *p, size_t o)
{
    uint32_t n = get32(p + o);
    put32(p + o + 8 + n, crc32_png(p + o + 4, 4 + n));
}

/* ---- writing PNGs with libpng ---- */

typedef struct membuf {
    uint8_t *p;
    size_t len, cap;
} membuf;

static void mem_write(png_structp png, png_bytep data, size_t n)
{
    membuf *b = png_get_io_ptr(png);
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2;
        b->p = realloc(b->p, b->cap);
        if (b->p == NULL)
            abort();
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
}

static void mem_flush(png_structp png)
{
    (void)png;
}

/* A PNG description: samples[(y*w + x)*nch + ch] are the raw sample values
 * (palette indices for palette images), at most 16 bits. */
typedef struct png_spec {
    const char *name;
    int ct, depth, interlace, w, h;
    int trns;               /* grey/RGB: a transparent colour; palette: alpha entries */
} png_spec;

static int spec_channels(int ct)
{
    switch (ct) {
    case PNG_COLOR_TYPE_GRAY: return 1;
    case PNG_COLOR_TYPE_GRAY_ALPHA: return 2;
    case PNG_COLOR_TYPE_RGB: return 3;
    case PNG_COLOR_TYPE_RGB_ALPHA: return 4;
    default: return 1; /* palette index */
    }
}

#define NPAL 16

static png_color palette[NPAL];
static png_byte pal_alpha[NPAL];

static void init_palette(void)
{
    for (int i = 0; i < NPAL; i++) {
        palette[i].red = (png_byte)(i * 17);
        palette[i].green = (png_byte)(255 - i * 13);
        palette[i].blue = (png_byte)(i * 7 + 3);
        pal_alpha[i] = (png_byte)(i * 16);
    }
}

/* The sample for (x, y, ch) of a spec. */
static unsigned sample(const png_spec *s, int x, int y, int ch)
{
    unsigned maxv = (1u << s->depth) - 1;
    if (s->ct == PNG_COLOR_TYPE_PALETTE) {
        unsigned n = NPAL < maxv + 1 ? NPAL : maxv + 1;
        return (unsigned)(x * 3 + y * 5) % n;
    }
    if (s->depth == 16)
        return (unsigned)(x * 7919 + y * 10007 + ch * 15485 + 1) % 65536u;
    return (unsigned)(x * 7 + y * 13 + ch * 29 + 3) % (maxv + 1);
}

/* The transparent colour of a grey/RGB spec with trns: pixel (1,0)'s. */
static png_color_16 trans_colour(const png_spec *s)
{
    png_color_16 t;
    memset(&t, 0, sizeof t);
    t.gray = (png_uint_16)sample(s, 1, 0, 0);
    t.red = (png_uint_16)sample(s, 1, 0, 0);
    t.green = (png_uint_16)sample(s, 1, 0, 1);
    t.blue = (png_uint_16)sample(s, 1, 0, 2);
    return t;
}

static uint8_t *write_png(size_t *len, const png_spec *s)
{
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    int nch = spec_channels(s->ct);
    int bps = s->depth == 16 ? 2 : 1; /* bytes per sample before packing */
    size_t stride = (size_t)s->w * (size_t)nch * (size_t)bps;
    uint8_t *pix = malloc(stride * (size_t)s->h);
    png_bytep *rows = malloc(sizeof *rows * (size_t)s->h);
    membuf b = { 0 };

    if (setjmp(png_jmpbuf(png))) {
        fprintf(stderr, "write_png %s: libpng error\n", s->name);
        exit(1);
    }
    for (int y = 0; y < s->h; y++) {
        rows[y] = pix + (size_t)y * stride;
        for (int x = 0; x < s->w; x++)
            for (int ch = 0; ch < nch; ch++) {
                unsigned v = sample(s, x, y, ch);
                uint8_t *q = rows[y] + ((size_t)x * nch + ch) * bps;
                if (bps == 2) {
                    q[0] = (uint8_t)(v >> 8);
                    q[1] = (uint8_t)v;
                } else {
                    q[0] = (uint8_t)v;
                }
            }
    }
    png_set_write_fn(png, &b, mem_write, mem_flush);
    png_set_IHDR(png, info, (png_uint_32)s->w, (png_uint_32)s->h, s->depth, s->ct,
                 s->interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (s->ct == PNG_COLOR_TYPE_PALETTE) {
        int n = s->depth == 8 ? NPAL : (1 << s->depth) < NPAL ? (1 << s->depth) : NPAL;
        png_set_PLTE(png, info, palette, n);
        if (s->trns)
            png_set_tRNS(png, info, pal_alpha, n - 1, NULL); /* last entry opaque */
    } else if (s->trns) {
        png_color_16 t = trans_colour(s);
        png_set_tRNS(png, info, NULL, 0, &t);
    }
    png_write_info(png, info);
    if (s->depth < 8)
        png_set_packing(png);
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(rows);
    free(pix);
    *len = b.len;
    return b.p;
}

/* The 8-bit pixel image_decode should produce for (x, y): c channels. */
static int expected(const png_spec *s, int x, int y, uint8_t *px)
{
    int nch = spec_channels(s->ct);
    unsigned maxv = (1u << s->depth) - 1;
    if (s->ct == PNG_COLOR_TYPE_PALETTE) {
        unsigned i = sample(s, x, y, 0);
        int n = s->depth == 8 ? NPAL : (1 << s->depth) < NPAL ? (1 << s->depth) : NPAL;
        px[0] = palette[i].red;
        px[1] = palette[i].green;
        px[2] = palette[i].blue;
        if (!s->trns)
            return 3;
        px[3] = (int)i < n - 1 ? pal_alpha[i] : 255;
        return 4;
    }
    for (int ch = 0; ch < nch; ch++) {
        unsigned v = sample(s, x, y, ch);
        if (s->depth == 16)
            px[ch] = (uint8_t)((v * 255u + 32767u) / 65535u);
        else
            px[ch] = (uint8_t)(v * (255u / maxv));
    }
    if (s->trns) {
        int opaque = 0;
        for (int ch = 0; ch < nch; ch++)
            opaque |= sample(s, x, y, ch) != sample(s, 1, 0, ch);
        px[nch] = opaque ? 255 : 0;
        return nch + 1;
    }
    return nch;
}

static const png_spec specs[] = {
    { "grey1", PNG_COLOR_TYPE_GRAY, 1, 0, 13, 7, 0 },
    { "grey2", PNG_COLOR_TYPE_GRAY, 2, 0, 13, 7, 0 },
    { "grey4", PNG_COLOR_TYPE_GRAY, 4, 0, 13, 7, 0 },
    { "grey8", PNG_COLOR_TYPE_GRAY, 8, 0, 13, 7, 0 },
    { "grey16", PNG_COLOR_TYPE_GRAY, 16, 0, 13, 7, 0 },
    { "grey1 interlaced", PNG_COLOR_TYPE_GRAY, 1, 1, 13, 11, 0 },
    { "grey2 interlaced", PNG_COLOR_TYPE_GRAY, 2, 1, 13, 11, 0 },
    { "grey8 interlaced", PNG_COLOR_TYPE_GRAY, 8, 1, 13, 11, 0 },
    { "grey16 interlaced", PNG_COLOR_TYPE_GRAY, 16, 1, 13, 11, 0 },
    { "grey4+tRNS", PNG_COLOR_TYPE_GRAY, 4, 0, 13, 7, 1 },
    { "grey8+tRNS", PNG_COLOR_TYPE_GRAY, 8, 0, 13, 7, 1 },
    { "grey16+tRNS", PNG_COLOR_TYPE_GRAY, 16, 0, 13, 7, 1 },
    { "grey+alpha8", PNG_COLOR_TYPE_GRAY_ALPHA, 8, 0, 13, 7, 0 },
    { "grey+alpha16", PNG_COLOR_TYPE_GRAY_ALPHA, 16, 0, 13, 7, 0 },
    { "grey+alpha8 interlaced", PNG_COLOR_TYPE_GRAY_ALPHA, 8, 1, 13, 11, 0 },
    { "rgb8", PNG_COLOR_TYPE_RGB, 8, 0, 13, 7, 0 },
    { "rgb16", PNG_COLOR_TYPE_RGB, 16, 0, 13, 7, 0 },
    { "rgb8+tRNS", PNG_COLOR_TYPE_RGB, 8, 0, 13, 7, 1 },
    { "rgb16+tRNS", PNG_COLOR_TYPE_RGB, 16, 0, 13, 7, 1 },
    { "rgb8 interlaced", PNG_COLOR_TYPE_RGB, 8, 1, 13, 11, 0 },
    { "rgb16 interlaced", PNG_COLOR_TYPE_RGB, 16, 1, 17, 9, 0 },
    { "rgba8", PNG_COLOR_TYPE_RGB_ALPHA, 8, 0, 13, 7, 0 },
    { "rgba16", PNG_COLOR_TYPE_RGB_ALPHA, 16, 0, 13, 7, 0 },
    { "rgba8 interlaced", PNG_COLOR_TYPE_RGB_ALPHA, 8, 1, 13, 11, 0 },
    { "palette1", PNG_COLOR_TYPE_PALETTE, 1, 0, 13, 7, 0 },
    { "palette2", PNG_COLOR_TYPE_PALETTE, 2, 0, 13, 7, 0 },
    { "palette4", PNG_COLOR_TYPE_PALETTE, 4, 0, 13, 7, 0 },
    { "palette8", PNG_COLOR_TYPE_PALETTE, 8, 0, 13, 7, 0 },
    { "palette8+tRNS", PNG_COLOR_TYPE_PALETTE, 8, 0, 13, 7, 1 },
    { "palette4+tRNS interlaced", PNG_COLOR_TYPE_PALETTE, 4, 1, 13, 11, 1 },
    { "palette1+tRNS interlaced", PNG_COLOR_TYPE_PALETTE, 1, 1, 9, 9, 1 },
};

static void test_png_formats(void)
{
    char err[256];
    init_palette();
    for (size_t t = 0; t < sizeof specs / sizeof specs[0]; t++) {
        const png_spec *s = &specs[t];
        size_t len;
        uint8_t *data = write_png(&len, s);
        image img;
        image_header hd;
        int bad = 0;
        image_status st = image_decode(&img, data, len, 0, err, sizeof err);

        CHECKF(st == IMAGE_OK, "%s: %s", s->name, err);
        CHECK(image_probe(&hd, data, len, err, sizeof err) == IMAGE_OK);
        CHECKF(hd.format == IMAGE_FMT_PNG && hd.w == s->w && hd.h == s->h, "%s", s->name);
        CHECKF(hd.grey == (s->ct == PNG_COLOR_TYPE_GRAY || s->ct == PNG_COLOR_TYPE_GRAY_ALPHA),
               "%s", s->name);
        if (st == IMAGE_OK) {
            uint8_t want[4];
            int c = expected(s, 0, 0, want);
            CHECKF(img.w == s->w && img.h == s->h && img.c == c, "%s: %dx%dx%d, want c=%d",
                   s->name, img.w, img.h, img.c, c);
            for (int y = 0; y < s->h && img.c == c && !bad; y++)
                for (int x = 0; x < s->w && !bad; x++) {
                    const uint8_t *got = img.px + ((size_t)y * img.w + x) * img.c;
                    expected(s, x, y, want);
                    for (int ch = 0; ch < c; ch++)
                        if (got[ch] != want[ch]) {
                            CHECKF(0, "%s: (%d,%d) ch %d = %d, want %d", s->name, x, y, ch,
                                   got[ch], want[ch]);
                            bad = 1;
                        }
                }
        }
        image_free(&img);
        free(data);
    }
}

/* A noisy RGB PNG big enough for several IDAT rows. */
static uint8_t *noisy_png(size_t *len, int w, int h, int ct)
{
    png_spec s = { "noisy", ct, 8, 0, w, h, 0 };
    return write_png(len, &s);
}

static void test_png_broken(void)
{
    char err[256];
    size_t len;
    uint8_t *good = noisy_png(&len, 24, 16, PNG_COLOR_TYPE_RGB);
    uint8_t *buf = malloc(len);
    image img;
    size_t o;
    int ok_cuts = 0;

    /* Truncated at every byte: always an error. */
    for (size_t cut = 0; cut < len; cut++) {
        image_status st = image_decode(&img, good, cut, 0, err, sizeof err);
        if (st == IMAGE_OK)
            ok_cuts++;
        CHECK(img.px == NULL);
        if (cut >= 8)
            CHECKF(st == IMAGE_ERR_CORRUPT, "cut %zu: status %d", cut, (int)st);
        image_free(&img);
    }
    CHECKF(ok_cuts == 0, "%d cut points decoded", ok_cuts);
    CHECK(image_decode(&img, good, len - 1, 0, err, sizeof err) == IMAGE_ERR_CORRUPT);
    CHECKF(strncmp(err, "image: PNG decode failed: ", 26) == 0, "%s", err);

    /* A flipped byte in IHDR's CRC, in IDAT's data, in IDAT's CRC. */
    memcpy(buf, good, len);
    buf[29] ^= 0x55;
    CHECK(image_decode(&img, buf, len, 0, err, sizeof err) == IMAGE_ERR_CORRUPT);
    o = find_chunk(good, len, "IDAT");
    CHECK(o != 0);
    memcpy(buf, good, len);
    buf[o + 8 + 10] ^= 0x55;
    CHECK(image_decode(&img, buf, len, 0, err, sizeof err) == IMAGE_ERR_CORRUPT);
    memcpy(buf, good, len);
    buf[o + 8 + get32(good + o)] ^= 0x01;
    CHECK(image_decode(&img, buf, len, 0, err, sizeof err) == IMAGE_ERR_CORRUPT);
    CHECKF(strstr(err, "CRC") != NULL, "%s", err);
    /* Corrupt zlib data with a valid CRC: the inflater must catch it. */
    memcpy(buf, good, len);
    for (uint32_t i = 2; i < get32(good + o); i += 7)
        buf[o + 8 + i] ^= 0xa5;
    fix_crc(buf, o);
    CHECK(image_decode(&img, buf, len, 0, err, sizeof err) == IMAGE_ERR_CORRUPT);
    image_free(&img);
    /* The zlib header's window bits (bad CMF) with a valid CRC. */
    memcpy(buf, good, len);
    buf[o + 8] = 0xff;
    fix_crc(buf, o);
    CHECK(image_decode(&img, buf, len, 0, err, sizeof err) == IMAGE_ERR_CORRUPT);
    /* No IEND. */
    CHECK(image_decode(&img, good, len - 12, 0, err, sizeof err) == IMAGE_ERR_CORRUPT);
    /* Random mutations: anything but a crash (ASan watches). */
    for (int it = 0; it < 2000; it++) {
        memcpy(buf, good, len);
        for (int k = 0, n = 1 + (int)(rnd() % 4); k < n; k++)
            buf[8 + rnd() % (len - 8)] = (uint8_t)rnd();
        if (image_decode(&img, buf, len, 0, err, sizeof err) == IMAGE_OK)
            CHECK(img.px != NULL && img.w == 24 && img.h == 16);
        image_free(&img);
    }
    free(buf);
    free(good);
}

/* A PNG whose IHDR claims w x h, with a tiny IDAT and an IEND. */
static uint8_t *header_png(size_t *len, uint32_t w, uint32_t h)
{
    static const uint8_t idat[] = { 0x78, 0x9c, 0x63, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01 };
    uint8_t *p = calloc(1, 8 + 25 + 12 + sizeof idat + 12);
    size_t o = 8;
    memcpy(p, "\x89PNG\r\n\x1a\n", 8);
    put32(p + o, 13);
    memcpy(p + o + 4, "IHDR", 4);
    put32(p + o + 8, w);
    put32(p + o + 12, h);
    p[o + 16] = 8;
    p[o + 17] = 2;
    fix_crc(p, o);
    o += 25;
    put32(p + o, sizeof idat);
    memcpy(p + o + 4, "IDAT", 4);
    memcpy(p + o + 8, idat, sizeof idat);
    fix_crc(p, o);
    o += 12 + sizeof idat;
    put32(p + o, 0);
    memcpy(p + o + 4, "IEND", 4);
    fix_crc(p, o);
    *len = o + 12;
    return p;
}

static void test_limits(void)
{
    char err[256];
    size_t len;
    image img;
    uint8_t *p = header_png(&len, 100000, 100000);
    double t0 = seconds();
    image_status st = image_decode(&img, p, len, 0, err, sizeof err);

    CHECKF(st == IMAGE_ERR_TOO_LARGE, "status %d: %s", (int)st, err);
    CHECK(seconds() - t0 < 0.05);
    CHECK(img.px == NULL);
    CHECKF(strstr(err, "100000x100000") != NULL, "%s", err);
    free(p);
    /* One side too long, within the pixel count. */
    p = header_png(&len, IMAGE_MAX_SIDE + 1, 1);
    CHECK(image_decode(&img, p, len, 0, err, sizeof err) == IMAGE_ERR_TOO_LARGE);
    free(p);
    /* The pixel limit is the caller's. */
    p = header_png(&len, 2000, 1000);
    CHECK(image_decode(&img, p, len, 1000000, err, sizeof err) == IMAGE_ERR_TOO_LARGE);
    /* Within the limit: allocated, then the data runs out. */
    CHECK(image_decode(&img, p, len, 0, err, sizeof err) == IMAGE_ERR_CORRUPT);
    CHECK(img.px == NULL);
    free(p);
    /* Width 0 and width 2^31 are not PNGs. */
    p = header_png(&len, 0, 10);
    CHECK(image_decode(&img, p, len, 0, err, sizeof err) == IMAGE_ERR_CORRUPT);
    free(p);
    p = header_png(&len, 0x80000000u, 10);
    CHECK(image_decode(&img, p, len, 0, err, sizeof err) == IMAGE_ERR_CORRUPT);
    free(p);
}

static void test_garbage(void)
{
    char err[256];
    uint8_t buf[4096];
    image img;
    image_header hd;

    CHECK(image_decode(&img, "", 0, 0, err, sizeof err) == IMAGE_ERR_CORRUPT);
    CHECKF(strcmp(err, "image: empty input") == 0, "%s", err);
    CHECK(image_decode(&img, NULL, 10, 0, err, sizeof err) == IMAGE_ERR_CORRUPT);
    CHECK(image_decode(NULL, buf, 10, 0, err, sizeof err) == IMAGE_ERR_ARG);
    CHECK(image_decode(&img, "GIF89a\1\0\1\0\0\0\0", 13, 0, err, sizeof err) ==
          IMAGE_ERR_UNSUPPORTED);
    CHECKF(strstr(err, "GIF") != NULL, "%s", err);
    CHECK(image_decode(&img, "hello world", 11, 0, NULL, 0) == IMAGE_ERR_UNSUPPORTED);
    CHECK(image_probe(&hd, "\x89PNG\r\n\x1a\n", 8, err, sizeof err) == IMAGE_ERR_CORRUPT);
    CHECK(image_decode(&img, "\xff\xd8\xff", 3, 0, err, sizeof err) == IMAGE_ERR_CORRUPT);
    for (int it = 0; it < 3000; it++) {
        size_t n = 1 + rnd() % sizeof buf;
        for (size_t i = 0; i < n; i++)
            buf[i] = (uint8_t)rnd();
        if (it % 3 == 1 && n >= 8)
            memcpy(buf, "\x89PNG\r\n\x1a\n", 8);
        if (it % 3 == 2 && n >= 3)
            memcpy(buf, "\xff\xd8\xff", 3);
        CHECK(image_decode(&img, buf, n, 0, err, sizeof err) != IMAGE_OK);
        CHECK(img.px == NULL);
        image_free(&img);
        (void)image_probe(&hd, buf, n, err, sizeof err);
    }
    image_free(NULL);
}

/* ---- JPEG ---- */

/* Writes a w x h JPEG of `comps` components (1 grey, 3 RGB, 4 CMYK written
 * Adobe-inverted) from px (HWC). */
static uint8_t *write_jpeg(size_t *len, const uint8_t *px, int w, int h, int comps,
                           int progressive, int quality)
{
    struct jpeg_compress_struct ci;
    struct jpeg_error_mgr jerr;
    unsigned char *out = NULL;
    unsigned long n = 0;

    ci.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&ci);
    jpeg_mem_dest(&ci, &out, &n);
    ci.image_width = (JDIMENSION)w;
    ci.image_height = (JDIMENSION)h;
    ci.input_components = comps;
    ci.in_color_space = comps == 1 ? JCS_GRAYSCALE : comps == 3 ? JCS_RGB : JCS_CMYK;
    jpeg_set_defaults(&ci);
    jpeg_set_quality(&ci, quality, TRUE);
    if (comps == 4)
        jpeg_set_colorspace(&ci, JCS_CMYK); /* writes the Adobe marker */
    if (progressive)
        jpeg_simple_progression(&ci);
    jpeg_start_compress(&ci, TRUE);
    while (ci.next_scanline < ci.image_height) {
        JSAMPROW row = (JSAMPROW)(px + (size_t)ci.next_scanline * (size_t)w * (size_t)comps);
        jpeg_write_scanlines(&ci, &row, 1);
    }
    jpeg_finish_compress(&ci);
    jpeg_destroy_compress(&ci);
    *len = n;
    return out;
}

/* A smooth test picture, HWC with `comps` channels. */
static uint8_t *smooth(int w, int h, int comps)
{
    uint8_t *px = malloc((size_t)w * h * comps);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < comps; c++)
                px[((size_t)y * w + x) * comps + c] =
                    (uint8_t)(40 + (x * 160) / w + (c == 1 ? (y * 50) / h : 0) + c * 10);
    return px;
}

static double mean_abs_diff(const uint8_t *a, const uint8_t *b, size_t n, int *maxd)
{
    double s = 0;
    *maxd = 0;
    for (size_t i = 0; i < n; i++) {
        int d = abs((int)a[i] - (int)b[i]);
        s += d;
        if (d > *maxd)
            *maxd = d;
    }
    return s / (double)n;
}

static void test_jpeg(void)
{
    char err[256];
    const int w = 48, h = 32;
    image img;
    image_header hd;
    size_t len;
    int maxd;

    for (int comps = 1; comps <= 3; comps += 2)
        for (int prog = 0; prog < 2; prog++) {
            uint8_t *px = smooth(w, h, comps);
            uint8_t *jpg = write_jpeg(&len, px, w, h, comps, prog, 95);
            image_status st = image_decode(&img, jpg, len, 0, err, sizeof err);
            CHECKF(st == IMAGE_OK, "jpeg comps %d prog %d: %s", comps, prog, err);
            CHECK(image_probe(&hd, jpg, len, err, sizeof err) == IMAGE_OK);
            CHECK(hd.format == IMAGE_FMT_JPEG && hd.w == w && hd.h == h && hd.grey == (comps == 1));
            if (st == IMAGE_OK) {
                double mad;
                CHECK(img.w == w && img.h == h && img.c == comps);
                mad = mean_abs_diff(img.px, px, (size_t)w * h * comps, &maxd);
                CHECKF(mad < 2.0 && maxd <= 16, "jpeg comps %d: mean %.2f max %d", comps, mad,
                       maxd);
            }
            image_free(&img);
            /* Truncated anywhere: an error (premature end is fatal). */
            for (size_t cut = 0; cut < len; cut += 1 + cut / 64) {
                CHECKF(image_decode(&img, jpg, cut, 0, err, sizeof err) != IMAGE_OK, "cut %zu",
                       cut);
                image_free(&img);
            }
            CHECK(image_decode(&img, jpg, len - 2, 0, err, sizeof err) == IMAGE_ERR_CORRUPT);
            CHECKF(strncmp(err, "image: JPEG decode failed: ", 27) == 0, "%s", err);
            /* Mutations: anything but a crash. */
            for (int it = 0; it < 300; it++) {
                uint8_t *m = malloc(len);
                memcpy(m, jpg, len);
                for (int k = 0; k < 3; k++)
                    m[3 + rnd() % (len - 3)] = (uint8_t)rnd();
                if (image_decode(&img, m, len, 0, err, sizeof err) == IMAGE_OK)
                    CHECK(img.w >= 1 && img.h >= 1 && img.px != NULL);
                image_free(&img);
                free(m);
            }
            free(jpg);
            free(px);
        }

    /* CMYK (Adobe-inverted): ink C' = R, M' = G, Y' = B, K' = 255 gives RGB. */
    {
        uint8_t *rgb = smooth(w, h, 3), *cmyk = malloc((size_t)w * h * 4), *jpg;
        for (int i = 0; i < w * h; i++) {
            memcpy(cmyk + 4 * i, rgb + 3 * i, 3);
            cmyk[4 * i + 3] = 255;
        }
        jpg = write_jpeg(&len, cmyk, w, h, 4, 0, 95);
        CHECKF(image_decode(&img, jpg, len, 0, err, sizeof err) == IMAGE_OK, "cmyk: %s", err);
        if (img.px != NULL) {
            CHECK(img.c == 3);
            CHECKF(mean_abs_diff(img.px, rgb, (size_t)w * h * 3, &maxd) < 2.0, "cmyk max %d", maxd);
        }
        image_free(&img);
        free(jpg);
        free(cmyk);
        free(rgb);
    }

    /* A SOF claiming 60000 x 60000: rejected from the header. */
    {
        uint8_t *px = smooth(16, 16, 3), *jpg = write_jpeg(&len, px, 16, 16, 3, 0, 90);
        size_t i;
        double t0;
        for (i = 2; i + 9 < len; i++)
            if (jpg[i] == 0xff && jpg[i + 1] == 0xc0)
                break;
        CHECK(i + 9 < len);
        jpg[i + 5] = 60000 >> 8;
        jpg[i + 6] = 60000 & 0xff;
        jpg[i + 7] = 60000 >> 8;
        jpg[i + 8] = 60000 & 0xff;
        t0 = seconds();
        CHECKF(image_decode(&img, jpg, len, 0, err, sizeof err) == IMAGE_ERR_TOO_LARGE, "%s", err);
        CHECK(seconds() - t0 < 0.05);
        CHECK(img.px == NULL);
        free(jpg);
        free(px);
    }
}

/* ---- conversion ---- */

static image make(int w, int h, int c, const uint8_t *px)
{
    image img = { w, h, c, malloc((size_t)w * h * c) };
    memcpy(img.px, px, (size_t)w * h * c);
    return img;
}

static void test_convert(void)
{
    char err[256];
    uint8_t out[64 * 50 * 3];

    /* A constant image stays constant, shrunk, enlarged or odd-sized. */
    {
        static const uint8_t col[3] = { 10, 200, 77 };
        static const int sizes[][2] = { { 28, 28 }, { 64, 50 }, { 5, 3 }, { 37, 23 }, { 1, 1 } };
        image img = { 37, 23, 3, malloc(37 * 23 * 3) };
        for (int i = 0; i < 37 * 23; i++)
            memcpy(img.px + 3 * i, col, 3);
        for (size_t t = 0; t < sizeof sizes / sizeof sizes[0]; t++) {
            int ow = sizes[t][0], oh = sizes[t][1], bad = 0;
            CHECK(image_to_input(out, 3, oh, ow, &img, err, sizeof err) == IMAGE_OK);
            for (int ch = 0; ch < 3; ch++)
                for (int i = 0; i < ow * oh; i++)
                    bad |= out[ch * ow * oh + i] != col[ch];
            CHECKF(!bad, "constant image resized to %dx%d changed", ow, oh);
        }
        image_free(&img);
    }
    /* 2x2 -> 1x1 is the mean (rounded), per channel. */
    {
        static const uint8_t px[] = { 10, 0, 255, 20, 100, 255, 30, 50, 0, 41, 51, 0 };
        image img = make(2, 2, 3, px);
        CHECK(image_to_input(out, 3, 1, 1, &img, err, sizeof err) == IMAGE_OK);
        CHECKF(out[0] == 25 && out[1] == 50 && out[2] == 128, "%d %d %d", out[0], out[1], out[2]);
        image_free(&img);
    }
    /* 4x4 -> 2x2 averages blocks; 3 -> 2 weighs by coverage. */
    {
        uint8_t px[16];
        image img;
        for (int i = 0; i < 16; i++)
            px[i] = (uint8_t)(i * 10);
        img = make(4, 4, 1, px);
        CHECK(image_to_input(out, 1, 2, 2, &img, err, sizeof err) == IMAGE_OK);
        CHECKF(out[0] == 25 && out[1] == 45 && out[2] == 105 && out[3] == 125, "%d %d %d %d",
               out[0], out[1], out[2], out[3]);
        image_free(&img);
        img = make(3, 1, 1, (const uint8_t[]){ 0, 90, 180 });
        CHECK(image_to_input(out, 1, 1, 2, &img, err, sizeof err) == IMAGE_OK);
        CHECKF(out[0] == 30 && out[1] == 150, "%d %d", out[0], out[1]);
        image_free(&img);
        /* Enlarging is bilinear with aligned centres: 0,100 -> 0,25,75,100. */
        img = make(2, 1, 1, (const uint8_t[]){ 0, 100 });
        CHECK(image_to_input(out, 1, 1, 4, &img, err, sizeof err) == IMAGE_OK);
        CHECKF(out[0] == 0 && out[1] == 25 && out[2] == 75 && out[3] == 100, "%d %d %d %d",
               out[0], out[1], out[2], out[3]);
        image_free(&img);
    }
    /* Same size: an exact copy, HWC -> CHW. */
    {
        uint8_t px[13 * 7 * 3];
        image img;
        int bad = 0;
        for (size_t i = 0; i < sizeof px; i++)
            px[i] = (uint8_t)rnd();
        img = make(13, 7, 3, px);
        CHECK(image_to_input(out, 3, 7, 13, &img, err, sizeof err) == IMAGE_OK);
        for (int ch = 0; ch < 3; ch++)
            for (int i = 0; i < 13 * 7; i++)
                bad |= out[ch * 13 * 7 + i] != px[i * 3 + ch];
        CHECK(!bad);
        image_free(&img);
    }
    /* Colour: BT.601 luma; grey replicated; alpha over black. */
    {
        static const uint8_t rgb[] = { 255, 0, 0, 0, 255, 0, 0, 0, 255, 100, 100, 100 };
        static const uint8_t grey[] = { 0, 17, 200, 255 };
        static const uint8_t rgba[] = { 200, 100, 50, 0, 200, 100, 50, 255, 200, 100, 50, 128,
                                        9, 9, 9, 9 };
        static const uint8_t ga[] = { 200, 0, 200, 255, 200, 51, 0, 0 };
        image img = make(4, 1, 3, rgb);
        CHECK(image_to_input(out, 1, 1, 4, &img, err, sizeof err) == IMAGE_OK);
        CHECKF(out[0] == 76 && out[1] == 150 && out[2] == 29 && out[3] == 100, "%d %d %d %d",
               out[0], out[1], out[2], out[3]);
        image_free(&img);
        img = make(2, 2, 1, grey);
        CHECK(image_to_input(out, 3, 2, 2, &img, err, sizeof err) == IMAGE_OK);
        for (int ch = 0; ch < 3; ch++)
            CHECK(memcmp(out + ch * 4, grey, 4) == 0);
        image_free(&img);
        img = make(4, 1, 4, rgba);
        CHECK(image_to_input(out, 3, 1, 4, &img, err, sizeof err) == IMAGE_OK);
        CHECK(out[0] == 0 && out[4] == 0 && out[8] == 0);       /* transparent */
        CHECK(out[1] == 200 && out[5] == 100 && out[9] == 50);  /* opaque */
        CHECKF(out[2] == 100 && out[6] == 50 && out[10] == 25, "%d %d %d", out[2], out[6], out[10]);
        image_free(&img);
        img = make(4, 1, 2, ga);
        CHECK(image_to_input(out, 1, 1, 4, &img, err, sizeof err) == IMAGE_OK);
        CHECKF(out[0] == 0 && out[1] == 200 && out[2] == 40 && out[3] == 0, "%d %d %d %d",
               out[0], out[1], out[2], out[3]);
        image_free(&img);
    }
    /* Bad arguments leave out alone. */
    {
        image img = make(2, 1, 1, (const uint8_t[]){ 1, 2 });
        image none = { 0 };
        out[0] = 77;
        CHECK(image_to_input(out, 2, 4, 4, &img, err, sizeof err) == IMAGE_ERR_ARG);
        CHECK(image_to_input(out, 1, 0, 4, &img, err, sizeof err) == IMAGE_ERR_ARG);
        CHECK(image_to_input(out, 1, 4, IMAGE_MAX_SIDE + 1, &img, err, sizeof err) ==
              IMAGE_ERR_ARG);
        CHECK(image_to_input(out, 1, 4, 4, &none, err, sizeof err) == IMAGE_ERR_ARG);
        CHECK(image_to_input(NULL, 1, 4, 4, &img, err, sizeof err) == IMAGE_ERR_ARG);
        CHECK(out[0] == 77);
        image_free(&img);
    }
    /* Normalisation: pixel/255 - mean, as nn_dataset_gather computes it. */
    {
        static const uint8_t chw[] = { 0, 255, 51, 102, 0, 255 };
        static const float mean[3] = { 0.5f, 0.25f, 0.0f };
        nn_real x[6];
        image_normalize(x, chw, 3, 1, 2, mean);
        CHECK(x[0] == (nn_real)(0.0 - 0.5) && x[1] == (nn_real)(1.0 - 0.5));
        CHECK(x[2] == (nn_real)(51 / 255.0 - (double)0.25f));
        CHECK(x[5] == (nn_real)1.0);
        image_normalize(x, chw, 1, 2, 3, NULL);
        CHECK(x[1] == (nn_real)1.0 && x[2] == (nn_real)(0.2));
    }
}

/* Decoded PNG -> input: the whole chain, and files. */
static void test_files(void)
{
    char dir[] = "/tmp/convnetd-test-image-XXXXXX", path[128], err[512];
    png_spec s = { "file", PNG_COLOR_TYPE_RGB, 8, 0, 13, 7, 0 };
    size_t len;
    uint8_t *data = write_png(&len, &s);
    image img;
    image_header hd;
    FILE *f;

    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        exit(1);
    }
    snprintf(path, sizeof path, "%s/a.png", dir);
    f = fopen(path, "wb");
    fwrite(data, 1, len, f);
    fclose(f);
    CHECKF(image_decode_file(&img, path, 0, err, sizeof err) == IMAGE_OK, "%s", err);
    CHECK(img.w == 13 && img.h == 7 && img.c == 3);
    image_free(&img);
    CHECK(image_probe_file(&hd, path, err, sizeof err) == IMAGE_OK && hd.w == 13 && hd.h == 7);
    /* A truncated file names itself. */
    f = fopen(path, "wb");
    fwrite(data, 1, len / 2, f);
    fclose(f);
    CHECK(image_decode_file(&img, path, 0, err, sizeof err) == IMAGE_ERR_CORRUPT);
    CHECKF(strncmp(err, path, strlen(path)) == 0 && strstr(err, "PNG decode failed") != NULL,
           "%s", err);
    unlink(path);
    CHECK(image_decode_file(&img, path, 0, err, sizeof err) == IMAGE_ERR_IO);
    CHECKF(strstr(err, path) != NULL, "%s", err);
    CHECK(image_decode_file(&img, dir, 0, err, sizeof err) == IMAGE_ERR_IO);
    rmdir(dir);
    free(data);
}

int main(void)
{
    test_png_formats();
    test_png_broken();
    test_limits();
    test_garbage();
    test_jpeg();
    test_convert();
    test_files();
    return check_result("test_image");
}
