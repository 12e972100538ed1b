/* test_data.c: data sets (float library `nn`). Small IDX fixtures, plain and
 * gzip, and CIFAR-style batches are written into a fresh temporary folder at
 * run time and loaded back pixel by pixel; each kind of corrupt file must
 * fail with a status and its file name in the message. Then split
 * arithmetic, the channel mean, gathering with and without augmentation,
 * and the installed Fashion-MNIST when there is one. */
#define _POSIX_C_SOURCE 200809L /* mkdtemp, unlink, rmdir */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>
#include "nn/data.h"
#include "testcore.h"

/* ---- the temporary folder ---------------------------------------------- */

static char tmpdir[64];
static char made[64][128]; /* files to remove at the end */
static int nmade;

/* tmpdir/name, remembered for clean-up. Returns a static slot. */
static const char *tpath(const char *name)
{
    for (int i = 0; i < nmade; i++)
        if (!strcmp(strrchr(made[i], '/') + 1, name))
            return made[i];
    if (nmade == 64) {
        fprintf(stderr, "test_data: too many fixture files\n");
        exit(1);
    }
    snprintf(made[nmade], sizeof made[nmade], "%s/%s", tmpdir, name);
    return made[nmade++];
}

static void write_file(const char *path, const void *buf, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(buf, 1, n, f) != n || fclose(f) != 0) {
        fprintf(stderr, "test_data: cannot write %s\n", path);
        exit(1);
    }
}

static void write_gz(const char *path, const void *buf, size_t n)
{
    gzFile g = gzopen(path, "wb");
    if (!g || gzwrite(g, buf, (unsigned)n) != (int)n || gzclose(g) != Z_OK) {
        fprintf(stderr, "test_data: cannot write %s\n", path);
        exit(1);
    }
}

static unsigned char *read_all(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    unsigned char *buf;
    long sz;
    if (!f || fseek(f, 0, SEEK_END) || (sz = ftell(f)) < 0 || fseek(f, 0, SEEK_SET)) {
        fprintf(stderr, "test_data: cannot read %s\n", path);
        exit(1);
    }
    buf = tu_xcalloc((size_t)sz + 1, 1);
    *n = fread(buf, 1, (size_t)sz, f);
    fclose(f);
    return buf;
}

static int contains(const char *msg, const char *word)
{
    return strstr(msg, word) != NULL;
}

/* ---- IDX fixtures ------------------------------------------------------- */

#define IN 7
#define IH 5
#define IW 4

static unsigned char idx_pix[IN * IH * IW], idx_lab[IN];

static void put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* An IDX images file in buf (16 + n*h*w bytes; the pixels from idx_pix). */
static size_t make_images(unsigned char *buf, uint32_t magic, uint32_t n, uint32_t h, uint32_t w)
{
    put32(buf, magic);
    put32(buf + 4, n);
    put32(buf + 8, h);
    put32(buf + 12, w);
    memcpy(buf + 16, idx_pix, (size_t)n * h * w);
    return 16 + (size_t)n * h * w;
}

static size_t make_labels(unsigned char *buf, uint32_t n)
{
    put32(buf, 0x00000801);
    put32(buf + 4, n);
    memcpy(buf + 8, idx_lab, n);
    return 8 + (size_t)n;
}

static void check_idx_content(const nn_dataset *d, const char *what)
{
    if (!CHECK(d && d->n == IN && d->c == 1 && d->h == IH && d->w == IW,
               "%s: shape", what))
        return;
    CHECK(d->num_classes == 6, "%s: num_classes %d, want 6", what, d->num_classes);
    CHECK(!memcmp(d->images, idx_pix, sizeof idx_pix), "%s: pixels differ", what);
    int ok = 1;
    for (int i = 0; i < IN; i++)
        ok &= d->labels[i] == idx_lab[i];
    CHECK(ok, "%s: labels differ", what);
    CHECK(!strcmp(d->class_names[0], "0") && !strcmp(d->class_names[5], "5"),
          "%s: default class names", what);
}

/* Expects loading (img, lab) to fail with `want` and a message naming
 * `file` (a base name) and containing `word` (NULL: anything). */
