/* image.c: PNG and JPEG decoding, conversion to a model's input shape and
 * normalisation (see image.h).
 *
 * libpng and libjpeg report errors by longjmp. Each decoder keeps every
 * resource it acquires in a job struct that lives in the CALLER's frame and
 * runs the library calls in a separate function that owns the setjmp, so no
 * local variable of a function that calls setjmp is modified after it (C11
 * 7.13.2.1: such locals would be indeterminate after the longjmp). The
 * caller then frees whatever the job holds, on success and failure alike. */
#include "image.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <png.h>
#include <jpeglib.h>
#include <jerror.h>

#define MSG_LEN 200
#define PNG_CHUNK_MALLOC_MAX ((png_alloc_size_t)8 << 20)  /* one ancillary chunk */
#define PROBE_PREFIX ((size_t)64 << 10)

static const uint8_t png_magic[8] = { 0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a };

/* ---- helpers ---- */

static image_status fail(char *err, size_t errlen, image_status st, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static image_status fail(char *err, size_t errlen, image_status st, const char *fmt, ...)
{
    if (err != NULL && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return st;
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

const char *image_status_str(image_status s)
{
    switch (s) {
    case IMAGE_OK: return "ok";
    case IMAGE_ERR_ARG: return "bad argument";
    case IMAGE_ERR_UNSUPPORTED: return "unsupported image format";
    case IMAGE_ERR_CORRUPT: return "corrupt image";
    case IMAGE_ERR_TOO_LARGE: return "image too large";
    case IMAGE_ERR_NOMEM: return "out of memory";
    case IMAGE_ERR_IO: return "I/O error";
    }
    return "unknown status";
}

image_format image_detect(const void *data, size_t len)
{
    const uint8_t *p = data;
    if (p == NULL)
        return IMAGE_FMT_UNKNOWN;
    if (len >= 8 && memcmp(p, png_magic, 8) == 0)
        return IMAGE_FMT_PNG;
    if (len >= 3 && p[0] == 0xff && p[1] == 0xd8 && p[2] == 0xff)
        return IMAGE_FMT_JPEG;
    return IMAGE_FMT_UNKNOWN;
}

/* The name of a format we recognise but do not decode, for the message. */
static const char *other_format(const uint8_t *p, size_t len)
{
    if (len >= 6 && (memcmp(p, "GIF87a", 6) == 0 || memcmp(p, "GIF89a", 6) == 0))
        return "GIF";
    if (len >= 12 && memcmp(p, "RIFF", 4) == 0 && memcmp(p + 8, "WEBP", 4) == 0)
        return "WebP";
    if (len >= 4 && (memcmp(p, "II*\0", 4) == 0 || memcmp(p, "MM\0*", 4) == 0))
        return "TIFF";
    if (len >= 14 && p[0] == 'B' && p[1] == 'M')
        return "BMP";
    return NULL;
}

static image_status unknown_format(const uint8_t *p, size_t len, char *err, size_t errlen)
{
    const char *name = other_format(p, len);
    if (name != NULL)
        return fail(err, errlen, IMAGE_ERR_UNSUPPORTED,
                    "image: %s is not supported; send PNG or JPEG", name);
    return fail(err, errlen, IMAGE_ERR_UNSUPPORTED,
                "image: unknown format (neither PNG nor JPEG)");
}

static image_status check_limits(uint64_t w, uint64_t h, uint64_t max_pixels,
                                 char *err, size_t errlen)
{
    if (max_pixels == 0)
        max_pixels = IMAGE_DEFAULT_MAX_PIXELS;
    if (w > IMAGE_MAX_SIDE || h > IMAGE_MAX_SIDE || w * h > max_pixels)
        return fail(err, errlen, IMAGE_ERR_TOO_LARGE,
                    "image: %llux%llu pixels is above the limit (%llu pixels, %d per side)",
                    (unsigned long long)w, (unsigned long long)h,
                    (unsigned long long)max_pixels, IMAGE_MAX_SIDE);
    return IMAGE_OK;
}

/* ---- PNG ---- */

/* IHDR is the first chunk of every PNG: read it by hand, so the limits are
 * checked before libpng allocates anything. */
static image_status png_probe(image_header *out, const uint8_t *p, size_t len,
                              char *err, size_t errlen)
{
    uint32_t w, h;
    int depth, ct, ok;

    if (len < 8 + 8 + 13)
        return fail(err, errlen, IMAGE_ERR_CORRUPT,
                    "image: PNG decode failed: no IHDR chunk (truncated)");
    if (be32(p + 8) != 13 || memcmp(p + 12, "IHDR", 4) != 0)
        return fail(err, errlen, IMAGE_ERR_CORRUPT,
                    "image: PNG decode failed: first chunk is not IHDR");
    w = be32(p + 16);
    h = be32(p + 20);
    depth = p[24];
    ct = p[25];
    switch (ct) {
    case 0: ok = depth == 1 || depth == 2 || depth == 4 || depth == 8 || depth == 16; break;
    case 3: ok = depth == 1 || depth == 2 || depth == 4 || depth == 8; break;
    case 2: case 4: case 6: ok = depth == 8 || depth == 16; break;
    default: ok = 0;
    }
    if (w == 0 || h == 0 || w > 0x7fffffffu || h > 0x7fffffffu || !ok)
        return fail(err, errlen, IMAGE_ERR_CORRUPT,
                    "image: PNG decode failed: IHDR: invalid size or format "
                    "(%ux%u, depth %d, colour type %d)", w, h, depth, ct);
    out->format = IMAGE_FMT_PNG;
    out->w = (int)w;
    out->h = (int)h;
    out->grey = ct == 0 || ct == 4;
    return IMAGE_OK;
}

typedef struct png_job {
    png_structp png;
    png_infop info;
    const uint8_t *data;
    size_t len, pos;
    uint8_t *px;            /* the result, h*w*c */
    png_bytep *rows;        /* h pointers into px */
    int w, h, c;
    image_status st;        /* why png_run gave up, when not via libpng */
    char msg[MSG_LEN];
} png_job;

static void png_on_error(png_structp png, png_const_charp msg)
{
    png_job *j = png_get_error_ptr(png);
    snprintf(j->msg, sizeof j->msg, "%s", msg);
    png_longjmp(png, 1);
}

/* A daemon does not print libpng's warnings (bad ancillary chunks are
 * skipped by libpng itself). */
static void png_on_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

static void png_on_read(png_structp png, png_bytep out, size_t n)
{
    png_job *j = png_get_io_ptr(png);
    if (n > j->len - j->pos)
        png_error(png, "incomplete data (file truncated)");
    memcpy(out, j->data + j->pos, n);
    j->pos += n;
}

/* Runs libpng over j; everything allocated is left in j. 0 or -1 (j->st
 * and j->msg say why). */
static int png_run(png_job *j)
{
    png_uint_32 w, h;
    int depth, ct;
    size_t rowbytes;

    if (setjmp(png_jmpbuf(j->png))) {
        j->st = IMAGE_ERR_CORRUPT;
        return -1;
    }
    png_set_read_fn(j->png, j, png_on_read);
    /* Second line of defence after png_probe's check; also bounds the
     * memory one ancillary chunk (iCCP, zTXt: zlib bombs) may take. */
    png_set_user_limits(j->png, IMAGE_MAX_SIDE, IMAGE_MAX_SIDE);
    png_set_chunk_malloc_max(j->png, PNG_CHUNK_MALLOC_MAX);
    png_read_info(j->png, j->info);
    png_get_IHDR(j->png, j->info, &w, &h, &depth, &ct, NULL, NULL, NULL);

    if (ct == PNG_COLOR_TYPE_PALETTE)
        png_set_palette_to_rgb(j->png);
    if (ct == PNG_COLOR_TYPE_GRAY && depth < 8)
        png_set_expand_gray_1_2_4_to_8(j->png);
    if (png_get_valid(j->png, j->info, PNG_INFO_tRNS))
        png_set_tRNS_to_alpha(j->png);
    if (depth == 16)
        png_set_scale_16(j->png); /* rounds; strip_16 would truncate */
    png_set_interlace_handling(j->png);
    png_read_update_info(j->png, j->info);

    j->w = (int)w;
    j->h = (int)h;
    j->c = png_get_channels(j->png, j->info);
    rowbytes = png_get_rowbytes(j->png, j->info);
    if (j->c < 1 || j->c > 4 || png_get_bit_depth(j->png, j->info) != 8 ||
        rowbytes != (size_t)j->w * (size_t)j->c) {
        snprintf(j->msg, sizeof j->msg, "unexpected layout after conversion");
        j->st = IMAGE_ERR_CORRUPT;
        return -1;
    }
    j->px = malloc((size_t)j->h * rowbytes);
    j->rows = malloc((size_t)j->h * sizeof *j->rows);
    if (j->px == NULL || j->rows == NULL) {
        snprintf(j->msg, sizeof j->msg, "out of memory");
        j->st = IMAGE_ERR_NOMEM;
        return -1;
    }
    for (int y = 0; y < j->h; y++)
        j->rows[y] = j->px + (size_t)y * rowbytes;
    png_read_image(j->png, j->rows);
    /* Reads up to IEND: the last IDAT's CRC, the zlib checksum and a cut
     * file are all caught here. */
    png_read_end(j->png, NULL);
    return 0;
}

static image_status png_decode(image *out, const uint8_t *p, size_t len, uint64_t max_pixels,
                               char *err, size_t errlen)
{
    image_header hd;
    image_status st = png_probe(&hd, p, len, err, errlen);
    png_job j;

    if (st != IMAGE_OK)
        return st;
    st = check_limits((uint64_t)hd.w, (uint64_t)hd.h, max_pixels, err, errlen);
    if (st != IMAGE_OK)
        return st;

    memset(&j, 0, sizeof j);
    j.data = p;
    j.len = len;
    j.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &j, png_on_error, png_on_warning);
    if (j.png != NULL)
        j.info = png_create_info_struct(j.png);
    if (j.png == NULL || j.info == NULL) {
        st = fail(err, errlen, IMAGE_ERR_NOMEM, "image: out of memory creating the PNG decoder");
        goto done;
    }
    if (png_run(&j) != 0) {
        st = fail(err, errlen, j.st, "image: PNG decode failed: %s", j.msg);
        goto done;
    }
    out->w = j.w;
    out->h = j.h;
    out->c = j.c;
    out->px = j.px;
    j.px = NULL;
    st = IMAGE_OK;
done:
    png_destroy_read_struct(&j.png, &j.info, NULL); /* NULLs are fine */
    free(j.rows);
    free(j.px);
    return st;
}

/* ---- JPEG ---- */

typedef struct jpeg_job {
    struct jpeg_decompress_struct ci;
    struct jpeg_error_mgr jerr;
    struct jpeg_progress_mgr progress;
    jmp_buf jb;
    const uint8_t *data;
    size_t len;
    int header_only;        /* stop after jpeg_read_header */
    uint64_t max_pixels;
    uint8_t *px;            /* the result, h*w*c */
    uint8_t *row;           /* CMYK scanline */
    int w, h, c, grey;
    int cmyk;               /* CMYK/YCCK: converted by hand from j->row */
    image_status st;        /* why jpeg_run gave up, when not via libjpeg */
    char msg[MSG_LEN];
    char limit_msg[MSG_LEN];
} jpeg_job;

/* ci is the first member of jpeg_job, so the struct can be found from it. */
static jpeg_job *job_of(j_common_ptr ci)
{
    return (jpeg_job *)(void *)ci;
}

static void jpeg_on_error(j_common_ptr ci)
{
    jpeg_job *j = job_of(ci);
    char buf[JMSG_LENGTH_MAX];
    ci->err->format_message(ci, buf);
    snprintf(j->msg, sizeof j->msg, "%s", buf);
    longjmp(j->jb, 1);
}

/* Warnings are silent, except running out of data: libjpeg would pad the
 * image with grey and carry on, we call a truncated upload corrupt. */
static void jpeg_on_message(j_common_ptr ci, int level)
{
    if (level < 0 && ci->err->msg_code == JWRN_JPEG_EOF)
        jpeg_on_error(ci);
    if (level < 0)
        ci->err->num_warnings++;
}

/* A progressive JPEG may hold thousands of tiny scans, each a full pass over
 * the coefficients: cap them (libjpeg-turbo's advice, djpeg -maxscans). */
static void jpeg_on_progress(j_common_ptr ci)
{
    jpeg_job *j = job_of(ci);
    if (ci->is_decompressor && j->ci.input_scan_number > IMAGE_JPEG_MAX_SCANS) {
        snprintf(j->msg, sizeof j->msg, "more than %d scans", IMAGE_JPEG_MAX_SCANS);
        longjmp(j->jb, 1);
    }
}

static int jpeg_run(jpeg_job *j)
{
    j_decompress_ptr ci = &j->ci;
    uint64_t maxp;

    if (setjmp(j->jb)) {
        j->st = IMAGE_ERR_CORRUPT;
        return -1;
    }
    jpeg_create_decompress(ci);
    jpeg_mem_src(ci, j->data, (unsigned long)j->len);
    /* Caps libjpeg's whole-image buffers (progressive and multi-scan
     * images): a frame beyond the pixel limit never gets this far, this
     * bounds what the headers of an allowed one can make it take. */
    maxp = j->max_pixels ? j->max_pixels : IMAGE_DEFAULT_MAX_PIXELS;
    ci->mem->max_memory_to_use = (long)(maxp * 8 + ((uint64_t)64 << 20));
    j->progress.progress_monitor = jpeg_on_progress;
    ci->progress = &j->progress;
    jpeg_read_header(ci, TRUE);

    j->w = (int)ci->image_width;
    j->h = (int)ci->image_height;
    j->grey = ci->jpeg_color_space == JCS_GRAYSCALE;
    if (j->header_only)
        return 0;
    if (check_limits(ci->image_width, ci->image_height, j->max_pixels, j->limit_msg,
                     sizeof j->limit_msg) != IMAGE_OK) {
        j->st = IMAGE_ERR_TOO_LARGE;
        return -1;
    }
    switch (ci->jpeg_color_space) {
    case JCS_GRAYSCALE:
        ci->out_color_space = JCS_GRAYSCALE;
        j->c = 1;
        break;
    case JCS_CMYK:
    case JCS_YCCK:
        ci->out_color_space = JCS_CMYK;
        j->cmyk = 1;
        j->c = 3;
        break;
    default:
        ci->out_color_space = JCS_RGB;
        j->c = 3;
        break;
    }
    jpeg_start_decompress(ci);
    if ((int)ci->output_width != j->w || (int)ci->output_height != j->h ||
        ci->output_components != (j->cmyk ? 4 : j->c)) {
        snprintf(j->msg, sizeof j->msg, "unexpected output layout");
        j->st = IMAGE_ERR_CORRUPT;
        return -1;
    }
    j->px = malloc((size_t)j->w * (size_t)j->h * (size_t)j->c);
    if (j->cmyk)
        j->row = malloc((size_t)j->w * 4);
    if (j->px == NULL || (j->cmyk && j->row == NULL)) {
        snprintf(j->msg, sizeof j->msg, "out of memory");
        j->st = IMAGE_ERR_NOMEM;
        return -1;
    }
    while (ci->output_scanline < ci->output_height) {
        uint8_t *dst = j->px + (size_t)ci->output_scanline * (size_t)j->w * (size_t)j->c;
        JSAMPROW r = j->cmyk ? j->row : dst;
        if (jpeg_read_scanlines(ci, &r, 1) != 1) {
            snprintf(j->msg, sizeof j->msg, "no scanline returned");
            j->st = IMAGE_ERR_CORRUPT;
            return -1;
        }
        if (j->cmyk) {
            /* Adobe writes CMYK inverted (0 = full ink); others plain. */
            int inv = ci->saw_Adobe_marker;
            for (int x = 0; x < j->w; x++) {
                const uint8_t *s = j->row + 4 * x;
                unsigned k = inv ? s[3] : 255u - s[3];
                for (int ch = 0; ch < 3; ch++) {
                    unsigned v = inv ? s[ch] : 255u - s[ch];
                    dst[3 * x + ch] = (uint8_t)((v * k + 127) / 255);
                }
            }
        }
    }
    jpeg_finish_decompress(ci);
    return 0;
}

/* Runs a JPEG job (decode or header only); frees everything but j->px. */
static image_status jpeg_job_run(jpeg_job *j, char *err, size_t errlen)
{
    image_status st = IMAGE_OK;

    j->ci.err = jpeg_std_error(&j->jerr);
    j->jerr.error_exit = jpeg_on_error;
    j->jerr.emit_message = jpeg_on_message;
    if (jpeg_run(j) != 0) {
        if (j->st == IMAGE_ERR_TOO_LARGE)
            st = fail(err, errlen, j->st, "%s", j->limit_msg);
        else
            st = fail(err, errlen, j->st, "image: JPEG decode failed: %s", j->msg);
        free(j->px);
        j->px = NULL;
    }
    /* Safe whatever stage jpeg_run reached: the struct was zeroed and
     * jpeg_destroy skips a missing memory manager. */
    jpeg_destroy_decompress(&j->ci);
    free(j->row);
    j->row = NULL;
    return st;
}

static image_status jpeg_decode(image *out, const uint8_t *p, size_t len, uint64_t max_pixels,
                                int header_only, image_header *hd, char *err, size_t errlen)
{
    image_status st;
    jpeg_job *j = calloc(1, sizeof *j); /* ~1 KiB of jmp_buf and structs: not on the stack */

    if (j == NULL)
        return fail(err, errlen, IMAGE_ERR_NOMEM, "image: out of memory creating the JPEG decoder");
    j->data = p;
    j->len = len;
    j->max_pixels = max_pixels;
    j->header_only = header_only;
    st = jpeg_job_run(j, err, errlen);
    if (st == IMAGE_OK && header_only) {
        hd->format = IMAGE_FMT_JPEG;
        hd->w = j->w;
        hd->h = j->h;
        hd->grey = j->grey;
    } else if (st == IMAGE_OK) {
        out->w = j->w;
        out->h = j->h;
        out->c = j->c;
        out->px = j->px;
    }
    free(j);
    return st;
}

/* ---- decoding ---- */

image_status image_probe(image_header *out, const void *data, size_t len,
                         char *err, size_t errlen)
{
    if (out == NULL)
        return fail(err, errlen, IMAGE_ERR_ARG, "image: no output");
    memset(out, 0, sizeof *out);
    if (data == NULL || len == 0)
        return fail(err, errlen, IMAGE_ERR_CORRUPT, "image: empty input");
    switch (image_detect(data, len)) {
    case IMAGE_FMT_PNG:
        return png_probe(out, data, len, err, errlen);
    case IMAGE_FMT_JPEG:
        return jpeg_decode(NULL, data, len, 0, 1, out, err, errlen);
    default:
        return unknown_format(data, len, err, errlen);
    }
}

image_status image_decode(image *out, const void *data, size_t len, uint64_t max_pixels,
                          char *err, size_t errlen)
{
    if (out == NULL)
        return fail(err, errlen, IMAGE_ERR_ARG, "image: no output");
    memset(out, 0, sizeof *out);
    if (data == NULL || len == 0)
        return fail(err, errlen, IMAGE_ERR_CORRUPT, "image: empty input");
    switch (image_detect(data, len)) {
    case IMAGE_FMT_PNG:
        return png_decode(out, data, len, max_pixels, err, errlen);
    case IMAGE_FMT_JPEG:
        return jpeg_decode(out, data, len, max_pixels, 0, NULL, err, errlen);
    default:
        return unknown_format(data, len, err, errlen);
    }
}

void image_free(image *img)
{
    if (img == NULL)
        return;
    free(img->px);
    memset(img, 0, sizeof *img);
}

/* ---- files ---- */

/* Reads up to `limit` bytes of path into *buf (malloc'd; *len bytes).
 * whole: the file must fit in limit (else TOO_LARGE); otherwise a prefix
 * is fine. *size gets the file's size. */
static image_status read_file(uint8_t **buf, size_t *len, size_t *size, const char *path,
                              size_t limit, int whole, char *err, size_t errlen)
{
    struct stat st;
    size_t want, got = 0;
    uint8_t *p = NULL;
    image_status rc;
    int fd;

    *buf = NULL;
    *len = 0;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return fail(err, errlen, IMAGE_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = fail(err, errlen, IMAGE_ERR_IO, "%s: not a regular file", path);
        goto fail;
    }
    *size = (size_t)st.st_size;
    if (whole && (uint64_t)st.st_size > limit) {
        rc = fail(err, errlen, IMAGE_ERR_TOO_LARGE,
                  "%s: image: file of %lld bytes is above the limit of %zu", path,
                  (long long)st.st_size, limit);
        goto fail;
    }
    want = (uint64_t)st.st_size < limit ? (size_t)st.st_size : limit;
    p = malloc(want ? want : 1);
    if (p == NULL) {
        rc = fail(err, errlen, IMAGE_ERR_NOMEM, "%s: out of memory", path);
        goto fail;
    }
    while (got < want) {
        ssize_t n = read(fd, p + got, want - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = fail(err, errlen, IMAGE_ERR_IO, "%s: read failed: %s", path, strerror(errno));
            goto fail;
        }
        if (n == 0)
            break; /* shrank while we read: decode what is there */
        got += (size_t)n;
    }
    close(fd);
    *buf = p;
    *len = got;
    return IMAGE_OK;
fail:
    free(p);
    close(fd);
    return rc;
}

/* Prefixes err (holding an image message) with "path: ". */
static void prefix_path(char *err, size_t errlen, const char *path)
{
    char tmp[512];
    if (err == NULL || errlen == 0)
        return;
    snprintf(tmp, sizeof tmp, "%s", err);
    snprintf(err, errlen, "%s: %s", path, tmp);
}

image_status image_decode_file(image *out, const char *path, uint64_t max_pixels,
                               char *err, size_t errlen)
{
    uint8_t *buf;
    size_t len, size;
    image_status st;

    if (out == NULL || path == NULL)
        return fail(err, errlen, IMAGE_ERR_ARG, "image: no path or output");
    memset(out, 0, sizeof *out);
    st = read_file(&buf, &len, &size, path, IMAGE_MAX_FILE_BYTES, 1, err, errlen);
    if (st != IMAGE_OK)
        return st;
    st = image_decode(out, buf, len, max_pixels, err, errlen);
    if (st != IMAGE_OK)
        prefix_path(err, errlen, path);
    free(buf);
    return st;
}

image_status image_probe_file(image_header *out, const char *path, char *err, size_t errlen)
{
    uint8_t *buf;
    size_t len, size;
    image_status st;

    if (out == NULL || path == NULL)
        return fail(err, errlen, IMAGE_ERR_ARG, "image: no path or output");
    memset(out, 0, sizeof *out);
    st = read_file(&buf, &len, &size, path, PROBE_PREFIX, 0, err, errlen);
    if (st != IMAGE_OK)
        return st;
    st = image_probe(out, buf, len, err, errlen);
    if (st == IMAGE_ERR_CORRUPT && len < size && image_detect(buf, len) == IMAGE_FMT_JPEG) {
        /* The JPEG's header (EXIF, ICC) outgrew the prefix: read it all. */
        free(buf);
        st = read_file(&buf, &len, &size, path, IMAGE_MAX_FILE_BYTES, 1, err, errlen);
        if (st != IMAGE_OK)
            return st;
        st = image_probe(out, buf, len, err, errlen);
    }
    if (st != IMAGE_OK)
        prefix_path(err, errlen, path);
    free(buf);
    return st;
}

/* ---- conversion to a model input ---- */

/* The source pixels that make output pixel i along one axis: count[i]
 * pixels from first[i], weights wt[i*maxn ...], summing to 1. */
typedef struct axis {
    int *first, *count;
    double *wt;
    int maxn;
} axis;

static void axis_free(axis *a)
{
    free(a->first);
    free(a->count);
    free(a->wt);
}

static int axis_build(axis *a, int src, int dst)
{
    memset(a, 0, sizeof *a);
    a->maxn = src >= dst ? (src + dst - 1) / dst + 1 : 2;
    a->first = malloc((size_t)dst * sizeof *a->first);
    a->count = malloc((size_t)dst * sizeof *a->count);
    a->wt = malloc((size_t)dst * (size_t)a->maxn * sizeof *a->wt);
    if (a->first == NULL || a->count == NULL || a->wt == NULL)
        return -1;
    for (int i = 0; i < dst; i++) {
        double *wt = a->wt + (size_t)i * (size_t)a->maxn, sum = 0;
        int n = 0;
        if (src >= dst) {
            /* Area: output i covers [i, i+1) * src/dst of the source. The
             * bounds are exact integers over dst, so equal sizes copy. */
            double lo = (double)i * src / dst, hi = (double)(i + 1) * src / dst;
            int s0 = (int)floor(lo), s1 = (int)ceil(hi) - 1;
            if (s1 > src - 1)
                s1 = src - 1;
            a->first[i] = s0;
            for (int s = s0; s <= s1 && n < a->maxn; s++) {
                double ov = fmin(hi, s + 1.0) - fmax(lo, (double)s);
                wt[n++] = ov > 0 ? ov : 0;
                sum += wt[n - 1];
            }
        } else {
            double x = ((double)i + 0.5) * src / dst - 0.5, f;
            int x0;
            if (x < 0)
                x = 0;
            if (x > src - 1)
                x = src - 1;
            x0 = (int)floor(x);
            f = x - x0;
            a->first[i] = x0;
            wt[n++] = 1.0 - f;
            if (x0 + 1 < src)
                wt[n++] = f;
            sum = 1.0;
        }
        for (int k = 0; k < n; k++)
            wt[k] /= sum;
        a->count[i] = n;
    }
    return 0;
}

/* Resamples source row sy horizontally into out (dst_w * cs doubles),
 * compositing alpha over black. */
static void hrow(double *out, const image *img, int sy, const axis *ax, int dst_w, int cs)
{
    const uint8_t *row = img->px + (size_t)sy * (size_t)img->w * (size_t)img->c;
    int c = img->c, alpha = c == 2 || c == 4;

    for (int x = 0; x < dst_w; x++) {
        const double *wt = ax->wt + (size_t)x * (size_t)ax->maxn;
        double acc[3] = { 0, 0, 0 };
        for (int k = 0; k < ax->count[x]; k++) {
            const uint8_t *p = row + (size_t)(ax->first[x] + k) * (size_t)c;
            double wk = alpha ? wt[k] * p[c - 1] / 255.0 : wt[k];
            for (int ch = 0; ch < cs; ch++)
                acc[ch] += wk * p[ch];
        }
        for (int ch = 0; ch < cs; ch++)
            out[(size_t)x * (size_t)cs + (size_t)ch] = acc[ch];
    }
}

static uint8_t to_u8(double v)
{
    v = floor(v + 0.5);
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

image_status image_to_input(uint8_t *out, int c, int h, int w, const image *img,
                            char *err, size_t errlen)
{
    axis ax = { 0 }, ay = { 0 };
    double *cache = NULL, *acc = NULL;
    int key[2] = { -1, -1 };
    int cs;
    size_t plane = (size_t)(h > 0 ? h : 0) * (size_t)(w > 0 ? w : 0), rowlen;
    image_status st = IMAGE_OK;

    if (out == NULL || img == NULL || img->px == NULL)
        return fail(err, errlen, IMAGE_ERR_ARG, "image: no image or output");
    if ((c != 1 && c != 3) || h < 1 || w < 1 || h > IMAGE_MAX_SIDE || w > IMAGE_MAX_SIDE ||
        plane > IMAGE_DEFAULT_MAX_PIXELS)
        return fail(err, errlen, IMAGE_ERR_ARG, "image: bad input shape %dx%dx%d", c, h, w);
    if (img->c < 1 || img->c > 4 || img->w < 1 || img->h < 1 ||
        img->w > IMAGE_MAX_SIDE || img->h > IMAGE_MAX_SIDE)
        return fail(err, errlen, IMAGE_ERR_ARG, "image: bad image %dx%dx%d", img->w, img->h,
                    img->c);

    cs = img->c <= 2 ? 1 : 3;
    rowlen = (size_t)w * (size_t)cs;
    cache = malloc(2 * rowlen * sizeof *cache);
    acc = malloc(rowlen * sizeof *acc);
    if (cache == NULL || acc == NULL || axis_build(&ax, img->w, w) != 0 ||
        axis_build(&ay, img->h, h) != 0) {
        st = fail(err, errlen, IMAGE_ERR_NOMEM, "image: out of memory resizing");
        goto done;
    }
    for (int y = 0; y < h; y++) {
        const double *wy = ay.wt + (size_t)y * (size_t)ay.maxn;
        memset(acc, 0, rowlen * sizeof *acc);
        for (int k = 0; k < ay.count[y]; k++) {
            int sy = ay.first[y] + k, slot = sy & 1;
            double *r = cache + (size_t)slot * rowlen;
            /* Consecutive source rows use different slots, so the two rows
             * bilinear enlarging reads stay cached across output rows. */
            if (key[slot] != sy) {
                hrow(r, img, sy, &ax, w, cs);
                key[slot] = sy;
            }
            for (size_t i = 0; i < rowlen; i++)
                acc[i] += wy[k] * r[i];
        }
        for (int x = 0; x < w; x++) {
            const double *p = acc + (size_t)x * (size_t)cs;
            size_t o = (size_t)y * (size_t)w + (size_t)x;
            if (c == cs) {
                for (int ch = 0; ch < c; ch++)
                    out[(size_t)ch * plane + o] = to_u8(p[ch]);
            } else if (c == 1) {
                out[o] = to_u8(0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2]);
            } else {
                uint8_t v = to_u8(p[0]);
                for (int ch = 0; ch < 3; ch++)
                    out[(size_t)ch * plane + o] = v;
            }
        }
    }
done:
    axis_free(&ax);
    axis_free(&ay);
    free(cache);
    free(acc);
    return st;
}

void image_normalize(nn_real *x, const uint8_t *chw, int c, int h, int w, const float *mean)
{
    size_t plane = (size_t)h * (size_t)w;
    for (int ch = 0; ch < c; ch++) {
        double m = mean ? (double)mean[ch] : 0.0;
        const uint8_t *s = chw + (size_t)ch * plane;
        nn_real *d = x + (size_t)ch * plane;
        for (size_t i = 0; i < plane; i++)
            d[i] = (nn_real)((double)s[i] / 255.0 - m);
    }
}
