/* datasets.c: finding data sets at start-up and caching them once loaded
 * (see datasets.h).
 *
 * The scan reads only what listing and job validation need: IDX headers and
 * label files (small), CIFAR-10 file sizes and class names, image folders'
 * file lists and image headers (dataset_png.c). Loading the
 * pixels is nn's job (nn_dataset_load_*), done lazily under a per-entry
 * "loading" flag so two jobs never load the same data twice. */
#include "datasets.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <zlib.h>

#include "dataset_png.h"
#include "log.h"
#include "util.h"

#define DS_MAX 256
#define DS_PATH_MAX 1100

typedef enum ds_format { DS_FASHION_MNIST, DS_IDX, DS_CIFAR10, DS_PNG } ds_format;

static const char *const format_names[] = {
    [DS_FASHION_MNIST] = "fashion-mnist",
    [DS_IDX] = "idx",
    [DS_CIFAR10] = "cifar10",
    [DS_PNG] = "image-folder",
};

/* Fashion-MNIST's classes, as nn_dataset_load_fashion_mnist names them
 * (data.h), so the listing needs no load. */
static const char *const fashion_classes[10] = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
};

static const char *const cifar_classes[10] = {
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
};

typedef struct ds_entry {
    char name[NN_DATASET_NAME_LEN];
    ds_format format;
    char dir[DS_PATH_MAX];
    /* IDX files; test_* are "" when there is no test pair. */
    char train_images[DS_PATH_MAX], train_labels[DS_PATH_MAX];
    char test_images[DS_PATH_MAX], test_labels[DS_PATH_MAX];
    int c, h, w, num_classes, n_train, n_test;
    char **class_names;                /* num_classes strings */
    /* The cache, guarded by the registry's mutex. */
    nn_dataset *part[2];
    int loading[2];
    int users;
} ds_entry;

struct datasets {
    pthread_mutex_t mu;
    pthread_cond_t loaded;   /* a load finished (successfully or not) */
    int n;
    ds_entry *e;             /* n entries, sorted by name */
};

/* ---- helpers ---- */

static int valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= NN_DATASET_NAME_LEN || s[0] == '.')
        return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
              (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-'))
            return 0;
    }
    return 1;
}

/* Writes dir/name to out when that file exists (regular); else the ".gz"
 * variant. Returns 1 when one was found. */
