/* dataset_png.h: data sets that are folders of images, one sub-folder per
 * class: <dir>/<class>/<file>.png (also .jpg, .jpeg; any case), or, when
 * <dir>/train exists, <dir>/train/<class>/<file> plus an optional test part
 * <dir>/test/<class>/<file> whose classes are matched to training's by name.
 *
 * Classes are the sub-folders sorted by name (bytewise), files sorted by
 * name within a class, so the order of samples never depends on the file
 * system. Every image is converted with image_to_input() to one shape: the
 * given size or the first training image's, 1 channel when every image is
 * grey, else 3. Hidden entries (".*"), other files and deeper folders are
 * ignored. Not here: caching, registering (datasets.c), decoding threads. */
#ifndef CONVNETD_DATASET_PNG_H
#define CONVNETD_DATASET_PNG_H

#include <stddef.h>
#include <stdint.h>

#include <nn/data.h>

#define DATASET_PNG_MAX_FILES (1 << 20)  /* images in train + test */
#define DATASET_PNG_MAX_SIDE 4096        /* of the common shape (as datasets.c for IDX) */

/* Options; zero-initialise for the defaults. */
typedef struct dataset_png_opts {
    int c;                   /* 1 or 3; 0: 1 when every image is grey, else 3 */
    int h, w;                /* both 0: the first training image's size */
    int max_files;           /* 0: DATASET_PNG_MAX_FILES */
    uint64_t max_pixels;     /* per image decoded; 0: IMAGE_DEFAULT_MAX_PIXELS */
} dataset_png_opts;

/* What a scan learns without decoding pixels. Owned; dataset_png_info_free. */
typedef struct dataset_png_info {
    int c, h, w;             /* the common shape every image becomes */
    int num_classes;
    char **class_names;      /* num_classes names, sorted */
    int n_train, n_test;     /* n_test 0 when there is no test part */
    int split;               /* 1: train/ and test/ sub-folders */
} dataset_png_info;

/* 1 when dir looks like an image-folder data set (a sub-folder of dir, or
 * of dir/train, holds a .png/.jpg/.jpeg file), else 0. Cheap: reads
 * directories only; a data set it accepts may still fail to scan. */
int dataset_png_detect(const char *dir);

/* Lists the classes and images under dir and finds the common shape from
 * the image headers (opts may be NULL for the defaults; with opts->c and
 * opts->h/w set no header is read). Returns 0, or -1 with a message in err
 * (errlen bytes; err may be NULL) that names the folder or file at fault:
 * no classes or fewer than 2, a training class without images, a test
 * class unknown to training, more than max_files images, a class name too
 * long, a file that is not a readable PNG/JPEG header, a shape over
 * DATASET_PNG_MAX_SIDE, or more pixels than NN_DATASET_MAX_BYTES. On
 * failure *info is zeroed. Reads only headers: fast enough for start-up. */
int dataset_png_scan(dataset_png_info *info, const char *dir, const dataset_png_opts *opts,
                     char *err, size_t errlen);

/* Frees what *info holds and zeroes it. NULL is a no-op. */
void dataset_png_info_free(dataset_png_info *info);

/* Loads the data set under dir: *train gets the training images, *test
 * the test images (NULL when there is no test part); either pointer may be
 * NULL to skip that part (not both). Samples are in class order, then file
 * order; labels are class indices, class names the folder names (the test
 * part shares training's classes); names "<basename of dir>/train" and
 * ".../test". For a shape fixed at scan time pass the scanned c, h, w in
 * opts. Returns 0, or -1 with a message naming the file at fault (see
 * dataset_png_scan; also any image that fails to decode, or exceeds the
 * pixel limit); the outputs are then NULL. Decodes every image: seconds
 * for tens of thousands, so call it from a worker, not an HTTP thread. */
int dataset_png_load(nn_dataset **train, nn_dataset **test, const char *dir,
                     const dataset_png_opts *opts, char *err, size_t errlen);

#endif
