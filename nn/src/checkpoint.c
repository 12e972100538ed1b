/* checkpoint.c: the checkpoint container (docs/checkpoint.md): a JSON text
 * and named tensors, serialised byte by byte in little-endian, CRC-32
 * checked, written to a temp file that is fsynced and renamed into place.
 * It is not a model format: what the metadata and tensor names mean is the
 * caller's business. Reading loads the whole file and verifies every size,
 * bound and the checksum before allocating anything the file asks for. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>
#include <zlib.h>
#include "nn/checkpoint.h"
#include "internal.h"

/* ---- the format (docs/checkpoint.md is the normative text) ---- */

static const unsigned char MAGIC[8] = { 'C', 'N', 'V', 'N', 'E', 'T', 'D', 0 };
static const unsigned char END_MAGIC[8] = { 'C', 'N', 'V', 'N', 'E', 'N', 'D', 0 };

enum {
    VERSION = 1,
    HEADER_LEN = 32,       /* magic, version, flags, meta_len, n_tensors, reserved */
    TRAILER_LEN = 12,      /* crc32, end magic */
    ENTRY_FIXED = 20,      /* name_len u16, dtype u8, ndim u8, offset u64, len u64 */
    ENTRY_MIN = ENTRY_FIXED + 1 + 4, /* a 1-byte name and one dim */
    BLOB_ALIGN = 64,
    WBUF_LEN = 1 << 16
};

/* No valid file is larger than this, so a bigger one is rejected before it
 * is read into memory. */
#define MAX_FILE_LEN ((uint64_t)HEADER_LEN + NN_CKPT_MAX_META + \
                      (uint64_t)NN_CKPT_MAX_TENSORS * (ENTRY_FIXED + NN_CKPT_NAME_MAX + 4 * NN_MAX_DIMS + BLOB_ALIGN) + \
                      NN_CKPT_MAX_DATA + TRAILER_LEN)

static const char *DEFAULT_WHAT = "checkpoint";

static uint32_t rd16(const unsigned char *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static uint32_t rd32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t rd64(const unsigned char *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }

static void wr16(unsigned char *p, uint32_t v) { p[0] = (unsigned char)v; p[1] = (unsigned char)(v >> 8); }
static void wr32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}
static void wr64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static size_t dtype_size(uint32_t dtype)
{
    return dtype == NN_F32 ? 4 : dtype == NN_F64 ? 8 : 0;
}

static uint64_t align_up(uint64_t x) { return (x + BLOB_ALIGN - 1) / BLOB_ALIGN * BLOB_ALIGN; }

/* zlib's crc32 takes a uInt length; feed large buffers in chunks. */
static uint32_t crc_update(uint32_t crc, const unsigned char *p, size_t len)
{
    uLong c = crc;
    while (len > 0) {
        uInt k = len > (1u << 30) ? (1u << 30) : (uInt)len;
        c = crc32(c, p, k);
        p += k;
        len -= k;
    }
    return (uint32_t)c;
}

/* Narrowing double -> float is undefined in ISO C when out of range; saturate
 * to infinity explicitly, as IEEE arithmetic would. NaN passes through. */
static float to_float(double d)
{
    if (d > FLT_MAX)
        return INFINITY;
    if (d < -FLT_MAX)
        return -INFINITY;
    return (float)d;
}

#ifdef NN_DOUBLE
static nn_real from_double(double d) { return d; }
#else
static nn_real from_double(double d) { return to_float(d); }
#endif

/* Names come from untrusted files; quote them in messages with control
 * bytes replaced, so an error text is always one printable line. */
static const char *printable(char *out, const char *name)
{
    size_t i;
    for (i = 0; name[i] && i < NN_CKPT_NAME_MAX - 1; i++) {
        unsigned char c = (unsigned char)name[i];
        out[i] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    out[i] = 0;
    return out;
}

/* ---- writing ---- */

/* A buffered writer that keeps the running CRC of everything flushed. */
typedef struct wbuf {
    int fd;
    unsigned char *buf;
    size_t used;
    uint64_t pos;   /* bytes handed to put() so far = the file offset */
    uint32_t crc;
    int errnum;     /* first write error, 0 if none */
} wbuf;

static int write_all(int fd, const unsigned char *p, size_t len)
{
    while (len > 0) {
        ssize_t r = write(fd, p, len);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return errno ? errno : EIO;
        }
        p += r;
        len -= (size_t)r;
    }
    return 0;
}