static void expect_idx_fail(const char *img, const char *lab, nn_status want,
                            const char *file, const char *word, const char *what)
{
    char err[NN_ERRLEN] = "";
    nn_dataset *d = (nn_dataset *)&d; /* must come back NULL */
    nn_status s = nn_dataset_load_idx(&d, tpath(img), tpath(lab), err);
    CHECK(s == want, "%s: status %s, want %s (%s)", what, nn_status_str(s),
          nn_status_str(want), err);
    CHECK(d == NULL, "%s: output not NULL", what);
    CHECK(contains(err, file), "%s: message does not name %s: %s", what, file, err);
    if (word)
        CHECK(contains(err, word), "%s: message lacks \"%s\": %s", what, word, err);
    /* err = NULL must be safe too */
    CHECK(nn_dataset_load_idx(&d, tpath(img), tpath(lab), NULL) == want, "%s: err NULL", what);
}

static void test_idx(tu_rng *r)
{
    unsigned char buf[16 + IN * IH * IW + 64];
    char err[NN_ERRLEN] = "";
    nn_dataset *d = NULL;
    size_t n;

    for (size_t i = 0; i < sizeof idx_pix; i++)
        idx_pix[i] = (unsigned char)tu_rng_int(r, 256);
    idx_pix[0] = 0;
    idx_pix[1] = 255;
    for (int i = 0; i < IN; i++)
        idx_lab[i] = (unsigned char)tu_rng_int(r, 5);
    idx_lab[3] = 5; /* max label 5 -> 6 classes */

    n = make_images(buf, 0x00000803, IN, IH, IW);
    write_file(tpath("img"), buf, n);
    write_gz(tpath("img.gz"), buf, n);
    write_file(tpath("img-short"), buf, n - 10);
    write_file(tpath("img-long"), buf, n + 1); /* buf has room: a junk byte */
    write_file(tpath("img-hdr"), buf, 10);
    write_file(tpath("empty"), buf, 0);
    {
        unsigned char *gz = read_all(tpath("img.gz"), &n);
        write_file(tpath("img-cut.gz"), gz, n / 2);
        write_file(tpath("img-trailer.gz"), gz, n - 4); /* data whole, ISIZE cut */
        gz[n - 8] ^= 0xff;                              /* CRC broken */
        write_file(tpath("img-crc.gz"), gz, n);
        free(gz);
    }
    n = make_images(buf, 0x00000804, IN, IH, IW);
    write_file(tpath("img-magic"), buf, n);
    n = make_images(buf, 0x00000803, IN, 0, IW);
    write_file(tpath("img-dim0"), buf, n);
    n = make_labels(buf, IN);
    write_file(tpath("lab"), buf, n);
    write_gz(tpath("lab.gz"), buf, n);
    n = make_labels(buf, IN - 1);
    write_file(tpath("lab-6"), buf, n);

    CHECK(nn_dataset_load_idx(&d, tpath("img"), tpath("lab"), err) == NN_OK, "plain: %s", err);
    check_idx_content(d, "plain");
    CHECK(d && !strcmp(d->name, "img"), "plain: name \"%s\"", d ? d->name : "");
    nn_dataset_free(d);
    CHECK(nn_dataset_load_idx(&d, tpath("img.gz"), tpath("lab.gz"), err) == NN_OK, "gzip: %s", err);
    check_idx_content(d, "gzip");
    nn_dataset_free(d);
    /* the gzip test is by magic, not name: a gzip file without .gz */
    rename(tpath("lab.gz"), tpath("lab-gz-noext"));
    CHECK(nn_dataset_load_idx(&d, tpath("img"), tpath("lab-gz-noext"), err) == NN_OK,
          "gzip without .gz: %s", err);
    check_idx_content(d, "gzip without .gz");
    nn_dataset_free(d);

    expect_idx_fail("img-magic", "lab", NN_ERR_FORMAT, "img-magic", "magic", "bad magic");
    expect_idx_fail("lab", "lab", NN_ERR_FORMAT, "lab", "magic", "labels as images");
    expect_idx_fail("img", "img", NN_ERR_FORMAT, "img", "magic", "images as labels");
    expect_idx_fail("img-short", "lab", NN_ERR_FORMAT, "img-short", "truncated", "truncated");
    expect_idx_fail("img-long", "lab", NN_ERR_FORMAT, "img-long", "size", "trailing byte");
    expect_idx_fail("img-hdr", "lab", NN_ERR_FORMAT, "img-hdr", "truncated", "cut header");
    expect_idx_fail("empty", "lab", NN_ERR_FORMAT, "empty", "truncated", "empty file");
    expect_idx_fail("img-cut.gz", "lab", NN_ERR_FORMAT, "img-cut.gz", "truncated", "cut gzip");
    expect_idx_fail("img-cut.gz", "lab", NN_ERR_FORMAT, "img-cut.gz", "gzip", "cut gzip says gzip");
    expect_idx_fail("img-trailer.gz", "lab", NN_ERR_FORMAT, "img-trailer.gz", "trailer",
                    "gzip trailer cut");
    expect_idx_fail("img-crc.gz", "lab", NN_ERR_FORMAT, "img-crc.gz", "corrupt", "gzip CRC");
    expect_idx_fail("img", "lab-6", NN_ERR_FORMAT, "lab-6", NULL, "count mismatch");
    expect_idx_fail("img-dim0", "lab", NN_ERR_FORMAT, "img-dim0", "dimension", "dim zero");
    expect_idx_fail("img", "nonexistent", NN_ERR_IO, "nonexistent", NULL, "missing file");
    {
        /* the message format the daemon shows users */
        nn_dataset_load_idx(&d, tpath("img-short"), tpath("lab"), err);
        char want[NN_ERRLEN];
        snprintf(want, sizeof want, "%s: truncated: expected %d bytes, got %d",
                 tpath("img-short"), 16 + IN * IH * IW, 16 + IN * IH * IW - 10);
        CHECK(!strcmp(err, want), "message \"%s\", want \"%s\"", err, want);
    }
    {
        /* a Fashion-MNIST-sized header over 1000 bytes of gzip data: the
         * message counts uncompressed bytes */
        unsigned char *big = tu_xcalloc(60008, 1);
        put32(big, 0x00000803);
        put32(big + 4, 60000);
        put32(big + 8, 28);
        put32(big + 12, 28);
        write_gz(tpath("train-images-idx3-ubyte.gz"), big, 1000);
        put32(big, 0x00000801);
        put32(big + 4, 60000);
        write_gz(tpath("train-labels-idx1-ubyte.gz"), big, 60008);
        free(big);
        expect_idx_fail("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                        NN_ERR_FORMAT, "train-images-idx3-ubyte.gz",
                        "truncated: expected 47040016 bytes, got 1000", "big truncated gzip");
    }
    CHECK(nn_dataset_load_idx(NULL, tpath("img"), tpath("lab"), err) == NN_ERR_ARG, "out NULL");
    CHECK(nn_dataset_load_idx(&d, NULL, tpath("lab"), err) == NN_ERR_ARG && !d, "path NULL");
}

