/* data_cifar.c: CIFAR-10, binary version (cifar-10-batches-bin): the data
 * batches, the test batch and batches.meta.txt. Every file's size is checked
 * before anything is read, every label against 10. The Python-pickle version
 * and CIFAR-100 (two label bytes) are deliberately not read. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "nn/data.h"
#include "internal.h"

#define CIFAR_SIDE 32
#define CIFAR_PIXELS (3 * CIFAR_SIDE * CIFAR_SIDE)
#define CIFAR_RECORD (1 + CIFAR_PIXELS)
#define CIFAR_CLASSES 10
#define CIFAR_MAX_BATCHES 5
#define CIFAR_CHUNK 1024 /* records per read */

static const char *const cifar_classes[CIFAR_CLASSES] = {
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
};

static int join(char *out, size_t len, const char *dir, const char *name)
{
    int k = snprintf(out, len, "%s/%s", dir, name);
    return k >= 0 && (size_t)k < len;
}

static int readable(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    fclose(f);
    return 1;
}

/* Number of records in a batch file, from its size. */
static nn_status batch_records(int *records, const char *path, char *err)
{
    FILE *f = fopen(path, "rb");
    long size;

    if (!f)
        return nn_fail(err, NN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0) {
        fclose(f);
        return nn_fail(err, NN_ERR_IO, "%s: cannot read: %s", path, strerror(errno));
    }
    fclose(f);
    if (size == 0 || size % CIFAR_RECORD != 0 || size / CIFAR_RECORD > 1000000)
        return nn_fail(err, NN_ERR_FORMAT,
                       "%s: wrong size: %ld bytes is not a whole number of %d-byte records "
                       "(the originals hold 10000)", path, size, CIFAR_RECORD);
    *records = (int)(size / CIFAR_RECORD);
    return NN_OK;
}

/* Reads `records` records of path into d's samples first..first+records-1,
 * through buf (CIFAR_CHUNK records). */