static void wflush(wbuf *w)
{
    if (w->errnum == 0 && w->used > 0) {
        w->crc = crc_update(w->crc, w->buf, w->used);
        w->errnum = write_all(w->fd, w->buf, w->used);
    }
    w->used = 0;
}

static void put(wbuf *w, const void *p, size_t len)
{
    const unsigned char *s = p;
    w->pos += len;
    while (len > 0) {
        size_t k = WBUF_LEN - w->used;
        if (k > len)
            k = len;
        memcpy(w->buf + w->used, s, k);
        w->used += k;
        s += k;
        len -= k;
        if (w->used == WBUF_LEN)
            wflush(w);
    }
}

static void put_zeros_to(wbuf *w, uint64_t off)
{
    static const unsigned char zeros[BLOB_ALIGN];
    while (w->pos < off) {
        uint64_t k = off - w->pos;
        put(w, zeros, k > sizeof zeros ? sizeof zeros : (size_t)k);
    }
}

static void put_tensor_data(wbuf *w, const nn_ckpt_tensor *t, size_t count)
{
    unsigned char b[8];
    for (size_t k = 0; k < count; k++) {
        if (t->dtype == NN_F32) {
            float f = to_float((double)t->data[k]);
            uint32_t u;
            memcpy(&u, &f, 4);
            wr32(b, u);
            put(w, b, 4);
        } else {
            double d = (double)t->data[k];
            uint64_t u;
            memcpy(&u, &d, 8);
            wr64(b, u);
            put(w, b, 8);
        }
    }
}

static size_t tensor_count(const nn_ckpt_tensor *t)
{
    size_t c = 1;
    for (int d = 0; d < t->ndim; d++)
        c *= (size_t)t->shape[d];
    return c;
}

/* Everything nn_ckpt_write rejects with NN_ERR_ARG, checked before any file
 * is touched. Sets *table_len to the size of the tensor table. */
static nn_status check_write_args(const char *path, const char *meta_json,
                                  const nn_ckpt_tensor *tensors, int n,
                                  uint64_t *table_len, char *err)
{
    char pn[NN_CKPT_NAME_MAX];
    uint64_t total = 0;

    if (!path || !*path)
        return nn_fail(err, NN_ERR_ARG, "checkpoint write: path is NULL or empty");
    if (!meta_json)
        return nn_fail(err, NN_ERR_ARG, "%s: metadata is NULL", path);
    if (strlen(meta_json) > NN_CKPT_MAX_META)
        return nn_fail(err, NN_ERR_ARG, "%s: metadata of %zu bytes exceeds the 16 MiB limit",
                       path, strlen(meta_json));
    if (n < 0 || n > NN_CKPT_MAX_TENSORS)
        return nn_fail(err, NN_ERR_ARG, "%s: %d tensors (0..%d allowed)", path, n, NN_CKPT_MAX_TENSORS);
    if (n > 0 && !tensors)
        return nn_fail(err, NN_ERR_ARG, "%s: tensors is NULL", path);

    *table_len = 0;
    for (int i = 0; i < n; i++) {
        const nn_ckpt_tensor *t = &tensors[i];
        size_t name_len = strnlen(t->name, NN_CKPT_NAME_MAX);
        size_t esize = dtype_size((uint32_t)t->dtype);
        uint64_t count = 1;

        if (name_len == 0)
            return nn_fail(err, NN_ERR_ARG, "%s: tensor %d has an empty name", path, i);
        if (name_len == NN_CKPT_NAME_MAX)
            return nn_fail(err, NN_ERR_ARG, "%s: tensor %d: name longer than %d bytes",
                           path, i, NN_CKPT_NAME_MAX - 1);
        printable(pn, t->name);
        if (esize == 0)
            return nn_fail(err, NN_ERR_ARG, "%s: tensor %d '%s': unknown dtype %d", path, i, pn, (int)t->dtype);
        if (t->ndim < 1 || t->ndim > NN_MAX_DIMS)
            return nn_fail(err, NN_ERR_ARG, "%s: tensor %d '%s': ndim %d (1..%d allowed)",
                           path, i, pn, t->ndim, NN_MAX_DIMS);
        for (int d = 0; d < t->ndim; d++) {
            if (t->shape[d] < 1)
                return nn_fail(err, NN_ERR_ARG, "%s: tensor %d '%s': shape[%d] = %d",
                               path, i, pn, d, t->shape[d]);
            if ((uint64_t)t->shape[d] > NN_CKPT_MAX_DATA / esize / count)
                return nn_fail(err, NN_ERR_ARG, "%s: tensor %d '%s' exceeds the 8 GiB data limit", path, i, pn);
            count *= (uint64_t)t->shape[d];
        }
        if (!t->data)
            return nn_fail(err, NN_ERR_ARG, "%s: tensor %d '%s': data is NULL", path, i, pn);
        total += count * esize;
        if (total > NN_CKPT_MAX_DATA)
            return nn_fail(err, NN_ERR_ARG, "%s: tensor data exceeds the 8 GiB limit", path);
        /* Shortcut: quadratic, but n <= 4096 and names are short. */
        for (int j = 0; j < i; j++)
            if (strcmp(tensors[j].name, t->name) == 0)
                return nn_fail(err, NN_ERR_ARG, "%s: duplicate tensor name '%s' (tensors %d and %d)",
                               path, pn, j, i);
        *table_len += ENTRY_FIXED + name_len + 4 * (uint64_t)t->ndim;
    }
    return NN_OK;
}