/* ---- CIFAR fixtures ----------------------------------------------------- */

#define CREC 3073

/* k records with labels (i + seed) % 10 and pixels from the rng. */
static unsigned char *make_batch(tu_rng *r, int k, int seed)
{
    unsigned char *b = tu_xcalloc((size_t)k * CREC + 1, 1);
    for (int i = 0; i < k; i++) {
        b[(size_t)i * CREC] = (unsigned char)((i + seed) % 10);
        for (int j = 1; j < CREC; j++)
            b[(size_t)i * CREC + j] = (unsigned char)tu_rng_int(r, 256);
    }
    return b;
}

static int same_records(const nn_dataset *d, int first, const unsigned char *b, int k)
{
    for (int i = 0; i < k; i++) {
        if (d->labels[first + i] != b[(size_t)i * CREC])
            return 0;
        if (memcmp(d->images + (size_t)(first + i) * 3072, b + (size_t)i * CREC + 1, 3072))
            return 0;
    }
    return 1;
}

static void expect_cifar_fail(const char *dir, nn_status want, const char *file,
                              const char *what)
{
    char err[NN_ERRLEN] = "";
    nn_dataset *tr = NULL, *te = NULL;
    nn_status s = nn_dataset_load_cifar10(&tr, &te, dir, err);
    CHECK(s == want, "%s: status %s, want %s (%s)", what, nn_status_str(s),
          nn_status_str(want), err);
    CHECK(!tr && !te, "%s: outputs not NULL", what);
    CHECK(contains(err, file), "%s: message does not name %s: %s", what, file, err);
}

