/* data_idx.c: MNIST-style IDX files (unsigned-byte images and labels),
 * plain or gzip-compressed, and Fashion-MNIST on top of them.
 * Everything in a file is checked before a data set is handed out: magic,
 * dimensions, exact length, a sound gzip stream. Other IDX element types
 * (int, float) and more than 3 dims are deliberately not supported. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include "nn/data.h"
#include "internal.h"

#define IDX_IMAGES_MAGIC 0x00000803u /* unsigned byte, 3 dims */
#define IDX_LABELS_MAGIC 0x00000801u /* unsigned byte, 1 dim */
#define GZ_CHUNK (1u << 30)          /* gzread takes an unsigned int */

/* ---- a file that may be gzip ------------------------------------------- */

typedef struct reader {
    const char *path;
    FILE *f;     /* plain file, or NULL */
    gzFile gz;   /* gzip file, or NULL */
    long size;   /* plain: length in bytes */
    size_t pos;  /* bytes (uncompressed) consumed so far */
    int cut;     /* gzip: the compressed stream ended early */
} reader;

static nn_status rd_open(reader *r, const char *path, char *err)
{
    unsigned char magic[2];
    size_t got;

    memset(r, 0, sizeof *r);
    r->path = path;
    r->f = fopen(path, "rb");
    if (!r->f)
        return nn_fail(err, NN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    got = fread(magic, 1, 2, r->f);
    if (got == 2 && magic[0] == 0x1f && magic[1] == 0x8b) {
        /* reopen through zlib; the peeked bytes are simply read again */
        fclose(r->f);
        r->f = NULL;
        r->gz = gzopen(path, "rb");
        if (!r->gz)
            return nn_fail(err, NN_ERR_IO, "%s: cannot open: %s", path,
                           errno ? strerror(errno) : "out of memory");
        gzbuffer(r->gz, 1u << 17);
        return NN_OK;
    }
    if (ferror(r->f) || fseek(r->f, 0, SEEK_END) != 0 || (r->size = ftell(r->f)) < 0
        || fseek(r->f, 0, SEEK_SET) != 0)
        return nn_fail(err, NN_ERR_IO, "%s: cannot read: %s", path, strerror(errno));
    return NN_OK;
}

static void rd_close(reader *r)
{
    if (r->f)
        fclose(r->f);
    if (r->gz)
        gzclose(r->gz);
    r->f = NULL;
    r->gz = NULL;
}

/* Reads up to n bytes into buf; *got says how many (< n only at the end of
 * the data). A read error is NN_ERR_IO, corrupt gzip data NN_ERR_FORMAT. A
 * cut gzip stream is not an error here but sets r->cut: zlib notices it
 * while filling its own buffer, possibly during an earlier, smaller read,
 * and still hands out what it decompressed, so the caller can say how much
 * data there was (rd_read_rest). */
static nn_status rd_read(reader *r, void *buf, size_t n, size_t *got, char *err)
{
    unsigned char *p = buf;
    *got = 0;
    if (r->f) {
        *got = fread(p, 1, n, r->f);
        if (*got < n && ferror(r->f))
            return nn_fail(err, NN_ERR_IO, "%s: read error: %s", r->path, strerror(errno));
        r->pos += *got;
        return NN_OK;
    }
    while (*got < n) {
        size_t want = n - *got;
        int k = gzread(r->gz, p + *got, want > GZ_CHUNK ? GZ_CHUNK : (unsigned)want);
        int zerr;
        const char *msg;
        if (k > 0)
            *got += (size_t)k;
        msg = gzerror(r->gz, &zerr);
        if (zerr == Z_ERRNO)
            return nn_fail(err, NN_ERR_IO, "%s: read error: %s", r->path, strerror(errno));
        if (k < 0 || (zerr != Z_OK && zerr != Z_BUF_ERROR)) {
            /* zlib's message starts with the path again */
            size_t pl = strlen(r->path);
            if (msg && !strncmp(msg, r->path, pl) && !strncmp(msg + pl, ": ", 2))
                msg += pl + 2;
            return nn_fail(err, NN_ERR_FORMAT, "%s: corrupt gzip data: %s", r->path,
                           msg && *msg ? msg : "unknown zlib error");
        }
        if (zerr == Z_BUF_ERROR) /* zlib's word for "unexpected end of file" */
            r->cut = 1;
        if (k == 0)
            break;
    }
    r->pos += *got;
    return NN_OK;
}

/* Reads exactly n bytes, the last of a file whose total length must be
 * `expected`, into a new buffer *out (malloc'd, the caller frees): anything
 * shorter or longer is NN_ERR_FORMAT. The buffer grows as data arrives, so
 * a header that claims gigabytes costs no more memory than the file holds
 * (a 39-byte file claiming 1.5 GB of images made the fuzzer's calloc touch
 * all of it). */
static nn_status rd_read_rest(reader *r, uint8_t **out, size_t n, size_t expected, char *err)
{
    size_t got, have = 0, cap = n < ((size_t)1 << 20) ? n : (size_t)1 << 20;
    unsigned char extra;
    uint8_t *buf;
    nn_status s = NN_OK;

    *out = NULL;
    if (r->f && (size_t)r->size != expected) /* plain: know before reading */
        return nn_fail(err, NN_ERR_FORMAT, "%s: %s: expected %zu bytes, got %ld", r->path,
                       (size_t)r->size < expected ? "truncated" : "wrong size",
                       expected, r->size);
    if (!(buf = malloc(cap ? cap : 1)))
        return nn_fail(err, NN_ERR_NOMEM, "%s: out of memory", r->path);
    while (have < n) {
        if (have == cap) {
            size_t ncap = cap > n / 2 ? n : 2 * cap;
            uint8_t *nb = realloc(buf, ncap);
            if (!nb) {
                s = nn_fail(err, NN_ERR_NOMEM, "%s: out of memory for %zu bytes", r->path, ncap);
                goto fail;
            }
            buf = nb;
            cap = ncap;
        }
        if ((s = rd_read(r, buf + have, cap - have, &got, err)) != NN_OK)
            goto fail;
        if (got == 0) {
            s = nn_fail(err, NN_ERR_FORMAT, "%s: truncated: expected %zu bytes, got %zu%s",
                        r->path, expected, r->pos, r->cut ? " (gzip stream cut short)" : "");
            goto fail;
        }
        have += got;
    }
    if ((s = rd_read(r, &extra, 1, &got, err)) != NN_OK)
        goto fail;
    if (got) {
        s = nn_fail(err, NN_ERR_FORMAT,
                    "%s: wrong size: data continues past the expected %zu bytes",
                    r->path, expected);
        goto fail;
    }
    if (r->cut) {
        s = nn_fail(err, NN_ERR_FORMAT,
                    "%s: truncated: all %zu bytes are there but the gzip trailer is cut",
                    r->path, expected);
        goto fail;
    }
    *out = buf;
    return NN_OK;
fail:
    free(buf);
    return s;
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Reads an IDX header with ndim dims and the given magic into dims[]. */
static nn_status idx_header(reader *r, uint32_t magic, int ndim, int *dims, char *err)
{
    unsigned char hdr[16];
    size_t want = 4 + 4 * (size_t)ndim, got;
    uint32_t m;

    NN_TRY(rd_read(r, hdr, want, &got, err));
    if (got < 4)
        return nn_fail(err, NN_ERR_FORMAT, "%s: truncated: %zu bytes, too short for an IDX header",
                       r->path, got);
    m = be32(hdr);
    if (m != magic)
        return nn_fail(err, NN_ERR_FORMAT,
                       "%s: bad magic 0x%08x, want 0x%08x (IDX unsigned bytes, %d %s)",
                       r->path, (unsigned)m, (unsigned)magic, ndim,
                       ndim == 1 ? "dimension" : "dimensions");
    if (got < want)
        return nn_fail(err, NN_ERR_FORMAT, "%s: truncated: %zu bytes, too short for an IDX header%s",
                       r->path, got, r->cut ? " (gzip stream cut short)" : "");
    for (int i = 0; i < ndim; i++) {
        uint32_t v = be32(hdr + 4 + 4 * i);
        if (v < 1 || v > (uint32_t)NN_DATASET_MAX_BYTES - 1)
            return nn_fail(err, NN_ERR_FORMAT, "%s: dimension %d is %u, want 1..%zu",
                           r->path, i, (unsigned)v, NN_DATASET_MAX_BYTES - 1);
        dims[i] = (int)v;
    }
    return NN_OK;
}

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* nn_dataset_load_idx with num_classes fixed (> 0) or taken from the
 * labels (0). */
static nn_status load_idx(nn_dataset **out, const char *images_path,
                          const char *labels_path, int fixed_classes, char *err)
{
    reader ri, rl;
    int idims[3] = { 0 }, ldims[1] = { 0 }, classes;
    uint8_t *lab = NULL, *img = NULL, maxlab = 0;
    nn_dataset *d = NULL;
    size_t img_bytes;
    nn_status s;

    memset(&ri, 0, sizeof ri);
    memset(&rl, 0, sizeof rl);
    if (!out || !images_path || !labels_path)
        return nn_fail(err, NN_ERR_ARG, "nn_dataset_load_idx: NULL argument");
    *out = NULL;

    if ((s = rd_open(&ri, images_path, err)) != NN_OK
        || (s = idx_header(&ri, IDX_IMAGES_MAGIC, 3, idims, err)) != NN_OK
        || (s = rd_open(&rl, labels_path, err)) != NN_OK
        || (s = idx_header(&rl, IDX_LABELS_MAGIC, 1, ldims, err)) != NN_OK)
        goto fail;
    if ((size_t)idims[1] * (size_t)idims[2] > NN_DATASET_MAX_BYTES / (size_t)idims[0]) {
        s = nn_fail(err, NN_ERR_FORMAT, "%s: %d images of %d x %d exceed the %zu-byte limit",
                    images_path, idims[0], idims[1], idims[2], NN_DATASET_MAX_BYTES);
        goto fail;
    }
    if (idims[0] != ldims[0]) {
        s = nn_fail(err, NN_ERR_FORMAT, "%s has %d labels but %s has %d images",
                    labels_path, ldims[0], images_path, idims[0]);
        goto fail;
    }

    /* labels first: they are small and decide num_classes */
    if ((s = rd_read_rest(&rl, &lab, (size_t)ldims[0], 8 + (size_t)ldims[0], err)) != NN_OK)
        goto fail;
    for (int i = 0; i < ldims[0]; i++)
        if (lab[i] > maxlab)
            maxlab = lab[i];
    if (fixed_classes > 0 && maxlab >= fixed_classes) {
        s = nn_fail(err, NN_ERR_FORMAT, "%s: label %d out of range 0..%d",
                    labels_path, maxlab, fixed_classes - 1);
        goto fail;
    }
    classes = fixed_classes > 0 ? fixed_classes : (maxlab + 1 < 2 ? 2 : maxlab + 1);

    img_bytes = (size_t)idims[0] * (size_t)idims[1] * (size_t)idims[2];
    if ((s = rd_read_rest(&ri, &img, img_bytes, 16 + img_bytes, err)) != NN_OK ||
        (s = nn_dataset_create(&d, idims[0], 1, idims[1], idims[2], classes, err)) != NN_OK)
        goto fail;
    free(d->images); /* calloc'd, never touched: take the pixels read instead */
    d->images = img;
    img = NULL;
    for (int i = 0; i < d->n; i++)
        d->labels[i] = lab[i];
    snprintf(d->name, sizeof d->name, "%s", base_name(images_path));

    free(lab);
    rd_close(&ri);
    rd_close(&rl);
    *out = d;
    return NN_OK;

fail:
    nn_dataset_free(d);
    free(lab);
    free(img);
    rd_close(&ri);
    rd_close(&rl);
    return s;
}

nn_status nn_dataset_load_idx(nn_dataset **out, const char *images_path,
                              const char *labels_path, char *err)
{
    return load_idx(out, images_path, labels_path, 0, err);
}

/* ---- Fashion-MNIST ------------------------------------------------------ */

static const char *const fashion_dirs[] = {
    "/usr/share/datasets/fashion-mnist",       /* Debian: dataset-fashion-mnist */
    "/usr/local/share/datasets/fashion-mnist",
};

static const char *const fashion_files[4] = {
    "train-images-idx3-ubyte", "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte",
};

static const char *const fashion_classes[10] = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
};

static int readable(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    fclose(f);
    return 1;
}

/* Writes dir/name.gz, or dir/name when only that exists, into path (len
 * bytes). 0 when neither is readable or the path does not fit. */
static int find_file(char *path, size_t len, const char *dir, const char *name)
{
    int k = snprintf(path, len, "%s/%s.gz", dir, name);
    if (k < 0 || (size_t)k >= len)
        return 0;
    if (readable(path))
        return 1;
    path[k - 3] = 0;
    return readable(path);
}

nn_status nn_dataset_find_fashion_mnist(char *dir_out, size_t len, char *err)
{
    char path[4096];
    size_t nd = sizeof fashion_dirs / sizeof fashion_dirs[0];

    if (!dir_out || len == 0)
        return nn_fail(err, NN_ERR_ARG, "nn_dataset_find_fashion_mnist: no output buffer");
    for (size_t i = 0; i < nd; i++) {
        int all = 1;
        for (int f = 0; f < 4 && all; f++)
            all = find_file(path, sizeof path, fashion_dirs[i], fashion_files[f]);
        if (!all)
            continue;
        if (strlen(fashion_dirs[i]) >= len)
            return nn_fail(err, NN_ERR_ARG, "dir_out of %zu bytes is too short for %s",
                           len, fashion_dirs[i]);
        strcpy(dir_out, fashion_dirs[i]);
        return NN_OK;
    }
    return nn_fail(err, NN_ERR_IO,
                   "Fashion-MNIST not found in %s or %s (Debian: apt install dataset-fashion-mnist)",
                   fashion_dirs[0], fashion_dirs[1]);
}

static nn_status load_fashion_part(nn_dataset **out, const char *dir, int part, char *err)
{
    char ipath[4096], lpath[4096];
    nn_status s;

    for (int f = 0; f < 2; f++) {
        char *p = f ? lpath : ipath;
        if (!find_file(p, sizeof ipath, dir, fashion_files[2 * part + f]))
            return nn_fail(err, NN_ERR_IO, "%s: no %s(.gz) there", dir,
                           fashion_files[2 * part + f]);
    }
    NN_TRY(load_idx(out, ipath, lpath, 10, err));
    for (int i = 0; i < 10; i++) {
        if ((s = nn_dataset_set_class_name(*out, i, fashion_classes[i], err)) != NN_OK) {
            nn_dataset_free(*out);
            *out = NULL;
            return s;
        }
    }
    snprintf((*out)->name, sizeof (*out)->name, "fashion-mnist/%s", part ? "test" : "train");
    return NN_OK;
}

nn_status nn_dataset_load_fashion_mnist(nn_dataset **train, nn_dataset **test,
                                        const char *dir, char *err)
{
    char found[4096];
    nn_status s;

    if (train)
        *train = NULL;
    if (test)
        *test = NULL;
    if (!train && !test)
        return nn_fail(err, NN_ERR_ARG, "nn_dataset_load_fashion_mnist: train and test both NULL");
    if (!dir) {
        NN_TRY(nn_dataset_find_fashion_mnist(found, sizeof found, err));
        dir = found;
    }
    if (train)
        NN_TRY(load_fashion_part(train, dir, 0, err));
    if (test && (s = load_fashion_part(test, dir, 1, err)) != NN_OK) {
        if (train) {
            nn_dataset_free(*train);
            *train = NULL;
        }
        return s;
    }
    return NN_OK;
}