/* The directory holding path, for the fsync that makes the rename durable. */
static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    size_t len = !slash ? 1 : slash == path ? 1 : (size_t)(slash - path);
    char *d = malloc(len + 1);
    if (!d)
        return NULL;
    if (!slash)
        d[0] = '.';
    else
        memcpy(d, path, len);
    d[len] = 0;
    return d;
}

static nn_status fsync_dir(const char *path, char *err)
{
    nn_status st = NN_OK;
    char *dir = dir_of(path);
    int fd;

    if (!dir)
        return nn_fail(err, NN_ERR_NOMEM, "%s: out of memory", path);
    fd = open(dir, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        st = nn_fail(err, NN_ERR_IO, "%s: written, but cannot open its directory to fsync: %s",
                     path, strerror(errno));
    } else {
        /* Some file systems cannot fsync a directory (EINVAL); there is
         * nothing more to do on those. */
        if (fsync(fd) != 0 && errno != EINVAL)
            st = nn_fail(err, NN_ERR_IO, "%s: written, but fsync of its directory failed: %s",
                         path, strerror(errno));
        if (close(fd) != 0 && st == NN_OK)
            st = nn_fail(err, NN_ERR_IO, "%s: written, but closing its directory failed: %s",
                         path, strerror(errno));
    }
    free(dir);
    return st;
}