static void test_cifar(tu_rng *r)
{
    char err[NN_ERRLEN] = "";
    nn_dataset *tr = NULL, *te = NULL;
    unsigned char *b1 = make_batch(r, 3, 0), *b2 = make_batch(r, 2, 7), *bt = make_batch(r, 2, 4);

    write_file(tpath("data_batch_1.bin"), b1, 3 * CREC);
    write_file(tpath("data_batch_2.bin"), b2, 2 * CREC);
    write_file(tpath("data_batch_4.bin"), b2, 2 * CREC); /* after a gap: ignored */
    write_file(tpath("test_batch.bin"), bt, 2 * CREC);

    /* no meta file: CIFAR-10's own names */
    CHECK(nn_dataset_load_cifar10(&tr, &te, tmpdir, err) == NN_OK, "cifar: %s", err);
    if (CHECK(tr && te, "cifar: outputs")) {
        CHECK(tr->n == 5 && tr->c == 3 && tr->h == 32 && tr->w == 32 && tr->num_classes == 10,
              "cifar train shape n=%d c=%d h=%d w=%d k=%d", tr->n, tr->c, tr->h, tr->w,
              tr->num_classes);
        CHECK(te->n == 2, "cifar test n=%d", te->n);
        CHECK(same_records(tr, 0, b1, 3) && same_records(tr, 3, b2, 2), "cifar train content");
        CHECK(same_records(te, 0, bt, 2), "cifar test content");
        CHECK(!strcmp(tr->class_names[0], "airplane") && !strcmp(tr->class_names[9], "truck"),
              "cifar default names");
        CHECK(!strcmp(tr->name, "cifar10/train") && !strcmp(te->name, "cifar10/test"), "names");
    }
    nn_dataset_free(tr);
    nn_dataset_free(te);

    /* a meta file with CRLF, blanks around names and blank lines */
    const char *meta = "c0\r\n  c1\t\n\nc2\nc3\nc4\nc5\nc6\nc7\nc8\nc9 x\n\n";
    write_file(tpath("batches.meta.txt"), meta, strlen(meta));
    CHECK(nn_dataset_load_cifar10(&tr, NULL, tmpdir, err) == NN_OK, "cifar meta: %s", err);
    if (CHECK(tr != NULL, "cifar meta: output"))
        CHECK(!strcmp(tr->class_names[0], "c0") && !strcmp(tr->class_names[1], "c1")
                  && !strcmp(tr->class_names[2], "c2") && !strcmp(tr->class_names[9], "c9 x"),
              "cifar meta names: %s %s %s %s", tr->class_names[0], tr->class_names[1],
              tr->class_names[2], tr->class_names[9]);
    nn_dataset_free(tr);
    tr = NULL;
    CHECK(nn_dataset_load_cifar10(NULL, &te, tmpdir, err) == NN_OK && te && te->n == 2,
          "cifar test only: %s", err);
    nn_dataset_free(te);
    te = NULL;

    write_file(tpath("batches.meta.txt"), "a\nb\n", 4);
    expect_cifar_fail(tmpdir, NN_ERR_FORMAT, "batches.meta.txt", "short meta");
    unlink(tpath("batches.meta.txt"));

    write_file(tpath("data_batch_2.bin"), b2, 2 * CREC - 1);
    expect_cifar_fail(tmpdir, NN_ERR_FORMAT, "data_batch_2.bin", "cifar wrong size");
    write_file(tpath("data_batch_2.bin"), b2, 2 * CREC);
    write_file(tpath("test_batch.bin"), bt, 0);
    expect_cifar_fail(tmpdir, NN_ERR_FORMAT, "test_batch.bin", "cifar empty test batch");
    bt[CREC] = 10;
    write_file(tpath("test_batch.bin"), bt, 2 * CREC);
    expect_cifar_fail(tmpdir, NN_ERR_FORMAT, "test_batch.bin", "cifar label 10");
    unlink(tpath("test_batch.bin"));
    expect_cifar_fail(tmpdir, NN_ERR_IO, "test_batch.bin", "cifar no test batch");
    unlink(tpath("data_batch_1.bin"));
    CHECK(nn_dataset_load_cifar10(&tr, NULL, tmpdir, err) == NN_ERR_IO && !tr
              && contains(err, "data_batch_1.bin"), "cifar no batch 1: %s", err);
    CHECK(nn_dataset_load_cifar10(&tr, &te, NULL, err) == NN_ERR_ARG, "cifar dir NULL");
    free(b1);
    free(b2);
    free(bt);
}

/* ---- splits, mean, gather ----------------------------------------------- */

/* A dataset with random pixels and labels i % k. */
static nn_dataset *make_set(tu_rng *r, int n, int c, int h, int w, int k)
{
    char err[NN_ERRLEN] = "";
    nn_dataset *d = NULL;
    if (nn_dataset_create(&d, n, c, h, w, k, err) != NN_OK) {
        fprintf(stderr, "test_data: create: %s\n", err);
        exit(1);
    }
    for (size_t i = 0; i < (size_t)n * c * h * w; i++)
        d->images[i] = (uint8_t)tu_rng_int(r, 256);
    for (int i = 0; i < n; i++)
        d->labels[i] = (uint16_t)(i % k);
    return d;
}