static int find_file(char *out, size_t len, const char *dir, const char *name)
{
    struct stat st;
    int n = snprintf(out, len, "%s/%s", dir, name);
    if (n > 0 && (size_t)n < len && stat(out, &st) == 0 && S_ISREG(st.st_mode))
        return 1;
    n = snprintf(out, len, "%s/%s.gz", dir, name);
    if (n > 0 && (size_t)n < len && stat(out, &st) == 0 && S_ISREG(st.st_mode))
        return 1;
    out[0] = '\0';
    return 0;
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Reads an IDX images header (n, h, w) and the labels file (count and the
 * largest label). gzread reads plain files too. 0, or -1 with a log line. */
static int scan_idx(ds_entry *e)
{
    unsigned char hdr[16], buf[65536];
    gzFile g = gzopen(e->train_images, "rb");
    uint32_t n_img, n_lab;
    int max_label = -1, got;
    long total = 0;

    if (g == NULL || gzread(g, hdr, 16) != 16 || be32(hdr) != 0x803) {
        log_warn("data set %s: %s is not an IDX image file", e->name, e->train_images);
        if (g != NULL)
            gzclose(g);
        return -1;
    }
    gzclose(g);
    n_img = be32(hdr + 4);
    e->h = (int)be32(hdr + 8);
    e->w = (int)be32(hdr + 12);
    e->c = 1;
    if (n_img < 1 || n_img > INT_MAX || e->h < 1 || e->w < 1 || e->h > 4096 || e->w > 4096) {
        log_warn("data set %s: %s has implausible dimensions", e->name, e->train_images);
        return -1;
    }
    g = gzopen(e->train_labels, "rb");
    if (g == NULL || gzread(g, hdr, 8) != 8 || be32(hdr) != 0x801) {
        log_warn("data set %s: %s is not an IDX label file", e->name, e->train_labels);
        if (g != NULL)
            gzclose(g);
        return -1;
    }
    n_lab = be32(hdr + 4);
    while ((got = gzread(g, buf, sizeof buf)) > 0) {
        for (int i = 0; i < got; i++)
            if (buf[i] > max_label)
                max_label = buf[i];
        total += got;
    }
    gzclose(g);
    if (got < 0 || n_lab != n_img || total != (long)n_lab) {
        log_warn("data set %s: %s holds %ld labels for %u images", e->name,
                 e->train_labels, total, n_img);
        return -1;
    }
    e->n_train = (int)n_img;
    /* nn_dataset_load_idx's rule: max label + 1, at least 2. */
    e->num_classes = max_label + 1 < 2 ? 2 : max_label + 1;
    if (e->test_images[0] != '\0') {
        g = gzopen(e->test_images, "rb");
        if (g != NULL && gzread(g, hdr, 16) == 16 && be32(hdr) == 0x803 &&
            be32(hdr + 4) <= INT_MAX)
            e->n_test = (int)be32(hdr + 4);
        if (g != NULL)
            gzclose(g);
    }
    if (e->format == DS_FASHION_MNIST && e->num_classes > 10) {
        log_warn("data set %s: labels go up to %d, Fashion-MNIST has 10", e->name, max_label);
        return -1;
    }
    if (e->format == DS_FASHION_MNIST)
        e->num_classes = 10;
    return 0;
}

/* Counts the records of a CIFAR-10 batch file; -1 when it is missing or not
 * a whole number of 3073-byte records. */
static long cifar_records(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size <= 0 ||
        st.st_size % 3073 != 0)
        return -1;
    return (long)(st.st_size / 3073);
}

/* Fills a CIFAR-10 entry whose dir holds data_batch_1.bin. 0 or -1. */
static int scan_cifar(ds_entry *e)
{
    char path[DS_PATH_MAX + 32], line[512];
    long total = 0, n;
    int k = 0;
    FILE *f;

    for (int i = 1; i <= 5; i++) {
        snprintf(path, sizeof path, "%s/data_batch_%d.bin", e->dir, i);
        if ((n = cifar_records(path)) < 0)
            break;
        total += n;
    }
    if (total < 1 || total > INT_MAX) {
        log_warn("data set %s: %s/data_batch_1.bin is not a CIFAR-10 batch", e->name, e->dir);
        return -1;
    }
    e->n_train = (int)total;
    snprintf(path, sizeof path, "%s/test_batch.bin", e->dir);
    n = cifar_records(path);
    e->n_test = n > 0 && n <= INT_MAX ? (int)n : 0;
    e->c = 3;
    e->h = e->w = 32;
    e->num_classes = 10;
    e->class_names = xcalloc(10, sizeof *e->class_names);
    /* nn's rule: the first 10 non-empty lines of batches.meta.txt. */
    snprintf(path, sizeof path, "%s/batches.meta.txt", e->dir);
    f = fopen(path, "r");
    while (f != NULL && k < 10 && fgets(line, sizeof line, f) != NULL) {
        size_t len = strcspn(line, "\r\n");
        line[len] = '\0';
        if (len > 0)
            e->class_names[k++] = xstrdup(line);
    }
    if (f != NULL)
        fclose(f);
    for (; k < 10; k++)
        e->class_names[k] = xstrdup(cifar_classes[k]);
    return 0;
}

/* Appends e to r and logs it. */
static void add_entry(datasets *r, const ds_entry *e)
{
    r->e = xrealloc(r->e, sizeof *r->e * (size_t)(r->n + 1));
    r->e[r->n++] = *e;
    log_info("data set %s: %s, %dx%dx%d, %d classes, %d train / %d test images (%s)",
             e->name, format_names[e->format], e->c, e->h, e->w, e->num_classes, e->n_train,
             e->n_test, e->dir);
}