nn_status nn_ckpt_write(const char *path, const char *meta_json,
                        const nn_ckpt_tensor *tensors, int n, char *err)
{
    nn_status st;
    uint64_t table_len = 0, off;
    size_t meta_len;
    char *tmp = NULL;
    int created = 0;
    wbuf w = { .fd = -1 };
    unsigned char b[8 + 4 * NN_MAX_DIMS];

    NN_TRY(check_write_args(path, meta_json, tensors, n, &table_len, err));
    meta_len = strlen(meta_json);

    tmp = malloc(strlen(path) + 32);
    w.buf = malloc(WBUF_LEN);
    if (!tmp || !w.buf) {
        st = nn_fail(err, NN_ERR_NOMEM, "%s: out of memory", path);
        goto fail;
    }
    snprintf(tmp, strlen(path) + 32, "%s.tmp.%ld", path, (long)getpid());
    /* O_TRUNC, not O_EXCL: a temp name left by a crashed process with our
     * pid is ours to reuse. O_NOFOLLOW: never write through a planted link. */
    w.fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (w.fd < 0) {
        st = nn_fail(err, NN_ERR_IO, "%s: cannot create %s: %s", path, tmp, strerror(errno));
        goto fail;
    }
    created = 1;

    /* header */
    put(&w, MAGIC, 8);
    wr32(b, VERSION);
    wr32(b + 4, 0);                     /* flags */
    put(&w, b, 8);
    wr64(b, meta_len);
    put(&w, b, 8);
    wr32(b, (uint32_t)n);
    wr32(b + 4, 0);                     /* reserved */
    put(&w, b, 8);
    put(&w, meta_json, meta_len);

    /* tensor table; the blob offsets follow from the sizes alone */
    off = HEADER_LEN + meta_len + table_len;
    for (int i = 0; i < n; i++) {
        const nn_ckpt_tensor *t = &tensors[i];
        size_t name_len = strlen(t->name);
        uint64_t dlen = tensor_count(t) * dtype_size((uint32_t)t->dtype);
        off = align_up(off);
        wr16(b, (uint32_t)name_len);
        put(&w, b, 2);
        put(&w, t->name, name_len);
        b[0] = (unsigned char)t->dtype;
        b[1] = (unsigned char)t->ndim;
        put(&w, b, 2);
        for (int d = 0; d < t->ndim; d++)
            wr32(b + 4 * d, (uint32_t)t->shape[d]);
        put(&w, b, 4 * (size_t)t->ndim);
        wr64(b, off);
        put(&w, b, 8);
        wr64(b, dlen);
        put(&w, b, 8);
        off += dlen;
    }

    /* blobs, each 64-byte aligned, zero padding between */
    for (int i = 0; i < n; i++) {
        put_zeros_to(&w, align_up(w.pos));
        put_tensor_data(&w, &tensors[i], tensor_count(&tensors[i]));
    }
    wflush(&w);
    if (w.errnum == 0) {
        wr32(b, w.crc);
        memcpy(b + 4, END_MAGIC, 8);
        w.errnum = write_all(w.fd, b, TRAILER_LEN);
    }
    if (w.errnum != 0) {
        st = nn_fail(err, NN_ERR_IO, "%s: writing %s failed: %s", path, tmp, strerror(w.errnum));
        goto fail;
    }
    if (fsync(w.fd) != 0) {
        st = nn_fail(err, NN_ERR_IO, "%s: fsync of %s failed: %s", path, tmp, strerror(errno));
        goto fail;
    }
    if (close(w.fd) != 0) {
        w.fd = -1;
        st = nn_fail(err, NN_ERR_IO, "%s: closing %s failed: %s", path, tmp, strerror(errno));
        goto fail;
    }
    w.fd = -1;
    if (rename(tmp, path) != 0) {
        st = nn_fail(err, NN_ERR_IO, "%s: cannot rename %s over it: %s", path, tmp, strerror(errno));
        goto fail;
    }
    free(tmp);
    free(w.buf);
    return fsync_dir(path, err);

fail:
    if (w.fd >= 0)
        (void)close(w.fd);      /* already failing; the first error is the one reported */
    if (created)
        (void)unlink(tmp);      /* best effort: nothing better to do if it fails */
    free(tmp);
    free(w.buf);
    return st;
}

/* ---- reading ---- */

typedef struct blob {
    uint64_t off, len;
} blob;

void nn_ckpt_free(char *meta_json, nn_ckpt_tensor *tensors, int n)
{
    free(meta_json);
    if (tensors)
        for (int i = 0; i < n; i++)
            free(tensors[i].data);
    free(tensors);
}

const nn_ckpt_tensor *nn_ckpt_find(const nn_ckpt_tensor *tensors, int n, const char *name)
{
    if (!tensors || !name)
        return NULL;
    for (int i = 0; i < n; i++)
        if (strcmp(tensors[i].name, name) == 0)
            return &tensors[i];
    return NULL;
}

static nn_status truncated(char *err, const char *what, int i, int n)
{
    return nn_fail(err, NN_ERR_FORMAT, "%s: truncated in the tensor table (entry %d of %d)", what, i, n);
}

/* Parses the tensor table at b[*pos..limit) into t[] and bl[], checking each
 * entry on its own; blob placement is checked by the caller. */
