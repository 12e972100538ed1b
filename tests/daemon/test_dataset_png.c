/* test_dataset_png.c: image-folder data sets built in a temporary folder.
 *
 * Three classes of PNG and JPEG files of mixed sizes and colour models, with
 * files and folders that must be ignored; a grey-only set; train/test
 * sub-folders; and the errors (too few classes, an empty class, an unknown
 * test class, a broken file, too many files), each naming what is wrong. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jpeglib.h>

#include "check.h"
#include "dataset_png.h"
#include "image.h"
#include "pngenc.h"

static char root[] = "/tmp/convnetd-test-dspng-XXXXXX";

static void mkdirs(const char *rel)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    for (char *p = path + strlen(root) + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            mkdir(path, 0700);
            *p = '/';
        }
    mkdir(path, 0700);
}

static void write_bytes(const char *rel, const void *data, size_t len)
{
    char path[512];
    FILE *f;
    snprintf(path, sizeof path, "%s/%s", root, rel);
    f = fopen(path, "wb");
    if (f == NULL || fwrite(data, 1, len, f) != len) {
        perror(path);
        exit(1);
    }
    fclose(f);
}

/* Writes a constant w x h PNG, grey (c == 1: value r) or RGB (r, g, b),
 * cut to `cut` bytes when cut > 0. */
static void write_png(const char *rel, int w, int h, int c, int r, int g, int b, size_t cut)
{
    uint8_t *px = malloc((size_t)w * h * c), *png;
    size_t len;
    char err[256];
    for (int i = 0; i < w * h; i++) {
        px[i * c] = (uint8_t)r;
        if (c == 3) {
            px[i * c + 1] = (uint8_t)g;
            px[i * c + 2] = (uint8_t)b;
        }
    }
    if ((c == 1 ? pngenc_gray(&png, &len, px, w, h, err, sizeof err)
                : pngenc_rgb(&png, &len, px, w, h, err, sizeof err)) != 0) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
    write_bytes(rel, png, cut ? cut : len);
    free(png);
    free(px);
}

static void write_jpeg(const char *rel, int w, int h, int r, int g, int b)
{
    struct jpeg_compress_struct ci;
    struct jpeg_error_mgr jerr;
    unsigned char *out = NULL;
    unsigned long n = 0;
    uint8_t *row = malloc((size_t)w * 3);

    for (int x = 0; x < w; x++) {
        row[3 * x] = (uint8_t)r;
        row[3 * x + 1] = (uint8_t)g;
        row[3 * x + 2] = (uint8_t)b;
    }
    ci.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&ci);
    jpeg_mem_dest(&ci, &out, &n);
    ci.image_width = (JDIMENSION)w;
    ci.image_height = (JDIMENSION)h;
    ci.input_components = 3;
    ci.in_color_space = JCS_RGB;
    jpeg_set_defaults(&ci);
    jpeg_set_quality(&ci, 95, TRUE);
    jpeg_start_compress(&ci, TRUE);
    while (ci.next_scanline < ci.image_height)
        jpeg_write_scanlines(&ci, &row, 1);
    jpeg_finish_compress(&ci);
    jpeg_destroy_compress(&ci);
    write_bytes(rel, out, n);
    free(out);
    free(row);
}

static void rm_rf(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *de;
        char sub[1024];
        while (d != NULL && (de = readdir(d)) != NULL) {
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                continue;
            snprintf(sub, sizeof sub, "%s/%s", path, de->d_name);
            rm_rf(sub);
        }
        if (d != NULL)
            closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

static const char *at(const char *rel)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    return path;
}

/* Every pixel of sample i, channel ch, is within tol of v. */
static int sample_is(const nn_dataset *d, int i, int ch, int v, int tol)
{
    const uint8_t *p = d->images + ((size_t)i * d->c + ch) * d->h * d->w;
    for (int j = 0; j < d->h * d->w; j++)
        if (abs((int)p[j] - v) > tol)
            return 0;
    return 1;
}