static void test_create(void)
{
    char err[NN_ERRLEN] = "";
    nn_dataset *d = (nn_dataset *)&d;

    CHECK(nn_dataset_create(&d, 3, 2, 4, 5, 12, err) == NN_OK && d, "create: %s", err);
    if (d) {
        int zero = 1;
        for (int i = 0; i < 3 * 2 * 4 * 5; i++)
            zero &= d->images[i] == 0;
        CHECK(zero && d->labels[2] == 0 && d->name[0] == 0, "create: zeroed");
        CHECK(!strcmp(d->class_names[11], "11"), "create: default names");
        CHECK(nn_dataset_set_class_name(d, 11, "eleven", err) == NN_OK
                  && !strcmp(d->class_names[11], "eleven"), "set_class_name");
        CHECK(nn_dataset_set_class_name(d, 12, "x", err) == NN_ERR_ARG, "name index");
        CHECK(nn_dataset_set_class_name(d, 0, "", err) == NN_ERR_ARG, "empty name");
        CHECK(nn_dataset_set_class_name(d, 0, NULL, err) == NN_ERR_ARG, "NULL name");
        nn_dataset_free(d);
    }
    d = (nn_dataset *)&d;
    CHECK(nn_dataset_create(&d, 0, 1, 1, 1, 2, err) == NN_ERR_ARG && !d, "n 0");
    CHECK(nn_dataset_create(&d, 1, 5, 1, 1, 2, err) == NN_ERR_ARG, "c 5");
    CHECK(nn_dataset_create(&d, 1, 1, 1, 1, 0, err) == NN_ERR_ARG, "0 classes");
    CHECK(nn_dataset_create(&d, 1, 1, 1, 1, 65537, err) == NN_ERR_ARG, "65537 classes");
    CHECK(nn_dataset_create(&d, 1 << 20, 4, 1 << 10, 1 << 10, 2, err) == NN_ERR_ARG
              && contains(err, "limit"), "size cap: %s", err);
    CHECK(nn_dataset_create(&d, 2147483647, 4, 2147483647, 2147483647, 2, err) == NN_ERR_ARG,
          "overflow");
    nn_dataset_free(NULL);
}

static void test_split(tu_rng *r)
{
    char err[NN_ERRLEN] = "";
    nn_dataset *d = make_set(r, 150, 1, 2, 2, 3);
    nn_split tr, va;

    CHECK(nn_dataset_split(&tr, &va, d, 0.2, 100, err) == NN_OK, "split: %s", err);
    CHECK(tr.data == d && tr.begin == 0 && tr.count == 80, "train [%d,+%d)", tr.begin, tr.count);
    CHECK(va.data == d && va.begin == 80 && va.count == 20, "val [%d,+%d)", va.begin, va.count);
    CHECK(nn_dataset_split(&tr, &va, d, 0.2, 0, err) == NN_OK && tr.count == 120
              && va.begin == 120 && va.count == 30, "split all");
    CHECK(nn_dataset_split(&tr, &va, d, 0.2, 1000, err) == NN_OK && tr.count == 120
              && va.count == 30, "limit above n");
    CHECK(nn_dataset_split(&tr, &va, d, 0.0, 10, err) == NN_OK && tr.count == 10
              && va.count == 0, "val 0");
    CHECK(nn_dataset_split(&tr, NULL, d, 0.0, 10, err) == NN_OK && tr.count == 10, "val NULL");
    CHECK(nn_dataset_split(&tr, &va, d, 0.25, 10, err) == NN_OK && tr.count == 7
              && va.count == 3, "round(2.5) = 3");
    CHECK(nn_dataset_split(&tr, &va, d, 0.001, 100, err) == NN_ERR_ARG, "empty val: %s", err);
    CHECK(nn_dataset_split(&tr, &va, d, 0.5, 1, err) == NN_ERR_ARG, "empty train: %s", err);
    CHECK(nn_dataset_split(&tr, &va, d, 1.0, 0, err) == NN_ERR_ARG, "val 1");
    CHECK(nn_dataset_split(&tr, &va, d, -0.1, 0, err) == NN_ERR_ARG, "val < 0");
    CHECK(nn_dataset_split(&tr, &va, d, NAN, 0, err) == NN_ERR_ARG, "val NaN");
    CHECK(nn_dataset_split(&tr, &va, d, 0.1, -1, err) == NN_ERR_ARG, "limit < 0");
    CHECK(nn_dataset_split(&tr, NULL, d, 0.1, 0, err) == NN_ERR_ARG, "val NULL, fraction > 0");
    tr = nn_dataset_all(d);
    CHECK(tr.data == d && tr.begin == 0 && tr.count == 150, "all");
    nn_dataset_free(d);
}