/* A folder of images, one sub-folder per class (dataset_png.h): the scan
 * reads only the image headers; the shape it finds is fixed for the load. */
static void scan_png(datasets *r, ds_entry *e, const char *dir)
{
    dataset_png_info info;
    char err[512];

    if (dataset_png_scan(&info, dir, NULL, err, sizeof err) != 0) {
        log_warn("data set %s: %s; skipped", e->name, err);
        return;
    }
    e->format = DS_PNG;
    snprintf(e->dir, sizeof e->dir, "%s", dir);
    e->c = info.c;
    e->h = info.h;
    e->w = info.w;
    e->num_classes = info.num_classes;
    e->n_train = info.n_train;
    e->n_test = info.n_test;
    /* The names move over; info keeps nothing else that needs freeing. */
    e->class_names = info.class_names;
    info.class_names = NULL;
    info.num_classes = 0;
    dataset_png_info_free(&info);
    add_entry(r, e);
}

/* Recognises the data set in dir (named name), appending it to r. */
static void scan_dir(datasets *r, const char *dir, const char *name, int fashion)
{
    ds_entry e;
    char sub[DS_PATH_MAX];
    struct stat st;

    if (r->n >= DS_MAX) {
        log_warn("data sets: more than %d; %s skipped", DS_MAX, dir);
        return;
    }
    memset(&e, 0, sizeof e);
    snprintf(e.name, sizeof e.name, "%s", name);
    if (find_file(e.train_images, sizeof e.train_images, dir, "train-images-idx3-ubyte") &&
        find_file(e.train_labels, sizeof e.train_labels, dir, "train-labels-idx1-ubyte")) {
        e.format = fashion ? DS_FASHION_MNIST : DS_IDX;
        snprintf(e.dir, sizeof e.dir, "%s", dir);
        if (!find_file(e.test_images, sizeof e.test_images, dir, "t10k-images-idx3-ubyte") ||
            !find_file(e.test_labels, sizeof e.test_labels, dir, "t10k-labels-idx1-ubyte"))
            e.test_images[0] = e.test_labels[0] = '\0';
        if (scan_idx(&e) != 0)
            return;
        e.class_names = xcalloc((size_t)e.num_classes, sizeof *e.class_names);
        for (int i = 0; i < e.num_classes; i++) {
            char num[16];
            snprintf(num, sizeof num, "%d", i);
            e.class_names[i] = xstrdup(e.format == DS_FASHION_MNIST ? fashion_classes[i] : num);
        }
    } else {
        snprintf(sub, sizeof sub, "%s/data_batch_1.bin", dir);
        if (stat(sub, &st) == 0) {
            snprintf(e.dir, sizeof e.dir, "%s", dir);
        } else {
            snprintf(sub, sizeof sub, "%s/cifar-10-batches-bin/data_batch_1.bin", dir);
            if (stat(sub, &st) != 0) {
                if (dataset_png_detect(dir))
                    scan_png(r, &e, dir);
                return;
            }
            snprintf(e.dir, sizeof e.dir, "%s/cifar-10-batches-bin", dir);
        }
        e.format = DS_CIFAR10;
        if (scan_cifar(&e) != 0)
            return;
    }
    add_entry(r, &e);
}

static ds_entry *find(datasets *r, const char *name)
{
    for (int i = 0; i < r->n; i++)
        if (strcmp(r->e[i].name, name) == 0)
            return &r->e[i];
    return NULL;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const ds_entry *)a)->name, ((const ds_entry *)b)->name);
}

/* ---- the registry ---- */