static nn_status parse_table(const unsigned char *b, size_t *pos, size_t limit,
                             nn_ckpt_tensor *t, blob *bl, int n, const char *what, char *err)
{
    char pn[NN_CKPT_NAME_MAX];
    size_t p = *pos;

    for (int i = 0; i < n; i++) {
        uint32_t name_len, dtype, ndim;
        uint64_t count = 1;
        size_t esize;

        if (limit - p < 2)
            return truncated(err, what, i, n);
        name_len = rd16(b + p);
        p += 2;
        if (name_len == 0 || name_len >= NN_CKPT_NAME_MAX)
            return nn_fail(err, NN_ERR_FORMAT, "%s: tensor %d: bad name length %u (1..%d allowed)",
                           what, i, (unsigned)name_len, NN_CKPT_NAME_MAX - 1);
        if (limit - p < name_len + 2)
            return truncated(err, what, i, n);
        if (memchr(b + p, 0, name_len))
            return nn_fail(err, NN_ERR_FORMAT, "%s: tensor %d: name contains a NUL byte", what, i);
        memcpy(t[i].name, b + p, name_len);
        t[i].name[name_len] = 0;
        printable(pn, t[i].name);
        p += name_len;
        dtype = b[p];
        ndim = b[p + 1];
        p += 2;
        esize = dtype_size(dtype);
        if (esize == 0)
            return nn_fail(err, NN_ERR_FORMAT, "%s: tensor %d '%s': unknown dtype %u", what, i, pn, (unsigned)dtype);
        if (ndim < 1 || ndim > NN_MAX_DIMS)
            return nn_fail(err, NN_ERR_FORMAT, "%s: tensor %d '%s': ndim %u (1..%d allowed)",
                           what, i, pn, (unsigned)ndim, NN_MAX_DIMS);
        if (limit - p < 4 * ndim + 16)
            return truncated(err, what, i, n);
        t[i].dtype = (nn_dtype)dtype;
        t[i].ndim = (int)ndim;
        for (uint32_t d = 0; d < ndim; d++) {
            uint32_t dim = rd32(b + p + 4 * d);
            if (dim < 1 || dim > INT_MAX)
                return nn_fail(err, NN_ERR_FORMAT, "%s: tensor %d '%s': bad dimension %u",
                               what, i, pn, (unsigned)dim);
            if (dim > NN_CKPT_MAX_DATA / esize / count)
                return nn_fail(err, NN_ERR_FORMAT, "%s: tensor %d '%s' exceeds the 8 GiB data limit", what, i, pn);
            count *= dim;
            t[i].shape[d] = (int)dim;
        }
        p += 4 * ndim;
        bl[i].off = rd64(b + p);
        bl[i].len = rd64(b + p + 8);
        p += 16;
        if (bl[i].len != count * esize)
            return nn_fail(err, NN_ERR_FORMAT, "%s: tensor %d '%s': data length %llu does not match its shape (%llu)",
                           what, i, pn, (unsigned long long)bl[i].len, (unsigned long long)(count * esize));
        if (bl[i].off % BLOB_ALIGN != 0)
            return nn_fail(err, NN_ERR_FORMAT, "%s: tensor %d '%s': data offset %llu is not 64-byte aligned",
                           what, i, pn, (unsigned long long)bl[i].off);
    }
    *pos = p;
    return NN_OK;
}

static void convert(nn_real *dst, const unsigned char *src, size_t count, nn_dtype dtype)
{
    for (size_t k = 0; k < count; k++) {
        if (dtype == NN_F32) {
            uint32_t u = rd32(src + 4 * k);
            float f;
            memcpy(&f, &u, 4);
            dst[k] = (nn_real)f;
        } else {
            uint64_t u = rd64(src + 8 * k);
            double d;
            memcpy(&d, &u, 8);
            dst[k] = from_double(d);
        }
    }
}

