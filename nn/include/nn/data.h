/* data.h: image data sets in memory (8-bit pixels, CHW per image, a class
 * index per image), the file formats nn reads itself (MNIST-style IDX, plain
 * or gzip; CIFAR-10 binary batches), train/validation splits, the channel
 * mean, and minibatch gathering with random crop/flip.
 * nn knows nothing of PNG, HTTP or SQL: a folder of PNG images is decoded by
 * the daemon and poured into a data set made with nn_dataset_create(). */
#ifndef NN_DATA_H
#define NN_DATA_H

#include <stddef.h>
#include <stdint.h>
#include "nn/rng.h"
#include "nn/status.h"
#include "nn/tensor.h"

#define NN_DATASET_MAX_CHANNELS 4              /* gray, gray+alpha, RGB, RGBA */
#define NN_DATASET_MAX_CLASSES 65536           /* labels are uint16_t */
#define NN_DATASET_MAX_BYTES ((size_t)1 << 31) /* n*c*h*w cap: 2 GiB */
#define NN_DATASET_NAME_LEN 64                 /* nn_dataset.name, NUL included */
#define NN_CLASS_NAME_MAX 255                  /* bytes of one class name */

/* A data set owns every pointer in it; release it with nn_dataset_free().
 * Fields may be read freely; images and labels may be written (that is how
 * the daemon fills a PNG data set), the rest only through the functions
 * below. Sample i's image is images + i*c*h*w, channel-major (CHW), each
 * pixel 0..255; its class is labels[i], which must be < num_classes by the
 * time the sample is gathered. */
typedef struct nn_dataset {
    char name[NN_DATASET_NAME_LEN]; /* e.g. "fashion-mnist/train"; "" when unset */
    int n, c, h, w;                 /* samples, channels, height, width */
    int num_classes;
    uint8_t *images;                /* n*c*h*w bytes */
    uint16_t *labels;               /* n class indices */
    char **class_names;             /* num_classes NUL-terminated strings */
} nn_dataset;

/* A contiguous range of samples [begin, begin+count) of a data set. It
 * borrows `data`, which must outlive it. */
typedef struct nn_split {
    const nn_dataset *data;
    int begin, count;
} nn_split;

/* Random augmentation applied by nn_dataset_gather(); zero-initialise for
 * none. crop_pad > 0: pad the image by crop_pad pixels on every side with
 * the channel mean (0 after mean subtraction) and take a random h x w crop,
 * i.e. shift it by dy, dx in [-crop_pad, crop_pad]. hflip != 0: mirror left
 * to right with probability 1/2. */
typedef struct nn_augment {
    int crop_pad;
    int hflip;
} nn_augment;

/* ---- creation ---------------------------------------------------------- */

/* Creates a data set of n images of c x h x w pixels and num_classes
 * classes: pixels and labels zero, name "", class names "0".."k-1".
 * n, h, w >= 1; 1 <= c <= NN_DATASET_MAX_CHANNELS; 1 <= num_classes <=
 * NN_DATASET_MAX_CLASSES; n*c*h*w <= NN_DATASET_MAX_BYTES. On success *out
 * is owned by the caller; on failure *out is NULL and the status is
 * NN_ERR_ARG (bad sizes) or NN_ERR_NOMEM. */
nn_status nn_dataset_create(nn_dataset **out, int n, int c, int h, int w,
                            int num_classes, char *err);

/* Replaces class i's name with a copy of `name` (1..NN_CLASS_NAME_MAX bytes,
 * any characters but NUL). NN_ERR_ARG for a bad index or name, NN_ERR_NOMEM;
 * the old name stays on failure. */
nn_status nn_dataset_set_class_name(nn_dataset *d, int i, const char *name,
                                    char *err);

/* Frees d and everything it owns. NULL is a no-op. */
void nn_dataset_free(nn_dataset *d);

/* ---- files --------------------------------------------------------------
 * Every loader validates the whole file (magic, dimensions, exact length,
 * label range) before handing out a data set; a corrupt or truncated file
 * gives NN_ERR_FORMAT and a message that starts with the file's path, a file
 * that cannot be opened or read NN_ERR_IO. On failure the outputs are NULL.
 * Loaders are reentrant (no shared state). */

/* Loads an MNIST-style IDX pair: images_path holds unsigned-byte images
 * (magic 0x00000803: n x h x w), labels_path unsigned-byte labels (magic
 * 0x00000801: n). Either file may be gzip-compressed (recognised by its
 * first two bytes 1f 8b, not by its name). Dims must be >= 1, the image
 * bytes <= NN_DATASET_MAX_BYTES, the counts equal, the (uncompressed) length
 * exactly header + data. Result: c = 1, num_classes = max label + 1 but at
 * least 2, class names "0".."k-1", name = the images file's base name. */
nn_status nn_dataset_load_idx(nn_dataset **out, const char *images_path,
                              const char *labels_path, char *err);