void datasets_scan(datasets **out, const char *data_dir)
{
    datasets *r = xcalloc(1, sizeof *r);
    char path[DS_PATH_MAX], fm[DS_PATH_MAX], err[NN_ERRLEN];
    struct dirent *de;
    DIR *d;

    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->loaded, NULL);
    d = opendir(data_dir);
    if (d == NULL) {
        log_warn("data-dir %s: %s", data_dir, strerror(errno));
    } else {
        while ((de = readdir(d)) != NULL) {
            struct stat st;
            if (de->d_name[0] == '.')
                continue;
            if (snprintf(path, sizeof path, "%s/%s", data_dir, de->d_name) >= (int)sizeof path ||
                stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
                continue;
            if (!valid_name(de->d_name)) {
                log_warn("data set directory %s: name is not [A-Za-z0-9._-]{1,63}; skipped",
                         path);
                continue;
            }
            scan_dir(r, path, de->d_name, strcmp(de->d_name, "fashion-mnist") == 0);
        }
        closedir(d);
    }
    /* The installed Fashion-MNIST, unless data-dir already provided one of
     * that name (with the default data-dir it is the same directory). */
    if (find(r, "fashion-mnist") == NULL &&
        nn_dataset_find_fashion_mnist(fm, sizeof fm, err) == NN_OK)
        scan_dir(r, fm, "fashion-mnist", 1);
    if (r->n > 1)
        qsort(r->e, (size_t)r->n, sizeof *r->e, by_name);
    if (r->n == 0)
        log_warn("no data sets found (data-dir %s; install dataset-fashion-mnist for the "
                 "default one)", data_dir);
    *out = r;
}