static void test_mean(tu_rng *r)
{
    char err[NN_ERRLEN] = "";
    nn_dataset *d = make_set(r, 20, 3, 4, 5, 2);
    nn_split s = { d, 5, 9 };
    float mean[3];
    double worst = 0;

    CHECK(nn_dataset_channel_mean(mean, &s, err) == NN_OK, "mean: %s", err);
    for (int ch = 0; ch < 3; ch++) {
        double sum = 0;
        for (int i = 5; i < 14; i++)
            for (int k = 0; k < 20; k++)
                sum += d->images[((size_t)i * 3 + ch) * 20 + k] / 255.0;
        worst = fmax(worst, fabs(mean[ch] - sum / (9 * 20)));
    }
    CHECK_LT("channel mean vs hand sum", worst, 1e-7);
    s.count = 16;
    CHECK(nn_dataset_channel_mean(mean, &s, err) == NN_ERR_ARG, "split past the end");
    s.count = 0;
    CHECK(nn_dataset_channel_mean(mean, &s, err) == NN_ERR_ARG, "empty split");
    nn_dataset_free(d);
}

/* Plain gather: every value against pixel/255 - mean. */
static void test_gather(tu_rng *r)
{
    enum { N = 6, C = 3, H = 4, W = 5 };
    char err[NN_ERRLEN] = "";
    nn_dataset *d = make_set(r, 30, C, H, W, 7);
    nn_split s = { d, 10, 15 };
    int idx[N] = { 0, 14, 3, 3, 7, 1 };
    float mean[C] = { 0.25f, 0.5f, 0.75f };
    nn_real x[N * C * H * W], lab[N];
    nn_rng rng;
    double worst = 0;
    int labels_ok = 1;

    CHECK(nn_dataset_gather(x, lab, &s, idx, N, mean, NULL, NULL, err) == NN_OK, "gather: %s", err);
    for (int j = 0; j < N; j++) {
        int i = 10 + idx[j];
        labels_ok &= lab[j] == (nn_real)(i % 7);
        for (int ch = 0; ch < C; ch++)
            for (int k = 0; k < H * W; k++) {
                double want = d->images[((size_t)i * C + ch) * H * W + k] / 255.0 - mean[ch];
                worst = fmax(worst, fabs(x[(j * C + ch) * H * W + k] - want));
            }
    }
    CHECK_LT("gather vs pixel/255 - mean", worst, 1e-6);
    CHECK(labels_ok, "gather labels");
    /* aug all zero = none, mean NULL = no subtraction, labels NULL ok */
    nn_augment none = { 0, 0 };
    CHECK(nn_dataset_gather(x, NULL, &s, idx, 1, NULL, &none, NULL, err) == NN_OK
              && x[0] == (nn_real)(d->images[10 * C * H * W] / 255.0), "no mean: %s", err);

    nn_rng_seed(&rng, 1);
    idx[5] = 15;
    CHECK(nn_dataset_gather(x, lab, &s, idx, N, mean, NULL, NULL, err) == NN_ERR_ARG
              && contains(err, "idx[5]"), "idx out of range: %s", err);
    idx[5] = -1;
    CHECK(nn_dataset_gather(x, lab, &s, idx, N, mean, NULL, NULL, err) == NN_ERR_ARG, "idx < 0");
    idx[5] = 1;
    nn_augment flip = { 0, 1 }, bigpad = { 5, 0 };
    CHECK(nn_dataset_gather(x, lab, &s, idx, N, mean, &flip, NULL, err) == NN_ERR_ARG,
          "aug without rng");
    CHECK(nn_dataset_gather(x, lab, &s, idx, N, mean, &bigpad, &rng, err) == NN_ERR_ARG,
          "crop_pad > h");
    CHECK(nn_dataset_gather(x, lab, &s, idx, 0, mean, NULL, NULL, err) == NN_ERR_ARG, "n 0");
    d->labels[11] = 7;
    CHECK(nn_dataset_gather(x, lab, &s, idx, N, mean, NULL, NULL, err) == NN_ERR_FORMAT,
          "label >= num_classes: %s", err);
    nn_dataset_free(d);
}

