/* image.h: decoding images (PNG through libpng, JPEG through libjpeg-turbo)
 * from memory or a file into 8-bit pixels, and converting them to a model's
 * input exactly as the training data is laid out: uint8 CHW of the model's
 * channels and size, then x = pixel/255 - mean[c] as nn_dataset_gather does.
 *
 * Not here: encoding (pngenc.h); other formats (GIF, WebP, BMP, TIFF are
 * recognised only to name them in the error); colour management (gAMA, ICC
 * profiles and EXIF orientation are ignored: pixels are taken as stored).
 * Every function is reentrant: no shared state, safe from any thread. */
#ifndef CONVNETD_IMAGE_H
#define CONVNETD_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include <nn/tensor.h>

#define IMAGE_MAX_SIDE 16384                              /* pixels, width or height */
#define IMAGE_DEFAULT_MAX_PIXELS ((uint64_t)16 << 20)     /* 16 Mpixel = 64 MiB as RGBA */
#define IMAGE_MAX_FILE_BYTES ((size_t)64 << 20)           /* image_decode_file, image_probe_file */
#define IMAGE_JPEG_MAX_SCANS 256                          /* progressive JPEG scan bomb guard */

/* Outcomes; the HTTP layer maps them to 415, 400, 413, 500. */
typedef enum image_status {
    IMAGE_OK = 0,
    IMAGE_ERR_ARG,          /* a bad argument from the caller (NULL, out of range) */
    IMAGE_ERR_UNSUPPORTED,  /* not PNG or JPEG, or a JPEG colour space we cannot convert */
    IMAGE_ERR_CORRUPT,      /* empty, truncated or corrupt data */
    IMAGE_ERR_TOO_LARGE,    /* above the pixel or size limits */
    IMAGE_ERR_NOMEM,        /* an allocation failed */
    IMAGE_ERR_IO            /* a file could not be opened or read */
} image_status;

typedef enum image_format { IMAGE_FMT_UNKNOWN = 0, IMAGE_FMT_PNG, IMAGE_FMT_JPEG } image_format;

/* A decoded image. px holds h*w*c bytes, rows top to bottom, channels
 * interleaved (HWC): c = 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA (alpha not
 * premultiplied). Owned; release with image_free(). */
typedef struct image {
    int w, h, c;
    uint8_t *px;
} image;

/* What image_probe() learns from the header alone. */
typedef struct image_header {
    image_format format;
    int w, h;
    int grey;               /* 1 when the image decodes to grey (c = 1 or 2) */
} image_header;

/* A short constant name for s ("corrupt image", ...). Never NULL. */
const char *image_status_str(image_status s);

/* The format named by the first bytes of data (PNG: 89 'PNG' 0d 0a 1a 0a;
 * JPEG: ff d8 ff), IMAGE_FMT_UNKNOWN otherwise (also for len too short). */
image_format image_detect(const void *data, size_t len);

/* Reads the width, height and colour model from the header without decoding
 * pixels (PNG: the IHDR chunk; JPEG: the markers up to the first scan). data
 * may be a prefix of the file when it holds the header. Returns IMAGE_OK, or
 * UNSUPPORTED / CORRUPT with a message in err (errlen bytes; err may be
 * NULL). Does not apply the size limits; image_decode() does. */
image_status image_probe(image_header *out, const void *data, size_t len,
                         char *err, size_t errlen);

/* Decodes a whole PNG or JPEG (format from the magic bytes) held in data
 * (len bytes, borrowed) into *out, normalised to 8 bits per channel:
 *  - PNG: every colour type and depth: palette -> RGB, grey 1/2/4 bit ->
 *    8 bit (scaled: 1 -> 255), 16 bit -> 8 bit rounded (v*255/65535), a tRNS
 *    chunk -> an alpha channel, interlacing undone. Every chunk's CRC, the
 *    zlib stream and the IEND chunk are checked: a file cut anywhere is
 *    corrupt.
 *  - JPEG: grey -> c = 1, YCbCr/RGB -> c = 3, CMYK/YCCK -> RGB (Adobe
 *    inverted CMYK recognised). A premature end of data is corrupt; other
 *    libjpeg warnings (extraneous bytes, ...) are tolerated, as browsers do.
 * Limits, checked from the header BEFORE any pixel memory is allocated:
 * width and height <= IMAGE_MAX_SIDE and w*h <= max_pixels (0 means
 * IMAGE_DEFAULT_MAX_PIXELS); beyond them IMAGE_ERR_TOO_LARGE. Never exits
 * or prints: libpng and libjpeg errors come back as IMAGE_ERR_CORRUPT with
 * their text, e.g. "image: PNG decode failed: IDAT: CRC error". On failure
 * *out is zeroed and nothing is leaked. */
image_status image_decode(image *out, const void *data, size_t len, uint64_t max_pixels,
                          char *err, size_t errlen);

/* Reads the file at path (at most IMAGE_MAX_FILE_BYTES, else TOO_LARGE) and
 * decodes it as image_decode() does. Every message starts with the path,
 * e.g. "data/cat/1.png: image: PNG decode failed: ...". IMAGE_ERR_IO when
 * the file cannot be opened or read. */
image_status image_decode_file(image *out, const char *path, uint64_t max_pixels,
                               char *err, size_t errlen);

/* image_probe() on the start of the file at path (reading more only when
 * a JPEG's header needs it). Messages start with the path. */
image_status image_probe_file(image_header *out, const char *path, char *err, size_t errlen);

/* Frees img's pixels and zeroes it. NULL, or an image already freed, is a
 * no-op. */
void image_free(image *img);

/* Converts img to a model input: out gets c*h*w bytes, channel-major (CHW),
 * the layout of nn_dataset images. c is 1 or 3; h, w in 1..IMAGE_MAX_SIDE
 * with h*w <= IMAGE_DEFAULT_MAX_PIXELS.
 * Colour, in this order:
 *  - alpha is composited over BLACK (v*a/255), so a transparent pixel is 0,
 *    the background of MNIST-style data, whatever colour it hides;
 *  - RGB -> grey with the ITU-R BT.601 luma weights 0.299 R + 0.587 G +
 *    0.114 B; grey -> RGB by replication.
 * Size (each axis separately; an unchanged axis is copied exactly):
 *  - shrinking: area averaging, each output pixel the coverage-weighted mean
 *    of the source pixels under it (2x2 -> 1x1 is the plain mean);
 *  - enlarging: bilinear interpolation with pixel centres aligned
 *    ((x + 0.5) * src/dst - 0.5, edges clamped).
 * Computed in double, rounded once to nearest. A constant image stays
 * constant. Allocates only O(w) scratch (malloc: IMAGE_ERR_NOMEM).
 * IMAGE_ERR_ARG for bad arguments; out is untouched on error. */
image_status image_to_input(uint8_t *out, int c, int h, int w, const image *img,
                            char *err, size_t errlen);

/* Writes the normalised model input: x[ch][i] = (nn_real)(chw[ch][i]/255.0
 * - mean[ch]) for the c*h*w bytes of chw (CHW), mean NULL meaning no
 * subtraction: the exact arithmetic of nn_dataset_gather(), so an image
 * classified by the daemon sees the numbers training saw. x is (c,h,w)
 * row-major, one sample of the (N,C,H,W) batch nn_model_predict() takes.
 * Never fails; c, h, w >= 1. */
void image_normalize(nn_real *x, const uint8_t *chw, int c, int h, int w, const float *mean);

#endif