void datasets_free(datasets *r)
{
    if (r == NULL)
        return;
    for (int i = 0; i < r->n; i++) {
        ds_entry *e = &r->e[i];
        for (int k = 0; k < e->num_classes && e->class_names != NULL; k++)
            free(e->class_names[k]);
        free(e->class_names);
        nn_dataset_free(e->part[DS_TRAIN]);
        nn_dataset_free(e->part[DS_TEST]);
    }
    free(r->e);
    pthread_cond_destroy(&r->loaded);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

int datasets_count(const datasets *r)
{
    return r->n;
}

int datasets_info(datasets *r, const char *name, ds_info *info)
{
    ds_entry *e = find(r, name);
    if (e == NULL)
        return -1;
    memset(info, 0, sizeof *info);
    info->c = e->c;
    info->h = e->h;
    info->w = e->w;
    info->num_classes = e->num_classes;
    info->n_train = e->n_train;
    info->n_test = e->n_test;
    /* Pixels plus a uint16_t label per image. */
    info->load_bytes = (uint64_t)e->n_train * ((uint64_t)e->c * e->h * e->w + 2);
    pthread_mutex_lock(&r->mu);
    info->loaded = e->part[DS_TRAIN] != NULL;
    pthread_mutex_unlock(&r->mu);
    return 0;
}

cJSON *datasets_json(datasets *r)
{
    cJSON *doc = cJSON_CreateObject();
    cJSON *list = cJSON_AddArrayToObject(doc, "datasets");

    for (int i = 0; i < r->n; i++) {
        const ds_entry *e = &r->e[i];
        cJSON *o = cJSON_CreateObject();
        cJSON *shape, *names, *sizes;
        int loaded;

        cJSON_AddStringToObject(o, "name", e->name);
        cJSON_AddStringToObject(o, "format", format_names[e->format]);
        shape = cJSON_AddArrayToObject(o, "shape");
        cJSON_AddItemToArray(shape, cJSON_CreateNumber(e->c));
        cJSON_AddItemToArray(shape, cJSON_CreateNumber(e->h));
        cJSON_AddItemToArray(shape, cJSON_CreateNumber(e->w));
        cJSON_AddNumberToObject(o, "num_classes", e->num_classes);
        names = cJSON_AddArrayToObject(o, "class_names");
        for (int k = 0; k < e->num_classes; k++)
            cJSON_AddItemToArray(names, cJSON_CreateString(e->class_names[k]));
        sizes = cJSON_AddObjectToObject(o, "sizes");
        cJSON_AddNumberToObject(sizes, "train", e->n_train);
        cJSON_AddNumberToObject(sizes, "test", e->n_test);
        pthread_mutex_lock(&r->mu);
        loaded = e->part[DS_TRAIN] != NULL;
        pthread_mutex_unlock(&r->mu);
        cJSON_AddBoolToObject(o, "loaded", loaded);
        cJSON_AddItemToArray(list, o);
    }
    return doc;
}

/* Loads one part of e from disk (no lock held). */
static nn_status ds_load(const ds_entry *e, ds_part part, nn_dataset **out, char *err)
{
    dataset_png_opts po;
    nn_dataset **tr = part == DS_TRAIN ? out : NULL;
    nn_dataset **te = part == DS_TEST ? out : NULL;

    switch (e->format) {
    case DS_FASHION_MNIST:
        return nn_dataset_load_fashion_mnist(tr, te, e->dir, err);
    case DS_CIFAR10:
        return nn_dataset_load_cifar10(tr, te, e->dir, err);
    case DS_IDX:
        if (part == DS_TEST && e->test_images[0] == '\0') {
            snprintf(err, NN_ERRLEN, "%.200s has no test images", e->dir);
            return NN_ERR_IO;
        }
        return part == DS_TRAIN
                   ? nn_dataset_load_idx(out, e->train_images, e->train_labels, err)
                   : nn_dataset_load_idx(out, e->test_images, e->test_labels, err);
    case DS_PNG:
        if (part == DS_TEST && e->n_test == 0) {
            snprintf(err, NN_ERRLEN, "%.200s has no test/ folder", e->dir);
            return NN_ERR_IO;
        }
        /* The scanned shape, so that images added since start-up cannot
         * change what jobs were validated against. */
        memset(&po, 0, sizeof po);
        po.c = e->c;
        po.h = e->h;
        po.w = e->w;
        if (dataset_png_load(part == DS_TRAIN ? out : NULL, part == DS_TEST ? out : NULL,
                             e->dir, &po, err, NN_ERRLEN) != 0)
            return NN_ERR_FORMAT;
        return NN_OK;
    }
    return NN_ERR_ARG;
}

int datasets_acquire(datasets *r, const char *name, ds_part part, const nn_dataset **out,
                     char *err, size_t errlen)
{
    ds_entry *e = find(r, name);
    char nerr[NN_ERRLEN] = "";
    nn_dataset *d = NULL;
    double t0;
    nn_status st;

    if (e == NULL) {
        snprintf(err, errlen, "no data set called %s", name);
        return -1;
    }
    pthread_mutex_lock(&r->mu);
    while (e->loading[part])
        pthread_cond_wait(&r->loaded, &r->mu);
    if (e->part[part] != NULL) {
        e->users++;
        *out = e->part[part];
        pthread_mutex_unlock(&r->mu);
        return 0;
    }
    e->loading[part] = 1;
    pthread_mutex_unlock(&r->mu);

    t0 = now_mono();
    st = ds_load(e, part, &d, nerr);
    if (st == NN_OK && part == DS_TRAIN &&
        (d->c != e->c || d->h != e->h || d->w != e->w || d->n != e->n_train ||
         d->num_classes > e->num_classes)) {
        snprintf(nerr, sizeof nerr, "%.150s changed since start-up (now %d images of "
                 "%dx%dx%d); restart convnetd", e->dir, d->n, d->c, d->h, d->w);
        nn_dataset_free(d);
        d = NULL;
        st = NN_ERR_FORMAT;
    }

    pthread_mutex_lock(&r->mu);
    e->loading[part] = 0;
    if (st == NN_OK) {
        e->part[part] = d;
        e->users++;
        *out = d;
    }
    pthread_cond_broadcast(&r->loaded);
    pthread_mutex_unlock(&r->mu);
    if (st != NN_OK) {
        snprintf(err, errlen, "data set %s: %s", name, nerr);
        return -1;
    }
    log_info("data set %s: loaded %s part, %d images in %.2f s", name,
             part == DS_TRAIN ? "train" : "test", d->n, now_mono() - t0);
    return 0;
}

void datasets_release(datasets *r, const char *name)
{
    ds_entry *e = find(r, name);
    if (e == NULL)
        return;
    pthread_mutex_lock(&r->mu);
    if (e->users > 0)
        e->users--;
    pthread_mutex_unlock(&r->mu);
}