/* Reference for one augmented plane: shift by (dy, dx) with zeros outside,
 * then mirror when flip. */
static double plane_diff(const nn_real *got, const nn_real *base, int h, int w,
                         int dy, int dx, int flip)
{
    double worst = 0;
    for (int y = 0; y < h; y++)
        for (int xo = 0; xo < w; xo++) {
            int x = flip ? w - 1 - xo : xo, sy = y + dy, sx = x + dx;
            double want = (sy >= 0 && sy < h && sx >= 0 && sx < w) ? base[sy * w + sx] : 0.0;
            worst = fmax(worst, fabs(got[y * w + xo] - want));
        }
    return worst;
}

static void test_augment(tu_rng *r)
{
    enum { B = 64, C = 2, H = 6, W = 5, PL = H * W, IMG = C * PL };
    char err[NN_ERRLEN] = "";
    nn_dataset *d = make_set(r, 4, C, H, W, 3);
    nn_split s = nn_dataset_all(d);
    float mean[C] = { 0.1f, 0.9f };
    int idx[B];
    nn_real base[IMG], *x = tu_xcalloc((size_t)B * IMG, sizeof *x), *x2 = tu_xcalloc((size_t)B * IMG, sizeof *x2);
    nn_real lab[B];
    nn_rng rng;

    for (int j = 0; j < B; j++)
        idx[j] = 2;
    /* distinct pixels so no shift or mirror can equal another by chance */
    for (int k = 0; k < IMG; k++)
        d->images[2 * IMG + k] = (uint8_t)(7 * k + 3);
    nn_dataset_gather(base, NULL, &s, idx, 1, mean, NULL, NULL, err);

    /* flip only: every sample is the image or its mirror, both appear */
    nn_augment flip = { 0, 1 };
    int plain = 0, mirrored = 0, other = 0;
    nn_rng_seed(&rng, 42);
    CHECK(nn_dataset_gather(x, lab, &s, idx, B, mean, &flip, &rng, err) == NN_OK, "flip: %s", err);
    for (int j = 0; j < B; j++) {
        int p = 1, m = 1;
        for (int ch = 0; ch < C; ch++) {
            p &= plane_diff(x + j * IMG + ch * PL, base + ch * PL, H, W, 0, 0, 0) == 0;
            m &= plane_diff(x + j * IMG + ch * PL, base + ch * PL, H, W, 0, 0, 1) == 0;
        }
        plain += p;
        mirrored += m;
        other += !p && !m;
    }
    CHECK(plain > 8 && mirrored > 8 && other == 0, "flip: %d plain, %d mirrored, %d other",
          plain, mirrored, other);

    /* crop (and crop + flip): each sample is a shift in [-2, 2]^2 with zeros
     * outside; count the distinct shifts seen */
    for (int hf = 0; hf < 2; hf++) {
        nn_augment crop = { 2, hf };
        int seen[5][5] = { { 0 } }, distinct = 0, bad = 0, flips = 0;
        nn_rng_seed(&rng, 7);
        CHECK(nn_dataset_gather(x, lab, &s, idx, B, mean, &crop, &rng, err) == NN_OK,
              "crop: %s", err);
        for (int j = 0; j < B; j++) {
            int found = 0;
            for (int f = 0; f <= hf && !found; f++)
                for (int dy = -2; dy <= 2 && !found; dy++)
                    for (int dx = -2; dx <= 2 && !found; dx++) {
                        double e = 0;
                        for (int ch = 0; ch < C; ch++)
                            e = fmax(e, plane_diff(x + j * IMG + ch * PL, base + ch * PL,
                                                   H, W, dy, dx, f));
                        if (e == 0) {
                            found = 1;
                            flips += f;
                            distinct += !seen[dy + 2][dx + 2]++;
                        }
                    }
            bad += !found;
            bad += lab[j] != (nn_real)(2 % 3);
        }
        CHECK(bad == 0 && distinct >= 10, "crop_pad 2 hflip %d: %d samples match no shift, "
              "%d distinct shifts", hf, bad, distinct);
        if (hf)
            CHECK(flips > 8 && flips < B - 8, "crop+flip: %d of %d mirrored", flips, B);
    }

    /* same seed, same batch; another seed, another batch */
    nn_augment both = { 2, 1 };
    nn_rng_seed(&rng, 99);
    nn_dataset_gather(x, lab, &s, idx, B, mean, &both, &rng, err);
    nn_rng_seed(&rng, 99);
    nn_dataset_gather(x2, lab, &s, idx, B, mean, &both, &rng, err);
    CHECK(!memcmp(x, x2, (size_t)B * IMG * sizeof *x), "same seed, different batch");
    nn_rng_seed(&rng, 100);
    nn_dataset_gather(x2, lab, &s, idx, B, mean, &both, &rng, err);
    CHECK(memcmp(x, x2, (size_t)B * IMG * sizeof *x) != 0, "another seed, same batch");
    free(x);
    free(x2);
    nn_dataset_free(d);
}

