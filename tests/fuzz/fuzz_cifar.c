/* fuzz_cifar.c: the CIFAR-10 binary loader, nn_dataset_load_cifar10(),
 * which reads a directory. The input becomes the files of a per-process
 * temporary directory (made once, emptied before every run, removed at
 * exit) and the real loader reads them by path. Input layout:
 *
 *   byte 0   flags: 1 batches.meta.txt, 2 test_batch.bin, 4 data_batch_2.bin,
 *            8 no data_batch_1.bin, 16 files in cifar-10-batches-bin/,
 *            96 what to load: 0 both, 32 train only, 64 test only, 96 neither
 *   byte 1   data_batch_1.bin (and _2) length: (byte % 4) records of 3073...
 *   byte 2   ...plus this many bytes (int8: -128..127; below 0 truncates)
 *   byte 3   test_batch.bin length: (byte % 4) records...
 *   byte 4   ...plus this (int8)
 *   bytes 5-6 batches.meta.txt length in bytes (little-endian, % 4096)
 *   rest     the files' contents in the order meta, batch 1, batch 2, test,
 *            zeros once it runs out (label 0 and black pixels: valid)
 *
 * So record counts are one byte away, and the fuzzer can make every file
 * valid or bend it one field at a time. On success the sizes, labels, the
 * first image's pixels and the class names must match what was written. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nn/data.h"

#define RECORD 3073
#define MAX_INPUT (64 * 1024)

static char dir[64];           /* the temporary directory, "" until made */
static char sub[96];           /* dir/cifar-10-batches-bin */
static const char *const names[] = {
    "batches.meta.txt", "data_batch_1.bin", "data_batch_2.bin", "test_batch.bin",
};

static void path_of(char *out, size_t len, const char *base, const char *name)
{
    snprintf(out, len, "%s/%s", base, name);
}

static void empty_dir(void)
{
    char p[160];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        path_of(p, sizeof p, dir, names[i]);
        unlink(p);
        path_of(p, sizeof p, sub, names[i]);
        unlink(p);
    }
}

static void remove_dir(void)
{
    empty_dir();
    rmdir(sub);
    rmdir(dir);
}

/* Makes the directory on the first call; 0, or -1 when it cannot. */
static int setup(void)
{
    if (dir[0])
        return 0;
    snprintf(dir, sizeof dir, "%s", "/tmp/fuzz_cifar.XXXXXX");
    if (mkdtemp(dir) == NULL) {
        dir[0] = 0;
        return -1;
    }
    snprintf(sub, sizeof sub, "%s/cifar-10-batches-bin", dir);
    if (mkdir(sub, 0700) != 0) {
        rmdir(dir);
        dir[0] = 0;
        return -1;
    }
    atexit(remove_dir);
    return 0;
}

/* The next len bytes of the payload, zeros past its end, into a buffer
 * (malloc'd, at least 1 byte). */
static uint8_t *take(const uint8_t **p, size_t *left, size_t len)
{
    uint8_t *b = calloc(len ? len : 1, 1);
    size_t k = len < *left ? len : *left;
    if (b == NULL)
        return NULL;
    memcpy(b, *p, k);
    *p += k;
    *left -= k;
    return b;
}

static int write_file(const char *base, const char *name, const uint8_t *b, size_t len)
{
    char p[160];
    int fd, ok;
    path_of(p, sizeof p, base, name);
    fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        return -1;
    ok = len == 0 || write(fd, b, len) == (ssize_t)len;
    close(fd);
    return ok ? 0 : -1;
}

static size_t file_len(uint8_t records, uint8_t skew)
{
    long n = (long)(records % 4) * RECORD + (int8_t)skew;
    return n < 0 ? 0 : (size_t)n;
}

/* The loaded set d (n records from `batches` files of content b[i], len[i]
 * each) must be what was written. */
static void check(const nn_dataset *d, uint8_t *const *b, const size_t *len, int batches,
                  const char *meta, size_t meta_len)
{
    size_t bytes = 0;
    for (int i = 0; i < batches; i++)
        bytes += len[i];
    if (d->n < 1 || (size_t)d->n * RECORD != bytes || d->c != 3 || d->h != 32 || d->w != 32 ||
        d->num_classes != 10)
        abort();
    for (int i = 0, s = 0; i < batches; i++)
        for (size_t r = 0; r < len[i] / RECORD; r++, s++)
            if (d->labels[s] != b[i][r * RECORD])
                abort();
    if (memcmp(d->images, b[0] + 1, RECORD - 1) != 0)
        abort();
    for (int k = 0; k < 10; k++) {
        size_t n = strlen(d->class_names[k]);
        if (n == 0 || n > NN_CLASS_NAME_MAX)
            abort();
        /* names read from the file are pieces of it */
        if (meta != NULL && memmem(meta, meta_len, d->class_names[k], n) == NULL)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *meta = NULL, *b1 = NULL, *b2 = NULL, *bt = NULL;
    nn_dataset *train = NULL, *test = NULL;
    char err[NN_ERRLEN];
    nn_status s;

    if (size < 7 || size > MAX_INPUT || setup() != 0)
        return 0;
    uint8_t flags = data[0];
    size_t len1 = file_len(data[1], data[2]), lent = file_len(data[3], data[4]);
    size_t meta_len = ((size_t)data[5] | (size_t)data[6] << 8) % 4096;
    const uint8_t *p = data + 7;
    size_t left = size - 7;
    const char *base = flags & 16 ? sub : dir;
    int load = (flags >> 5) & 3;

    meta = take(&p, &left, meta_len);
    b1 = take(&p, &left, len1);
    b2 = take(&p, &left, len1);
    bt = take(&p, &left, lent);
    if (meta == NULL || b1 == NULL || b2 == NULL || bt == NULL)
        goto done;
    empty_dir();
    if ((flags & 1 && write_file(base, names[0], meta, meta_len) != 0) ||
        (!(flags & 8) && write_file(base, names[1], b1, len1) != 0) ||
        (flags & 4 && write_file(base, names[2], b2, len1) != 0) ||
        (flags & 2 && write_file(base, names[3], bt, lent) != 0))
        goto done;

    err[0] = 0;
    s = nn_dataset_load_cifar10(load == 2 || load == 3 ? NULL : &train,
                                load == 1 || load == 3 ? NULL : &test, dir, err);
    if (s != NN_OK) {
        if (train != NULL || test != NULL || err[0] == 0)
            abort();
        goto done;
    }
    if (load == 3)
        abort();
    {
        uint8_t *tb[2] = { b1, b2 };
        size_t tl[2] = { len1, len1 };
        const char *m = flags & 1 ? (const char *)meta : NULL;
        if (load != 2) {
            if (train == NULL || strcmp(train->name, "cifar10/train") != 0)
                abort();
            check(train, tb, tl, flags & 4 ? 2 : 1, m, meta_len);
        }
        if (load != 1) {
            if (test == NULL || strcmp(test->name, "cifar10/test") != 0)
                abort();
            check(test, &bt, &lent, 1, m, meta_len);
        }
    }
done:
    nn_dataset_free(train);
    nn_dataset_free(test);
    free(meta);
    free(b1);
    free(b2);
    free(bt);
    return 0;
}