nn_status nn_ckpt_read_mem(const void *buf, size_t len, const char *what,
                           char **meta_json, nn_ckpt_tensor **tensors, int *n,
                           char *err)
{
    const unsigned char *b = buf;
    char pn[NN_CKPT_NAME_MAX];
    nn_ckpt_tensor *t = NULL;
    blob *bl = NULL;
    char *meta = NULL;
    nn_status st;
    uint32_t version, flags, reserved, nt;
    uint64_t meta_len, total = 0, prev_end, stored_crc, crc;
    size_t limit, pos;

    if (!what)
        what = DEFAULT_WHAT;
    if (!meta_json || !tensors || !n)
        return nn_fail(err, NN_ERR_ARG, "%s: NULL output pointer", what);
    *meta_json = NULL;
    *tensors = NULL;
    *n = 0;
    if (!b && len > 0)
        return nn_fail(err, NN_ERR_ARG, "%s: NULL buffer of %zu bytes", what, len);

    /* header */
    if (len < HEADER_LEN)
        return nn_fail(err, NN_ERR_FORMAT, "%s: truncated: %zu bytes, the header alone is %d",
                       what, len, HEADER_LEN);
    if (memcmp(b, MAGIC, 8) != 0)
        return nn_fail(err, NN_ERR_FORMAT, "%s: not a convnetd checkpoint (bad magic)", what);
    version = rd32(b + 8);
    if (version != VERSION)
        return nn_fail(err, NN_ERR_FORMAT, "%s: unsupported version %u (this build reads version %d)",
                       what, (unsigned)version, VERSION);
    flags = rd32(b + 12);
    meta_len = rd64(b + 16);
    nt = rd32(b + 24);
    reserved = rd32(b + 28);
    if (flags != 0)
        return nn_fail(err, NN_ERR_FORMAT, "%s: unknown flags 0x%x", what, (unsigned)flags);
    if (reserved != 0)
        return nn_fail(err, NN_ERR_FORMAT, "%s: reserved header field is 0x%x, not 0", what, (unsigned)reserved);
    if (meta_len > NN_CKPT_MAX_META)
        return nn_fail(err, NN_ERR_FORMAT, "%s: metadata of %llu bytes exceeds the 16 MiB limit",
                       what, (unsigned long long)meta_len);
    if (nt > NN_CKPT_MAX_TENSORS)
        return nn_fail(err, NN_ERR_FORMAT, "%s: %u tensors exceed the limit of %d",
                       what, (unsigned)nt, NN_CKPT_MAX_TENSORS);

    /* Everything but the trailer must lie in b[0..limit). Sizes are checked
     * against it before anything is allocated. */
    limit = len >= HEADER_LEN + TRAILER_LEN ? len - TRAILER_LEN : HEADER_LEN;
    if (meta_len > limit - HEADER_LEN)
        return nn_fail(err, NN_ERR_FORMAT, "%s: truncated in the metadata (%llu bytes claimed, %zu present)",
                       what, (unsigned long long)meta_len, limit - HEADER_LEN);
    pos = HEADER_LEN + (size_t)meta_len;
    if ((uint64_t)nt * ENTRY_MIN > limit - pos)
        return nn_fail(err, NN_ERR_FORMAT, "%s: truncated in the tensor table (%u tensors claimed)",
                       what, (unsigned)nt);

    t = calloc(nt ? nt : 1, sizeof *t);
    bl = calloc(nt ? nt : 1, sizeof *bl);
    if (!t || !bl) {
        st = nn_fail(err, NN_ERR_NOMEM, "%s: out of memory", what);
        goto fail;
    }
    st = parse_table(b, &pos, limit, t, bl, (int)nt, what, err);
    if (st != NN_OK)
        goto fail;

    /* Blobs: in table order, each at the first 64-byte boundary after the
     * table or the previous blob, inside the file; the trailer follows the
     * last. One canonical layout leaves no unreferenced bytes to hide in. */
    prev_end = pos;
    for (uint32_t i = 0; i < nt; i++) {
        printable(pn, t[i].name);
        if (bl[i].off > limit || bl[i].len > limit - bl[i].off) {
            st = nn_fail(err, NN_ERR_FORMAT, "%s: truncated in tensor %u '%s'", what, (unsigned)i, pn);
            goto fail;
        }
        if (bl[i].off != align_up(prev_end)) {
            st = nn_fail(err, NN_ERR_FORMAT, "%s: tensor %u '%s': data offset %llu, the layout requires %llu",
                         what, (unsigned)i, pn, (unsigned long long)bl[i].off,
                         (unsigned long long)align_up(prev_end));
            goto fail;
        }
        prev_end = bl[i].off + bl[i].len;
        total += bl[i].len;
        for (uint32_t j = 0; j < i; j++) {
            /* Shortcut: quadratic, bounded by the 4096-tensor limit. */
            if (strcmp(t[j].name, t[i].name) == 0) {
                st = nn_fail(err, NN_ERR_FORMAT, "%s: duplicate tensor name '%s'", what, pn);
                goto fail;
            }
        }
    }
    if (total > NN_CKPT_MAX_DATA) {
        st = nn_fail(err, NN_ERR_FORMAT, "%s: tensor data exceeds the 8 GiB limit", what);
        goto fail;
    }
    if (len < HEADER_LEN + TRAILER_LEN || prev_end > limit) {
        st = nn_fail(err, NN_ERR_FORMAT, "%s: truncated: no room for the trailer", what);
        goto fail;
    }
    if (prev_end < limit) {
        st = nn_fail(err, NN_ERR_FORMAT, "%s: %llu unexpected bytes before the trailer",
                     what, (unsigned long long)(limit - prev_end));
        goto fail;
    }

    /* trailer */
    if (memcmp(b + len - 8, END_MAGIC, 8) != 0) {
        st = nn_fail(err, NN_ERR_FORMAT, "%s: bad end marker (truncated or overwritten file)", what);
        goto fail;
    }
    stored_crc = rd32(b + limit);
    crc = crc_update((uint32_t)crc32(0L, Z_NULL, 0), b, limit);
    if (stored_crc != crc) {
        st = nn_fail(err, NN_ERR_FORMAT, "%s: checksum mismatch (stored 0x%08x, computed 0x%08x)",
                     what, (unsigned)stored_crc, (unsigned)crc);
        goto fail;
    }
    if (memchr(b + HEADER_LEN, 0, (size_t)meta_len)) {
        st = nn_fail(err, NN_ERR_FORMAT, "%s: metadata contains a NUL byte", what);
        goto fail;
    }

    /* verified: now allocate what the file describes */
    meta = malloc((size_t)meta_len + 1);
    if (!meta) {
        st = nn_fail(err, NN_ERR_NOMEM, "%s: out of memory", what);
        goto fail;
    }
    memcpy(meta, b + HEADER_LEN, (size_t)meta_len);
    meta[meta_len] = 0;
    for (uint32_t i = 0; i < nt; i++) {
        size_t count = (size_t)(bl[i].len / dtype_size((uint32_t)t[i].dtype));
        if (count > SIZE_MAX / sizeof(nn_real) || !(t[i].data = malloc(count * sizeof(nn_real)))) {
            st = nn_fail(err, NN_ERR_NOMEM, "%s: out of memory for tensor %u", what, (unsigned)i);
            goto fail;
        }
        convert(t[i].data, b + bl[i].off, count, t[i].dtype);
    }
    free(bl);
    if (nt == 0) {
        free(t);
        t = NULL;
    }
    *meta_json = meta;
    *tensors = t;
    *n = (int)nt;
    return NN_OK;

fail:
    nn_ckpt_free(meta, t, (int)nt);
    free(bl);
    return st;
}