static void test_shuffle(void)
{
    enum { K = 1000 };
    int *p = tu_xcalloc(K, sizeof *p), *q = tu_xcalloc(K, sizeof *q), *seen = tu_xcalloc(K, sizeof *seen);
    nn_rng r1, r2;
    int ok = 1, moved = 0;

    nn_rng_seed(&r1, 5);
    nn_split_shuffle(p, K, &r1);
    for (int i = 0; i < K; i++) {
        ok &= p[i] >= 0 && p[i] < K && !seen[p[i]]++;
        moved += p[i] != i;
    }
    CHECK(ok && moved > K / 2, "shuffle: permutation (%d moved)", moved);
    nn_rng_seed(&r2, 5);
    for (int i = 0; i < K; i++)
        q[i] = -7; /* old contents do not matter */
    nn_split_shuffle(q, K, &r2);
    CHECK(!memcmp(p, q, K * sizeof *p), "shuffle: deterministic");
    nn_split_shuffle(q, 0, &r2); /* no-op */
    free(p);
    free(q);
    free(seen);
}

/* ---- the installed Fashion-MNIST ---------------------------------------- */

static void test_fashion(void)
{
    char err[NN_ERRLEN] = "", dir[256];
    nn_dataset *tr = NULL, *te = NULL;

    if (nn_dataset_find_fashion_mnist(dir, sizeof dir, err) != NN_OK) {
        printf("  Fashion-MNIST not installed, skipped (%s)\n", err);
        return;
    }
    CHECK(nn_dataset_find_fashion_mnist(dir, 4, err) == NN_ERR_ARG, "short dir_out");
    CHECK(nn_dataset_load_fashion_mnist(&tr, &te, NULL, err) == NN_OK, "fashion: %s", err);
    if (!CHECK(tr && te, "fashion outputs"))
        return;
    CHECK(tr->n == 60000 && te->n == 10000, "fashion n %d / %d", tr->n, te->n);
    CHECK(tr->c == 1 && tr->h == 28 && tr->w == 28 && te->h == 28 && te->w == 28, "28x28");
    CHECK(tr->num_classes == 10 && te->num_classes == 10, "10 classes");
    CHECK(!strcmp(tr->class_names[0], "T-shirt/top") && !strcmp(te->class_names[9], "Ankle boot"),
          "fashion names");
    CHECK(!strcmp(tr->name, "fashion-mnist/train"), "fashion name %s", tr->name);
    /* Fashion-MNIST is balanced: 6000 / 1000 of each class */
    int count[2][10] = { { 0 } }, bad = 0;
    for (int i = 0; i < tr->n; i++)
        tr->labels[i] < 10 ? count[0][tr->labels[i]]++ : bad++;
    for (int i = 0; i < te->n; i++)
        te->labels[i] < 10 ? count[1][te->labels[i]]++ : bad++;
    for (int k = 0; k < 10; k++)
        bad += count[0][k] != 6000 || count[1][k] != 1000;
    CHECK(bad == 0, "fashion labels out of range or unbalanced");
    nn_split s = nn_dataset_all(tr);
    float mean;
    CHECK(nn_dataset_channel_mean(&mean, &s, err) == NN_OK && mean > 0.27f && mean < 0.30f,
          "fashion mean %.4f (known: 0.2860)", mean);
    nn_dataset_free(tr);
    nn_dataset_free(te);
}

int main(void)
{
    tu_rng r;
    tu_rng_seed(&r, 20240611);

    snprintf(tmpdir, sizeof tmpdir, "/tmp/nn_test_data_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("test_data: mkdtemp");
        return 1;
    }
    test_create();
    test_idx(&r);
    test_cifar(&r);
    test_split(&r);
    test_mean(&r);
    test_gather(&r);
    test_augment(&r);
    test_shuffle();
    test_fashion();

    for (int i = 0; i < nmade; i++)
        unlink(made[i]);
    rmdir(tmpdir);
    return tu_finish("nn_data");
}