/* Finds an installed Fashion-MNIST: the first directory of a short fixed
 * list (/usr/share/datasets/fashion-mnist, Debian's dataset-fashion-mnist,
 * then /usr/local/share/datasets/fashion-mnist) that holds the four files
 * {train,t10k}-{images-idx3,labels-idx1}-ubyte, each with or without ".gz".
 * Writes it to dir_out (len bytes). NN_ERR_IO when none is found,
 * NN_ERR_ARG when dir_out is NULL or too short. */
nn_status nn_dataset_find_fashion_mnist(char *dir_out, size_t len, char *err);

/* Loads Fashion-MNIST's training set (60000) into *train and test set
 * (10000) into *test from dir (NULL: nn_dataset_find_fashion_mnist()), as
 * nn_dataset_load_idx() does, but with num_classes fixed at 10 (a label >= 10
 * is NN_ERR_FORMAT) and the class names T-shirt/top, Trouser, Pullover,
 * Dress, Coat, Sandal, Shirt, Sneaker, Bag, Ankle boot. Either output may be
 * NULL to skip that part (not both). Names "fashion-mnist/train", ".../test". */
nn_status nn_dataset_load_fashion_mnist(nn_dataset **train, nn_dataset **test,
                                        const char *dir, char *err);

/* Loads CIFAR-10's binary version from dir (or dir/cifar-10-batches-bin
 * when dir lacks data_batch_1.bin): training = data_batch_1.bin,
 * data_batch_2.bin, ... in order up to the first missing one (at most 5;
 * data_batch_1.bin is required), test = test_batch.bin. Each file is a
 * whole number >= 1 of 3073-byte records (label byte < 10, then 32x32x3
 * pixels CHW); the originals hold 10000 each. c = 3, h = w = 32,
 * num_classes = 10; class names from batches.meta.txt (the first 10
 * non-empty lines; fewer is NN_ERR_FORMAT) when it exists, else CIFAR-10's
 * (airplane ... truck). Either output may be NULL to skip that part (not
 * both). Names "cifar10/train", "cifar10/test". */
nn_status nn_dataset_load_cifar10(nn_dataset **train, nn_dataset **test,
                                  const char *dir, char *err);

/* ---- splits and normalisation ------------------------------------------ */

/* The split holding all of d. */
nn_split nn_dataset_all(const nn_dataset *d);

/* Splits the first `limit` samples of d (0: all of them; a limit above d->n
 * means all) into *train = the first part and *val = the LAST
 * round(val_fraction * count) samples, so with 50000 samples and 0.2 the
 * validation set is 40000..49999. val_fraction in [0, 1). NN_ERR_ARG when an
 * argument is out of range, when val_fraction > 0 but the validation part
 * would be empty, or when the training part would be. val may be NULL only
 * when val_fraction == 0 (it then gets count 0 if given). */
nn_status nn_dataset_split(nn_split *train, nn_split *val, const nn_dataset *d,
                           double val_fraction, int limit, char *err);

/* mean[ch] = the mean of pixel/255 over channel ch of every image of s
 * (exact integer sums, one rounding to float). mean has s->data->c
 * elements. NN_ERR_ARG for a NULL or empty or out-of-range split. */
nn_status nn_dataset_channel_mean(float *mean, const nn_split *s, char *err);

/* ---- minibatches -------------------------------------------------------- */

/* Fills perm[0..count) with a random permutation of 0..count-1 (identity,
 * then Fisher-Yates with nn_rng_below), so the result depends only on the
 * rng state, not on perm's old contents. count <= 0 does nothing. */
void nn_split_shuffle(int *perm, int count, nn_rng *rng);

/* Gathers n samples of s into a batch: sample j is s's sample idx[j]
 * (0 <= idx[j] < s->count). x is (n,c,h,w) row-major with
 * x = pixel/255 - mean[ch] (mean NULL: no subtraction), augmented by aug
 * (NULL or all zero: none), which draws per sample, in order, dy and dx
 * (when crop_pad > 0) then the flip (when hflip), from rng (required when
 * aug asks for anything). labels (n; NULL: skipped) gets each sample's class
 * index as an nn_real, the form the backends' loss takes. Never allocates.
 * NN_ERR_ARG for NULL/out-of-range arguments (crop_pad must be <= min(h, w)),
 * NN_ERR_FORMAT when a gathered label is >= num_classes; x and labels are
 * then partly written. */
nn_status nn_dataset_gather(nn_real *x, nn_real *labels, const nn_split *s,
                            const int *idx, int n, const float *mean,
                            const nn_augment *aug, nn_rng *rng, char *err);

/* One sample's augmentation as nn_dataset_gather draws it from rng: the
 * shift dy, dx (0 unless crop_pad > 0) and the mirror flip (0 unless
 * hflip). aug NULL draws nothing. For gathering on a device
 * (nn_backend_gather), where the same draws keep training identical. */
void nn_augment_draw(const nn_augment *aug, nn_rng *rng, int *dy, int *dx, int *flip);

#endif
