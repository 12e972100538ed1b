/* test_checkpoint.c: the checkpoint container (nn/checkpoint.h).
 * Round trips (F32/F64 on disk, bit-exact), every single-byte flip and every
 * truncation of a small file rejected without out-of-bounds reads (run it
 * under ASan), hostile headers, argument errors, and atomic replacement:
 * a failed write leaves the old file loadable and no temp file behind. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "nn/checkpoint.h"
#include "testcore.h"

static char dir[256];

static void path_in(char *out, size_t len, const char *name)
{
    snprintf(out, len, "%s/%s", dir, name);
}

static int file_exists(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0;
}

/* Number of entries in dir whose name contains ".tmp.". */
static int temp_files(void)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int k = 0;
    if (!d)
        return -1;
    while ((e = readdir(d)) != NULL)
        if (strstr(e->d_name, ".tmp."))
            k++;
    closedir(d);
    return k;
}

static unsigned char *slurp(const char *p, size_t *len)
{
    FILE *f = fopen(p, "rb");
    unsigned char *b;
    long sz;
    if (!f || fseek(f, 0, SEEK_END) != 0 || (sz = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        if (f)
            fclose(f);
        return NULL;
    }
    b = tu_xcalloc((size_t)sz + 1, 1);
    if (fread(b, 1, (size_t)sz, f) != (size_t)sz) {
        fclose(f);
        free(b);
        return NULL;
    }
    fclose(f);
    *len = (size_t)sz;
    return b;
}

static void set_tensor(nn_ckpt_tensor *t, const char *name, nn_dtype dtype, int ndim,
                       const int *shape, nn_real *data)
{
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = ndim;
    for (int d = 0; d < ndim; d++)
        t->shape[d] = shape[d];
    t->dtype = dtype;
    t->data = data;
}

static size_t count_of(const nn_ckpt_tensor *t)
{
    size_t c = 1;
    for (int d = 0; d < t->ndim; d++)
        c *= (size_t)t->shape[d];
    return c;
}

/* Same names, shapes, dtypes; data bit-identical (exact: nn_real is float
 * here, and float -> double -> float is exact too). */
static int same_tensors(const nn_ckpt_tensor *a, const nn_ckpt_tensor *b, int n)
{
    for (int i = 0; i < n; i++) {
        if (strcmp(a[i].name, b[i].name) != 0 || a[i].ndim != b[i].ndim || a[i].dtype != b[i].dtype)
            return 0;
        for (int d = 0; d < a[i].ndim; d++)
            if (a[i].shape[d] != b[i].shape[d])
                return 0;
        if (memcmp(a[i].data, b[i].data, count_of(&a[i]) * sizeof(nn_real)) != 0)
            return 0;
    }
    return 1;
}

/* ---- data ---- */

static nn_real w0[4 * 3 * 3 * 3], w1[4], w2[2 * 5];
static const int s0[] = { 4, 3, 3, 3 }, s1[] = { 4 }, s2[] = { 2, 5 };
static const char *META = "{\"model\":{\"layers\":[{\"type\":\"conv\",\"k\":3}]},"
                          "\"classes\":[\"T-shirt\",\"Trouser\",\"caf\xc3\xa9\"],\"epoch\":3}";

static void fill(void)
{
    tu_rng r;
    tu_rng_seed(&r, 42);
    for (size_t i = 0; i < sizeof w0 / sizeof w0[0]; i++)
        w0[i] = (nn_real)tu_rng_gauss(&r);
    for (size_t i = 0; i < sizeof w1 / sizeof w1[0]; i++)
        w1[i] = (nn_real)tu_rng_gauss(&r);
    for (size_t i = 0; i < sizeof w2 / sizeof w2[0]; i++)
        w2[i] = (nn_real)tu_rng_gauss(&r);
    /* values that a lossy or byte-order-confused writer would damage */
    w0[0] = -0.0f;
    w0[1] = FLT_MIN / 8;        /* subnormal */
    w0[2] = INFINITY;
    w0[3] = -INFINITY;
    w0[4] = FLT_MAX;
    w0[5] = NAN;
    w0[6] = 1.0f + FLT_EPSILON;
}

static void three(nn_ckpt_tensor *t, nn_dtype d0, nn_dtype d1, nn_dtype d2)
{
    set_tensor(&t[0], "param/conv0.weight", d0, 4, s0, w0);
    set_tensor(&t[1], "param/conv0.bias", d1, 1, s1, w1);
    set_tensor(&t[2], "optim/adam.m", d2, 2, s2, w2);
}

/* ---- tests ---- */

static void test_round_trip(void)
{
    static const nn_dtype combos[][3] = {
        { NN_F32, NN_F32, NN_F32 }, { NN_F64, NN_F64, NN_F64 }, { NN_F32, NN_F64, NN_F32 },
    };
    char p[512], err[NN_ERRLEN];
    path_in(p, sizeof p, "rt.ckpt");
    for (size_t c = 0; c < sizeof combos / sizeof combos[0]; c++) {
        nn_ckpt_tensor in[3], *out = NULL, *out2 = NULL;
        char *meta = NULL, *meta2 = NULL;
        int n = -1, n2 = -1;
        unsigned char *bytes;
        size_t len = 0;

        three(in, combos[c][0], combos[c][1], combos[c][2]);
        err[0] = 0;
        CHECK(nn_ckpt_write(p, META, in, 3, err) == NN_OK, "write combo %zu: %s", c, err);
        CHECK(temp_files() == 0, "temp file left after a successful write");
        if (!CHECK(nn_ckpt_read(p, &meta, &out, &n, err) == NN_OK, "read combo %zu: %s", c, err))
            continue;
        CHECK(n == 3, "n = %d", n);
        CHECK(strcmp(meta, META) == 0, "metadata differs: %s", meta);
        CHECK(n == 3 && same_tensors(in, out, 3), "combo %zu: tensors differ", c);
        CHECK(nn_ckpt_find(out, n, "optim/adam.m") == &out[2], "find");
        CHECK(nn_ckpt_find(out, n, "optim/adam") == NULL, "find of a prefix");
        CHECK(nn_ckpt_find(NULL, 0, "x") == NULL && nn_ckpt_find(out, n, NULL) == NULL, "find NULL");

        bytes = slurp(p, &len);
        if (CHECK(bytes != NULL, "slurp")) {
            CHECK(memcmp(bytes, "CNVNETD", 8) == 0 && memcmp(bytes + len - 8, "CNVNEND", 8) == 0, "magics");
            CHECK(nn_ckpt_read_mem(bytes, len, "upload", &meta2, &out2, &n2, err) == NN_OK, "read_mem: %s", err);
            CHECK(n2 == 3 && strcmp(meta2, META) == 0 && same_tensors(out, out2, 3), "read_mem differs");
            nn_ckpt_free(meta2, out2, n2);
            free(bytes);
        }
        nn_ckpt_free(meta, out, n);
    }

    /* no tensors, empty metadata */
    {
        char *meta = NULL;
        nn_ckpt_tensor *out = (nn_ckpt_tensor *)1;
        int n = -1;
        CHECK(nn_ckpt_write(p, "", NULL, 0, err) == NN_OK, "empty write: %s", err);
        CHECK(nn_ckpt_read(p, &meta, &out, &n, err) == NN_OK, "empty read: %s", err);
        CHECK(meta && meta[0] == 0 && out == NULL && n == 0, "empty round trip");
        nn_ckpt_free(meta, out, n);
    }
    nn_ckpt_free(NULL, NULL, 0);
    unlink(p);
}

/* A small file; returns its bytes (malloc'd) and length. */
static unsigned char *small_file(size_t *len)
{
    static nn_real a[6] = { 1, 2, 3, 4, 5, 6 }, b[1] = { -1 }, c[4] = { 0.5f, 0.25f, 0.125f, 8 };
    static const int sa[] = { 2, 3 }, sb[] = { 1 }, sc[] = { 2, 1, 1, 2 };
    nn_ckpt_tensor t[3];
    char p[512], err[NN_ERRLEN];
    unsigned char *bytes;

    set_tensor(&t[0], "param/a", NN_F32, 2, sa, a);
    set_tensor(&t[1], "param/b", NN_F64, 1, sb, b);
    set_tensor(&t[2], "param/fc.weight", NN_F32, 4, sc, c);
    path_in(p, sizeof p, "small.ckpt");
    CHECK(nn_ckpt_write(p, "{\"k\":1}", t, 3, err) == NN_OK, "small write: %s", err);
    bytes = slurp(p, len);
    unlink(p);
    return bytes;
}

/* read_mem over an exact-size heap copy, so ASan sees any read past it. */
static nn_status read_copy(const unsigned char *b, size_t len, char *err)
{
    unsigned char *copy = malloc(len ? len : 1);
    char *meta = NULL;
    nn_ckpt_tensor *t = NULL;
    int n = 0;
    nn_status st;
    if (!copy)
        abort();
    memcpy(copy, b, len);
    st = nn_ckpt_read_mem(copy, len, "buf", &meta, &t, &n, err);
    if (st == NN_OK)
        nn_ckpt_free(meta, t, n);
    else
        CHECK(meta == NULL && t == NULL && n == 0, "outputs not reset on failure");
    free(copy);
    return st;
}

static void test_corruption(void)
{
    size_t len = 0;
    unsigned char *b = small_file(&len);
    char err[NN_ERRLEN], p[512];
    int accepted = 0, wrong_code = 0;

    if (!CHECK(b != NULL, "small file"))
        return;
    CHECK(read_copy(b, len, err) == NN_OK, "pristine small file: %s", err);
    printf("  small file: %zu bytes\n", len);

    /* every single-byte change, two patterns per position */
    for (size_t i = 0; i < len; i++) {
        static const unsigned char pats[] = { 0xff, 0x01 };
        for (size_t k = 0; k < sizeof pats; k++) {
            nn_status st;
            b[i] ^= pats[k];
            st = read_copy(b, len, NULL);
            b[i] ^= pats[k];
            if (st == NN_OK) {
                accepted++;
                printf("  accepted flip at byte %zu ^ 0x%02x\n", i, pats[k]);
            } else if (st != NN_ERR_FORMAT) {
                wrong_code++;
            }
        }
    }
    CHECK(accepted == 0, "%d single-byte changes accepted", accepted);
    CHECK(wrong_code == 0, "%d changes gave a code other than NN_ERR_FORMAT", wrong_code);

    /* every truncation */
    accepted = 0;
    for (size_t l = 0; l < len; l++) {
        nn_status st = read_copy(b, l, NULL);
        if (st != NN_ERR_FORMAT && st != NN_ERR_IO)
            accepted++;
    }
    CHECK(accepted == 0, "%d truncations not rejected", accepted);

    /* trailing garbage */
    {
        unsigned char *longer = tu_xcalloc(len + 1, 1);
        memcpy(longer, b, len);
        CHECK(read_copy(longer, len + 1, NULL) == NN_ERR_FORMAT, "appended byte accepted");
        free(longer);
    }

    /* truncations through the file reader too, and the messages */
    path_in(p, sizeof p, "trunc.ckpt");
    for (size_t l = 0; l < len; l += (l < 64 ? 1 : 7)) {
        FILE *f = fopen(p, "wb");
        char *meta = NULL;
        nn_ckpt_tensor *t = NULL;
        int n = 0;
        nn_status st;
        if (!CHECK(f && fwrite(b, 1, l, f) == l && fclose(f) == 0, "write truncated file"))
            break;
        st = nn_ckpt_read(p, &meta, &t, &n, err);
        CHECK(st == NN_ERR_FORMAT && strstr(err, p), "file truncated to %zu: %d %s", l, (int)st, err);
    }
    {
        /* the last tensor's data ends 12 bytes before the end */
        FILE *f = fopen(p, "wb");
        char *meta = NULL;
        nn_ckpt_tensor *t = NULL;
        int n = 0;
        CHECK(f && fwrite(b, 1, len - 14, f) == len - 14 && fclose(f) == 0, "write");
        CHECK(nn_ckpt_read(p, &meta, &t, &n, err) == NN_ERR_FORMAT, "truncated in data");
        CHECK(strstr(err, "truncated in tensor 2 'param/fc.weight'") != NULL, "message: %s", err);
    }
    unlink(p);

    b[33] ^= 0x20;  /* a metadata byte */
    CHECK(read_copy(b, len, err) == NN_ERR_FORMAT && strstr(err, "checksum mismatch"), "message: %s", err);
    b[33] ^= 0x20;
    b[len - 3] ^= 1;  /* the end magic */
    CHECK(read_copy(b, len, err) == NN_ERR_FORMAT && strstr(err, "end marker"), "message: %s", err);
    b[len - 3] ^= 1;
    b[8] = 7;         /* version */
    CHECK(read_copy(b, len, err) == NN_ERR_FORMAT && strstr(err, "unsupported version 7"), "message: %s", err);
    b[8] = 1;
    free(b);
}

/* Headers that claim absurd sizes must be refused before any allocation. */
static void test_hostile(void)
{
    unsigned char h[64];
    char err[NN_ERRLEN];
    memset(h, 0, sizeof h);
    memcpy(h, "CNVNETD", 8);
    h[8] = 1;
    h[23] = 0x10;                  /* meta_len = 2^60 */
    CHECK(read_copy(h, sizeof h, err) == NN_ERR_FORMAT, "huge meta_len: %s", err);
    memset(h + 16, 0, 8);
    h[16] = 20;                    /* meta_len = 20, fits */
    h[24] = 0x00;
    h[25] = 0x10;                  /* n_tensors = 4096 */
    CHECK(read_copy(h, sizeof h, err) == NN_ERR_FORMAT && strstr(err, "tensor table"), "4096 tensors: %s", err);
    h[26] = 0x10;                  /* n_tensors > limit */
    CHECK(read_copy(h, sizeof h, err) == NN_ERR_FORMAT, "too many tensors: %s", err);
    CHECK(nn_ckpt_read_mem(NULL, 0, NULL, &(char *){ 0 }, &(nn_ckpt_tensor *){ 0 }, &(int){ 0 }, err) == NN_ERR_FORMAT,
          "empty buffer");
}

static void test_write_args_and_atomicity(void)
{
    char p[512], q[512], sub[512], err[NN_ERRLEN];
    nn_ckpt_tensor good[3], bad[3];
    char *meta = NULL;
    nn_ckpt_tensor *out = NULL;
    int n = 0;

    path_in(p, sizeof p, "a.ckpt");
    path_in(q, sizeof q, "never.ckpt");
    three(good, NN_F32, NN_F32, NN_F64);
    CHECK(nn_ckpt_write(p, "{\"v\":\"A\"}", good, 3, err) == NN_OK, "write A: %s", err);

    /* argument errors: NN_ERR_ARG, nothing created, A intact */
#define BAD(label, stmt)                                                              \
    do {                                                                              \
        memcpy(bad, good, sizeof bad);                                                \
        stmt;                                                                         \
        err[0] = 0;                                                                   \
        CHECK(nn_ckpt_write(p, "{\"v\":\"B\"}", bad, 3, err) == NN_ERR_ARG, "%s accepted", label); \
        CHECK(nn_ckpt_write(q, "{}", bad, 3, NULL) == NN_ERR_ARG, "%s accepted (err NULL)", label); \
        CHECK(err[0] != 0, "%s: no message", label);                                  \
    } while (0)
    BAD("ndim 0", bad[1].ndim = 0);
    BAD("ndim 5", bad[1].ndim = 5);
    BAD("dim 0", bad[0].shape[2] = 0);
    BAD("negative dim", bad[0].shape[0] = -4);
    BAD("NULL data", bad[2].data = NULL);
    BAD("dtype 3", bad[2].dtype = (nn_dtype)3);
    BAD("empty name", bad[0].name[0] = 0);
    BAD("duplicate name", strcpy(bad[2].name, bad[0].name));
    BAD("name of 96 bytes", memset(bad[1].name, 'x', sizeof bad[1].name));
    BAD("huge tensor", (bad[0].shape[0] = 1 << 30, bad[0].shape[1] = 1 << 30));
#undef BAD
    CHECK(strstr(err, "8 GiB") != NULL, "huge tensor message: %s", err);
    CHECK(nn_ckpt_write(p, NULL, good, 3, err) == NN_ERR_ARG, "NULL meta");
    CHECK(nn_ckpt_write(p, "{}", good, -1, err) == NN_ERR_ARG, "n = -1");
    CHECK(nn_ckpt_write(p, "{}", NULL, 2, err) == NN_ERR_ARG, "NULL tensors");
    CHECK(nn_ckpt_write(NULL, "{}", good, 3, err) == NN_ERR_ARG, "NULL path");

    /* a name of 95 bytes is fine */
    memcpy(bad, good, sizeof bad);
    memset(bad[1].name, 'y', 95);
    bad[1].name[95] = 0;
    CHECK(nn_ckpt_write(q, "{}", bad, 3, err) == NN_OK, "95-byte name: %s", err);
    if (CHECK(nn_ckpt_read(q, &meta, &out, &n, err) == NN_OK, "read 95-byte name: %s", err)) {
        CHECK(nn_ckpt_find(out, n, bad[1].name) != NULL, "95-byte name lost");
        nn_ckpt_free(meta, out, n);
    }
    unlink(q);

    /* I/O failures: a missing directory, and a directory where the file goes */
    snprintf(sub, sizeof sub, "%s/no/such/dir/x.ckpt", dir);
    CHECK(nn_ckpt_write(sub, "{}", good, 3, err) == NN_ERR_IO, "missing directory: %s", err);
    path_in(sub, sizeof sub, "isdir.ckpt");
    CHECK(mkdir(sub, 0700) == 0, "mkdir");
    CHECK(nn_ckpt_write(sub, "{}", good, 3, err) == NN_ERR_IO, "rename over a directory: %s", err);
    CHECK(nn_ckpt_read(sub, &meta, &out, &n, err) == NN_ERR_IO, "read of a directory");
    rmdir(sub);

    CHECK(!file_exists(q), "a rejected write created a file");
    CHECK(temp_files() == 0, "temp file left behind");
    meta = NULL;
    if (CHECK(nn_ckpt_read(p, &meta, &out, &n, err) == NN_OK, "A after failed writes: %s", err)) {
        CHECK(strcmp(meta, "{\"v\":\"A\"}") == 0 && n == 3 && same_tensors(good, out, 3), "A changed");
        nn_ckpt_free(meta, out, n);
    }

    /* a successful write replaces A */
    CHECK(nn_ckpt_write(p, "{\"v\":\"B\"}", good, 1, err) == NN_OK, "write B: %s", err);
    if (CHECK(nn_ckpt_read(p, &meta, &out, &n, err) == NN_OK, "read B: %s", err)) {
        CHECK(strcmp(meta, "{\"v\":\"B\"}") == 0 && n == 1, "B not in place");
        nn_ckpt_free(meta, out, n);
    }
    CHECK(temp_files() == 0, "temp file left behind");
    unlink(p);

    /* missing file */
    CHECK(nn_ckpt_read(q, &meta, &out, &n, err) == NN_ERR_IO && strstr(err, q), "missing file: %s", err);
    CHECK(nn_ckpt_read(q, NULL, &out, &n, err) == NN_ERR_ARG, "NULL output");
}

int main(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/nn_ckpt_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    fill();
    test_round_trip();
    test_corruption();
    test_hostile();
    test_write_args_and_atomicity();
    if (rmdir(dir) != 0)
        CHECK(0, "test directory %s not empty at the end", dir);
    return tu_finish("nn_checkpoint");
}
