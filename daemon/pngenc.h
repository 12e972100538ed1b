/* pngenc.h: PNG encoding into memory (libpng), and the first conv layer's
 * filters drawn as one grid picture, the PNG GET /v1/jobs/{id}/filters.png
 * serves, with an ETag for it.
 *
 * Not here: decoding (image.h). The header is not called png.h on purpose:
 * daemon/ is an include directory, and a daemon/png.h would shadow
 * libpng's <png.h> for every file that includes it. Reentrant throughout. */
#ifndef CONVNETD_PNGENC_H
#define CONVNETD_PNGENC_H

#include <stddef.h>
#include <stdint.h>

#define FILTERS_MIN_CELL 32       /* a filter is drawn at least this many px a side */
#define FILTERS_GUTTER 2          /* px between filters and around the grid */
#define FILTERS_GUTTER_VALUE 192  /* the gutter's grey (R = G = B) */
#define FILTERS_MAX_K 4096
#define FILTERS_MAX_C 4096
#define FILTERS_MAX_RS 256        /* R and S */
#define FILTERS_MAX_SIDE 16384    /* px, the picture's width or height */
#define FILTERS_ETAG_LEN 20       /* '"' + 16 hex digits + '"' + NUL */

/* Encodes an 8-bit image as PNG into a malloc'd buffer: *out (caller frees
 * with free()) of *out_len bytes. px is h*w bytes (grey) or h*w*3 bytes (RGB,
 * interleaved), rows top to bottom; w, h in 1..FILTERS_MAX_SIDE. Returns 0,
 * or -1 with *out NULL and a message in err (errlen bytes; err may be
 * NULL) for bad arguments or out of memory. Never exits or prints. */
int pngenc_gray(uint8_t **out, size_t *out_len, const uint8_t *px, int w, int h,
                char *err, size_t errlen);
int pngenc_rgb(uint8_t **out, size_t *out_len, const uint8_t *px, int w, int h,
               char *err, size_t errlen);

/* The geometry of a filter grid: K filters in cols = ceil(sqrt(K)) columns
 * and rows = ceil(K / cols) rows; each filter (R x S) enlarged by
 * nearest neighbour by the integer scale = max(1, ceil(FILTERS_MIN_CELL /
 * min(R, S))) to a cell_h x cell_w = R*scale x S*scale cell; FILTERS_GUTTER
 * px of grey FILTERS_GUTTER_VALUE between cells and around the edge:
 *   width  = cols * cell_w + (cols + 1) * gutter
 *   height = rows * cell_h + (rows + 1) * gutter
 * Filter k's cell starts at x = gutter + (k % cols) * (cell_w + gutter),
 * y = gutter + (k / cols) * (cell_h + gutter). Unused cells are gutter. */
typedef struct filters_grid {
    int cols, rows, scale, cell_w, cell_h, gutter, width, height;
    int channels;               /* 3 when C == 3, else 1 */
} filters_grid;

/* Fills *g for K filters of C x R x S. Returns 0, or -1 when a size is out
 * of range (K 1..FILTERS_MAX_K, C 1..FILTERS_MAX_C, R and S
 * 1..FILTERS_MAX_RS) or the picture would exceed FILTERS_MAX_SIDE. */
int filters_layout(filters_grid *g, int K, int C, int R, int S);

/* Draws the filters weight (K,C,R,S) row-major, host floats, as a PNG grid
 * (geometry above) into *out (malloc'd; *out_len bytes; caller frees); *grid
 * (may be NULL) gets the geometry, width and height included. Each filter is
 * scaled min-max to 0..255 on its own, over all its values: its smallest
 * value is 0, its largest 255, a constant filter mid-grey 128; NaN and Inf
 * are left out of the min-max and drawn 0. Colours: C == 3 gives an RGB PNG
 * (channel 0 red, 1 green, 2 blue, as the input was fed); C == 1 a grey
 * PNG; any other C a grey PNG of the filter's mean over its channels (one
 * picture per filter, where RGB would need exactly three). Returns 0, or -1
 * with *out NULL and a message in err for bad sizes or out of memory. */
int filters_png(uint8_t **out, size_t *out_len, filters_grid *grid, const float *weight,
                int K, int C, int R, int S, char *err, size_t errlen);

/* Writes to out (FILTERS_ETAG_LEN bytes) a strong HTTP entity tag for the
 * picture filters_png() draws from these weights: a 64-bit FNV-1a hash of
 * the drawing's version, K, C, R, S and the weight bytes, as "\"%016x\""
 * (quotes included, ready for an ETag header). Equal weights give equal
 * tags; weight may be NULL only when the product of the sizes is 0. */
void filters_etag(char *out, const float *weight, int K, int C, int R, int S);

#endif