static void test_basic(void)
{
    char err[512];
    dataset_png_info info;
    nn_dataset *train = NULL, *test = NULL;

    mkdirs("A/dog/sub");
    mkdirs("A/cat");
    mkdirs("A/bird");
    write_png("A/bird/01.png", 8, 6, 1, 10, 0, 0, 0);       /* first: sets 8x6 */
    write_png("A/bird/02.png", 16, 12, 1, 20, 0, 0, 0);     /* shrunk */
    write_png("A/cat/b.png", 8, 6, 3, 200, 100, 50, 0);     /* colour: c = 3 */
    write_jpeg("A/cat/a.jpg", 8, 6, 30, 60, 90);
    write_png("A/dog/x.PNG", 4, 3, 1, 255, 0, 0, 0);        /* enlarged */
    write_bytes("A/dog/notes.txt", "not an image", 12);
    write_png("A/dog/.hidden.png", 2, 2, 1, 0, 0, 0, 0);
    write_png("A/dog/sub/deep.png", 2, 2, 1, 0, 0, 0, 0);
    write_bytes("A/README", "x", 1);

    CHECK(dataset_png_detect(at("A")) == 1);
    CHECKF(dataset_png_scan(&info, at("A"), NULL, err, sizeof err) == 0, "%s", err);
    CHECK(info.num_classes == 3 && info.split == 0);
    CHECK(info.class_names != NULL && strcmp(info.class_names[0], "bird") == 0 &&
          strcmp(info.class_names[1], "cat") == 0 && strcmp(info.class_names[2], "dog") == 0);
    CHECKF(info.n_train == 5 && info.n_test == 0, "%d %d", info.n_train, info.n_test);
    CHECKF(info.c == 3 && info.h == 6 && info.w == 8, "%dx%dx%d", info.c, info.h, info.w);

    CHECKF(dataset_png_load(&train, &test, at("A"), NULL, err, sizeof err) == 0, "%s", err);
    CHECK(test == NULL);
    if (train != NULL) {
        static const uint16_t labels[5] = { 0, 0, 1, 1, 2 };
        CHECK(train->n == 5 && train->c == 3 && train->h == 6 && train->w == 8);
        CHECK(train->num_classes == 3 && strcmp(train->class_names[1], "cat") == 0);
        CHECKF(strcmp(train->name, "A/train") == 0, "%s", train->name);
        CHECK(memcmp(train->labels, labels, sizeof labels) == 0);
        for (int ch = 0; ch < 3; ch++) {
            CHECK(sample_is(train, 0, ch, 10, 0));
            CHECK(sample_is(train, 1, ch, 20, 0));
            CHECK(sample_is(train, 4, ch, 255, 0));
        }
        CHECK(sample_is(train, 2, 0, 30, 4) && sample_is(train, 2, 1, 60, 4) &&
              sample_is(train, 2, 2, 90, 4));
        CHECK(sample_is(train, 3, 0, 200, 0) && sample_is(train, 3, 1, 100, 0) &&
              sample_is(train, 3, 2, 50, 0));
    }
    nn_dataset_free(train);

    /* A fixed shape from the options: no headers needed, everything resized. */
    {
        dataset_png_opts o = { .c = 1, .h = 4, .w = 5 };
        dataset_png_info_free(&info);
        CHECKF(dataset_png_scan(&info, at("A"), &o, err, sizeof err) == 0, "%s", err);
        CHECK(info.c == 1 && info.h == 4 && info.w == 5);
        CHECKF(dataset_png_load(&train, NULL, at("A/"), &o, err, sizeof err) == 0, "%s", err);
        if (train != NULL) {
            CHECK(train->c == 1 && train->h == 4 && train->w == 5 && train->n == 5);
            CHECKF(strcmp(train->name, "A/train") == 0, "%s", train->name);
            CHECK(sample_is(train, 3, 0, 124, 1)); /* 0.299*200 + 0.587*100 + 0.114*50 */
        }
        nn_dataset_free(train);
        train = NULL;
    }
    /* Too many files for the limit. */
    {
        dataset_png_opts o = { .max_files = 4 };
        CHECK(dataset_png_load(&train, NULL, at("A"), &o, err, sizeof err) == -1 && train == NULL);
        CHECKF(strstr(err, "at most 4") != NULL, "%s", err);
    }
    dataset_png_info_free(&info);
    dataset_png_info_free(&info);
    dataset_png_info_free(NULL);
}

static void test_grey_and_split(void)
{
    char err[512];
    dataset_png_info info;
    nn_dataset *train = NULL, *test = NULL;

    mkdirs("B/0");
    mkdirs("B/1");
    write_png("B/0/a.png", 5, 5, 1, 1, 0, 0, 0);
    write_png("B/1/a.png", 7, 7, 1, 2, 0, 0, 0);
    CHECKF(dataset_png_scan(&info, at("B"), NULL, err, sizeof err) == 0, "%s", err);
    CHECK(info.c == 1 && info.h == 5 && info.w == 5 && info.n_train == 2);
    dataset_png_info_free(&info);

    /* train/ and test/: the test part uses training's classes by name. */
    mkdirs("C/train/a");
    mkdirs("C/train/b");
    mkdirs("C/test/b");
    write_png("C/train/a/1.png", 6, 4, 1, 11, 0, 0, 0);
    write_png("C/train/b/1.png", 6, 4, 1, 22, 0, 0, 0);
    write_png("C/train/b/2.png", 6, 4, 1, 33, 0, 0, 0);
    write_png("C/test/b/1.png", 6, 4, 3, 44, 44, 44, 0);   /* colour only in test */
    CHECK(dataset_png_detect(at("C")) == 1);
    CHECKF(dataset_png_scan(&info, at("C"), NULL, err, sizeof err) == 0, "%s", err);
    CHECK(info.split == 1 && info.n_train == 3 && info.n_test == 1 && info.num_classes == 2);
    CHECK(info.c == 3 && info.h == 4 && info.w == 6);
    dataset_png_info_free(&info);
    CHECKF(dataset_png_load(&train, &test, at("C"), NULL, err, sizeof err) == 0, "%s", err);
    CHECK(train != NULL && test != NULL);
    if (train != NULL && test != NULL) {
        CHECK(train->n == 3 && train->labels[0] == 0 && train->labels[2] == 1);
        CHECK(test->n == 1 && test->labels[0] == 1 && test->num_classes == 2);
        CHECK(strcmp(test->class_names[1], "b") == 0 && strcmp(test->name, "C/test") == 0);
        CHECK(sample_is(test, 0, 2, 44, 0) && sample_is(train, 2, 1, 33, 0));
    }
    nn_dataset_free(train);
    nn_dataset_free(test);
    train = test = NULL;
    /* The test part alone. */
    CHECKF(dataset_png_load(NULL, &test, at("C"), NULL, err, sizeof err) == 0, "%s", err);
    CHECK(test != NULL && test->n == 1);
    nn_dataset_free(test);
}