nn_status nn_ckpt_read(const char *path, char **meta_json, nn_ckpt_tensor **tensors,
                       int *n, char *err)
{
    struct stat sb;
    unsigned char *buf = NULL;
    size_t len, got = 0;
    nn_status st;
    int fd;

    if (!meta_json || !tensors || !n || !path)
        return nn_fail(err, NN_ERR_ARG, "checkpoint read: NULL argument");
    *meta_json = NULL;
    *tensors = NULL;
    *n = 0;
    /* O_NONBLOCK so that a FIFO at path cannot hang the open; it has no
     * effect on the regular files we accept. */
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return nn_fail(err, NN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (fstat(fd, &sb) != 0) {
        st = nn_fail(err, NN_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(sb.st_mode)) {
        st = nn_fail(err, NN_ERR_IO, "%s: not a regular file", path);
        goto fail;
    }
    if ((uint64_t)sb.st_size > MAX_FILE_LEN || (uint64_t)sb.st_size > SIZE_MAX) {
        st = nn_fail(err, NN_ERR_FORMAT, "%s: %lld bytes is larger than any valid checkpoint",
                     path, (long long)sb.st_size);
        goto fail;
    }
    len = (size_t)sb.st_size;
    buf = malloc(len ? len : 1);
    if (!buf) {
        st = nn_fail(err, NN_ERR_NOMEM, "%s: out of memory for %zu bytes", path, len);
        goto fail;
    }
    while (got < len) {
        ssize_t r = read(fd, buf + got, len - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            st = nn_fail(err, NN_ERR_IO, "%s: read failed: %s", path, strerror(errno));
            goto fail;
        }
        if (r == 0) {
            st = nn_fail(err, NN_ERR_IO, "%s: file shrank while being read", path);
            goto fail;
        }
        got += (size_t)r;
    }
    /* Read-only descriptor: a close error cannot lose data. */
    (void)close(fd);
    fd = -1;
    st = nn_ckpt_read_mem(buf, len, path, meta_json, tensors, n, err);
    free(buf);
    return st;

fail:
    if (fd >= 0)
        (void)close(fd);
    free(buf);
    return st;
}