static nn_status read_batch(nn_dataset *d, int first, int records, const char *path,
                            unsigned char *buf, char *err)
{
    FILE *f = fopen(path, "rb");
    nn_status s = NN_OK;

    if (!f)
        return nn_fail(err, NN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    for (int r = 0; r < records && s == NN_OK; r += CIFAR_CHUNK) {
        int k = records - r < CIFAR_CHUNK ? records - r : CIFAR_CHUNK;
        size_t got = fread(buf, CIFAR_RECORD, (size_t)k, f);
        if (got != (size_t)k) {
            /* the size was checked, so this file changed under us or failed */
            s = ferror(f) ? nn_fail(err, NN_ERR_IO, "%s: read error: %s", path, strerror(errno))
                          : nn_fail(err, NN_ERR_FORMAT, "%s: truncated while reading", path);
            break;
        }
        for (int j = 0; j < k; j++) {
            const unsigned char *rec = buf + (size_t)j * CIFAR_RECORD;
            size_t i = (size_t)first + (size_t)r + (size_t)j;
            if (rec[0] >= CIFAR_CLASSES) {
                s = nn_fail(err, NN_ERR_FORMAT, "%s: record %d has label %d, want 0..%d",
                            path, r + j, rec[0], CIFAR_CLASSES - 1);
                break;
            }
            d->labels[i] = rec[0];
            memcpy(d->images + i * CIFAR_PIXELS, rec + 1, CIFAR_PIXELS);
        }
    }
    fclose(f);
    return s;
}

/* Class names from batches.meta.txt: the first 10 non-empty lines, blanks
 * and a CR trimmed. A missing file keeps the built-in names. */
static nn_status read_meta(char names[CIFAR_CLASSES][NN_CLASS_NAME_MAX + 1], const char *path,
                           char *err)
{
    FILE *f = fopen(path, "rb");
    char line[1024];
    int k = 0;

    for (int i = 0; i < CIFAR_CLASSES; i++)
        snprintf(names[i], NN_CLASS_NAME_MAX + 1, "%s", cifar_classes[i]);
    if (!f)
        return errno == ENOENT ? NN_OK
                               : nn_fail(err, NN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    while (k < CIFAR_CLASSES && fgets(line, sizeof line, f)) {
        size_t n = strlen(line);
        char *p = line;
        if (n == sizeof line - 1 && line[n - 1] != '\n') {
            fclose(f);
            return nn_fail(err, NN_ERR_FORMAT, "%s: line %d is too long", path, k + 1);
        }
        while (n > 0 && (p[n - 1] == '\n' || p[n - 1] == '\r' || p[n - 1] == ' ' || p[n - 1] == '\t'))
            p[--n] = 0;
        while (*p == ' ' || *p == '\t')
            p++, n--;
        if (n == 0)
            continue;
        if (n > NN_CLASS_NAME_MAX) {
            fclose(f);
            return nn_fail(err, NN_ERR_FORMAT, "%s: class name %d is longer than %d bytes",
                           path, k, NN_CLASS_NAME_MAX);
        }
        memcpy(names[k++], p, n + 1);
    }
    if (ferror(f)) {
        fclose(f);
        return nn_fail(err, NN_ERR_IO, "%s: read error", path);
    }
    fclose(f);
    if (k < CIFAR_CLASSES)
        return nn_fail(err, NN_ERR_FORMAT, "%s: %d class names, want %d", path, k, CIFAR_CLASSES);
    return NN_OK;
}

/* One part: `files` batch files (paths in `paths`) into one data set. */
static nn_status load_part(nn_dataset **out, char paths[][4096], int files,
                           char names[CIFAR_CLASSES][NN_CLASS_NAME_MAX + 1],
                           const char *name, char *err)
{
    int records[CIFAR_MAX_BATCHES], total = 0;
    unsigned char *buf = NULL;
    nn_dataset *d = NULL;
    nn_status s;

    *out = NULL;
    for (int i = 0; i < files; i++) {
        if ((s = batch_records(&records[i], paths[i], err)) != NN_OK)
            return s;
        total += records[i];
    }
    if ((size_t)total > NN_DATASET_MAX_BYTES / CIFAR_PIXELS)
        return nn_fail(err, NN_ERR_FORMAT, "%s...: %d records exceed the %zu-byte limit",
                       paths[0], total, NN_DATASET_MAX_BYTES);
    buf = malloc((size_t)CIFAR_CHUNK * CIFAR_RECORD);
    if (!buf)
        return nn_fail(err, NN_ERR_NOMEM, "out of memory for a CIFAR read buffer");
    if ((s = nn_dataset_create(&d, total, 3, CIFAR_SIDE, CIFAR_SIDE, CIFAR_CLASSES, err)) != NN_OK)
        goto fail;
    for (int i = 0, first = 0; i < files; first += records[i], i++)
        if ((s = read_batch(d, first, records[i], paths[i], buf, err)) != NN_OK)
            goto fail;
    for (int i = 0; i < CIFAR_CLASSES; i++)
        if ((s = nn_dataset_set_class_name(d, i, names[i], err)) != NN_OK)
            goto fail;
    snprintf(d->name, sizeof d->name, "%s", name);
    free(buf);
    *out = d;
    return NN_OK;

fail:
    nn_dataset_free(d);
    free(buf);
    return s;
}

nn_status nn_dataset_load_cifar10(nn_dataset **train, nn_dataset **test,
                                  const char *dir, char *err)
{
    char base[4096], paths[CIFAR_MAX_BATCHES][4096], path[4096];
    char names[CIFAR_CLASSES][NN_CLASS_NAME_MAX + 1];
    int files = 0;
    nn_status s;

    if (train)
        *train = NULL;
    if (test)
        *test = NULL;
    if (!dir || (!train && !test))
        return nn_fail(err, NN_ERR_ARG, "nn_dataset_load_cifar10: %s",
                       dir ? "train and test both NULL" : "dir is NULL");
    /* accept the folder the archive unpacks into as well as its parent */
    if (!join(base, sizeof base, dir, "data_batch_1.bin") || readable(base)
        || !join(base, sizeof base, dir, "cifar-10-batches-bin/data_batch_1.bin")
        || !readable(base))
        snprintf(base, sizeof base, "%s", dir);
    else
        snprintf(base, sizeof base, "%s/cifar-10-batches-bin", dir);

    if (!join(path, sizeof path, base, "batches.meta.txt"))
        return nn_fail(err, NN_ERR_ARG, "%s: path too long", dir);
    NN_TRY(read_meta(names, path, err));

    if (train) {
        for (files = 0; files < CIFAR_MAX_BATCHES; files++) {
            char name[32];
            snprintf(name, sizeof name, "data_batch_%d.bin", files + 1);
            if (!join(paths[files], sizeof paths[files], base, name))
                return nn_fail(err, NN_ERR_ARG, "%s: path too long", dir);
            if (!readable(paths[files]))
                break;
        }
        if (files == 0)
            return nn_fail(err, NN_ERR_IO, "%s: cannot open: %s", paths[0], strerror(errno));
        NN_TRY(load_part(train, paths, files, names, "cifar10/train", err));
    }
    if (test) {
        if (!join(paths[0], sizeof paths[0], base, "test_batch.bin"))
            return nn_fail(err, NN_ERR_ARG, "%s: path too long", dir);
        if ((s = load_part(test, paths, 1, names, "cifar10/test", err)) != NN_OK) {
            if (train) {
                nn_dataset_free(*train);
                *train = NULL;
            }
            return s;
        }
    }
    return NN_OK;
}