static void test_errors(void)
{
    char err[512];
    dataset_png_info info;
    nn_dataset *train = (nn_dataset *)1, *test = NULL;

    /* A test class training does not have. */
    mkdirs("D/train/a");
    mkdirs("D/train/b");
    mkdirs("D/test/z");
    write_png("D/train/a/1.png", 3, 3, 1, 0, 0, 0, 0);
    write_png("D/train/b/1.png", 3, 3, 1, 0, 0, 0, 0);
    CHECK(dataset_png_scan(&info, at("D"), NULL, err, sizeof err) == -1);
    CHECKF(strstr(err, "test/z") != NULL && strstr(err, "not a training class") != NULL, "%s", err);
    CHECK(info.class_names == NULL && info.num_classes == 0);

    /* One class only. */
    mkdirs("E/only");
    write_png("E/only/1.png", 3, 3, 1, 0, 0, 0, 0);
    CHECK(dataset_png_scan(&info, at("E"), NULL, err, sizeof err) == -1);
    CHECKF(strstr(err, "at least 2") != NULL, "%s", err);

    /* An empty class. */
    mkdirs("F/a");
    mkdirs("F/b");
    write_png("F/a/1.png", 3, 3, 1, 0, 0, 0, 0);
    CHECK(dataset_png_scan(&info, at("F"), NULL, err, sizeof err) == -1);
    CHECKF(strstr(err, "F/b") != NULL && strstr(err, "no .png") != NULL, "%s", err);

    /* A truncated file: the header reads, the load names the file. */
    mkdirs("G/a");
    mkdirs("G/b");
    write_png("G/a/1.png", 9, 9, 1, 5, 0, 0, 0);
    write_png("G/b/1.png", 9, 9, 3, 5, 6, 7, 60);
    CHECKF(dataset_png_scan(&info, at("G"), NULL, err, sizeof err) == 0, "%s", err);
    dataset_png_info_free(&info);
    CHECK(dataset_png_load(&train, &test, at("G"), NULL, err, sizeof err) == -1);
    CHECK(train == NULL && test == NULL);
    CHECKF(strstr(err, "G/b/1.png") != NULL && strstr(err, "PNG decode failed") != NULL, "%s", err);
    /* Not an image at all behind an image's name: the scan names it. */
    write_bytes("G/a/0.png", "GIF89a....", 10);
    CHECK(dataset_png_scan(&info, at("G"), NULL, err, sizeof err) == -1);
    CHECKF(strstr(err, "G/a/0.png") != NULL && strstr(err, "GIF") != NULL, "%s", err);

    /* Not a folder, no folder, nothing asked for, bad options. */
    CHECK(dataset_png_scan(&info, at("A/README"), NULL, err, sizeof err) == -1);
    CHECK(dataset_png_scan(&info, at("nope"), NULL, err, sizeof err) == -1);
    CHECKF(strstr(err, "nope") != NULL, "%s", err);
    CHECK(dataset_png_scan(&info, NULL, NULL, err, sizeof err) == -1);
    CHECK(dataset_png_load(NULL, NULL, at("A"), NULL, err, sizeof err) == -1);
    {
        dataset_png_opts o = { .h = 5 };
        CHECK(dataset_png_scan(&info, at("A"), &o, err, sizeof err) == -1);
        o = (dataset_png_opts){ .c = 2 };
        CHECK(dataset_png_scan(&info, at("A"), &o, NULL, 0) == -1);
    }
    mkdirs("H/empty");
    CHECK(dataset_png_detect(at("H")) == 0);
    CHECK(dataset_png_detect(at("nope")) == 0);
    CHECK(dataset_png_detect(NULL) == 0);
}

int main(void)
{
    if (mkdtemp(root) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    test_basic();
    test_grey_and_split();
    test_errors();
    rm_rf(root);
    return check_result("test_dataset_png");
}
