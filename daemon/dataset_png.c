/* dataset_png.c: image-folder data sets (see dataset_png.h).
 *
 * A scan lists the folders (sorted, bounded by max_files) and reads image
 * headers only; a load repeats the listing and decodes every file straight
 * into the nn_dataset's pixel block. Bookkeeping uses the daemon's x*
 * allocators (bounded by the file limit); decoding reports its own errors. */
#include "dataset_png.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "image.h"
#include "util.h"

#define DP_PATH_MAX 4096

typedef struct dp_class {
    char **files;           /* n sorted file names (no directory) */
    int n;
} dp_class;

/* A scan's result plus the file lists a load needs. */
typedef struct dp_scan {
    dataset_png_info info;
    char train_root[DP_PATH_MAX], test_root[DP_PATH_MAX]; /* test_root "" when none */
    dp_class *train, *test; /* info.num_classes each; test NULL when none */
} dp_scan;

static int join(char *out, const char *a, const char *b)
{
    int n = snprintf(out, DP_PATH_MAX, "%s/%s", a, b);
    return n > 0 && n < DP_PATH_MAX ? 0 : -1;
}

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int has_image_ext(const char *name)
{
    static const char *const exts[] = { ".png", ".jpg", ".jpeg" };
    size_t n = strlen(name);
    for (size_t e = 0; e < sizeof exts / sizeof exts[0]; e++) {
        size_t m = strlen(exts[e]);
        size_t i;
        if (n <= m)
            continue;
        for (i = 0; i < m; i++) {
            char ch = name[n - m + i];
            if (ch >= 'A' && ch <= 'Z')
                ch = (char)(ch - 'A' + 'a');
            if (ch != exts[e][i])
                break;
        }
        if (i == m)
            return 1;
    }
    return 0;
}

static int by_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_names(char **names, int n)
{
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* Lists dir's entries that are folders (dirs != 0) or regular image files
 * (dirs == 0), hidden ones skipped, sorted. At most `limit` names (what is
 * left of the overall limit `total`), else an error. 0, or -1 with a
 * message. */
static int list(char ***names, int *count, const char *dir, int dirs, int limit, int total,
                char *err, size_t errlen)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char path[DP_PATH_MAX];
    char **v = NULL;
    int n = 0, cap = 0;

    *names = NULL;
    *count = 0;
    if (d == NULL)
        return set_err(err, errlen, "%s: cannot open folder: %s", dir, strerror(errno));
    while ((de = readdir(d)) != NULL) {
        struct stat st;
        if (de->d_name[0] == '.' || join(path, dir, de->d_name) != 0 || stat(path, &st) != 0)
            continue;
        if (dirs ? !S_ISDIR(st.st_mode) : !(S_ISREG(st.st_mode) && has_image_ext(de->d_name)))
            continue;
        if (n >= limit) {
            closedir(d);
            free_names(v, n);
            return dirs ? set_err(err, errlen, "%s: more than %d class folders", dir, total)
                        : set_err(err, errlen, "%s: too many images: a data set holds at most %d",
                                  dir, total);
        }
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            v = xrealloc(v, (size_t)cap * sizeof *v);
        }
        v[n++] = xstrdup(de->d_name);
    }
    closedir(d);
    if (n > 1)
        qsort(v, (size_t)n, sizeof *v, by_str);
    *names = v;
    *count = n;
    return 0;
}

static void classes_free(dp_class *cls, int n)
{
    if (cls == NULL)
        return;
    for (int i = 0; i < n; i++)
        free_names(cls[i].files, cls[i].n);
    free(cls);
}

static void scan_free(dp_scan *s)
{
    classes_free(s->train, s->info.num_classes);
    classes_free(s->test, s->info.num_classes);
    dataset_png_info_free(&s->info);
}

/* Probes a header, naming the file in the message. */
static int probe(image_header *hd, const char *root, const char *cls, const char *file,
                 char *err, size_t errlen)
{
    char dir[DP_PATH_MAX], path[DP_PATH_MAX];
    if (join(dir, root, cls) != 0 || join(path, dir, file) != 0)
        return set_err(err, errlen, "%s/%s: path too long", root, cls);
    return image_probe_file(hd, path, err, errlen) == IMAGE_OK ? 0 : -1;
}

/* The scan proper; on failure s holds what was gathered (scan_free it). */
static int scan_run(dp_scan *s, const char *dir, const dataset_png_opts *o, char *err,
                    size_t errlen)
{
    dataset_png_info *in = &s->info;
    char path[DP_PATH_MAX];
    char **names = NULL;
    int n = 0, max_files = o->max_files > 0 ? o->max_files : DATASET_PNG_MAX_FILES;
    int budget = max_files;

    if (!is_dir(dir))
        return set_err(err, errlen, "%s: not a folder", dir);
    if (join(s->train_root, dir, "train") == 0 && is_dir(s->train_root)) {
        in->split = 1;
        if (join(s->test_root, dir, "test") != 0 || !is_dir(s->test_root))
            s->test_root[0] = '\0';
    } else {
        snprintf(s->train_root, sizeof s->train_root, "%s", dir);
    }

    if (list(&names, &n, s->train_root, 1, NN_DATASET_MAX_CLASSES, NN_DATASET_MAX_CLASSES,
             err, errlen) != 0)
        return -1;
    in->class_names = names;
    in->num_classes = n;
    if (n < 2)
        return set_err(err, errlen, "%s: needs at least 2 class folders, found %d",
                       s->train_root, n);
    s->train = xcalloc((size_t)n, sizeof *s->train);
    for (int k = 0; k < n; k++) {
        if (strlen(names[k]) > NN_CLASS_NAME_MAX)
            return set_err(err, errlen, "%s/%s: class name longer than %d bytes", s->train_root,
                           names[k], NN_CLASS_NAME_MAX);
        if (join(path, s->train_root, names[k]) != 0)
            return set_err(err, errlen, "%s/%s: path too long", s->train_root, names[k]);
        if (list(&s->train[k].files, &s->train[k].n, path, 0, budget, max_files, err, errlen) != 0)
            return -1;
        if (s->train[k].n == 0)
            return set_err(err, errlen, "%s: class folder holds no .png/.jpg/.jpeg images", path);
        budget -= s->train[k].n;
        in->n_train += s->train[k].n;
    }

    if (s->test_root[0] != '\0') {
        char **tn = NULL;
        int tc = 0;
        s->test = xcalloc((size_t)n, sizeof *s->test);
        if (list(&tn, &tc, s->test_root, 1, NN_DATASET_MAX_CLASSES, NN_DATASET_MAX_CLASSES, err,
                 errlen) != 0)
            return -1;
        for (int i = 0; i < tc; i++) {
            char **hit = bsearch(&tn[i], names, (size_t)n, sizeof *names, by_str);
            int k = hit ? (int)(hit - names) : -1, rc;
            if (k < 0) {
                set_err(err, errlen, "%s/%s: test class is not a training class",
                        s->test_root, tn[i]);
                free_names(tn, tc);
                return -1;
            }
            rc = join(path, s->test_root, tn[i]) != 0 ? set_err(err, errlen, "%s/%s: path too long",
                                                              s->test_root, tn[i])
                 : list(&s->test[k].files, &s->test[k].n, path, 0, budget, max_files, err,
                        errlen);
            if (rc != 0) {
                free_names(tn, tc);
                return -1;
            }
            budget -= s->test[k].n;
            in->n_test += s->test[k].n;
        }
        free_names(tn, tc);
    }

    /* The common shape. */
    if ((o->h > 0) != (o->w > 0) || o->h < 0 || o->w < 0 || (o->c != 0 && o->c != 1 && o->c != 3))
        return set_err(err, errlen, "%s: bad shape option c=%d h=%d w=%d", dir, o->c, o->h, o->w);
    if (o->h > 0) {
        in->h = o->h;
        in->w = o->w;
    } else {
        image_header hd;
        if (probe(&hd, s->train_root, names[0], s->train[0].files[0], err, errlen) != 0)
            return -1;
        in->h = hd.h;
        in->w = hd.w;
    }
    /* Grey unless some image's header says colour (the first one ends it). */
    in->c = o->c;
    for (int part = 0; o->c == 0 && part < 2; part++) {
        const dp_class *cls = part == 0 ? s->train : s->test;
        const char *root = part == 0 ? s->train_root : s->test_root;
        if (in->c == 0)
            in->c = 1;
        for (int k = 0; cls != NULL && k < n && in->c == 1; k++)
            for (int i = 0; i < cls[k].n && in->c == 1; i++) {
                image_header hd;
                if (probe(&hd, root, names[k], cls[k].files[i], err, errlen) != 0)
                    return -1;
                if (!hd.grey)
                    in->c = 3;
            }
    }
    if (in->h > DATASET_PNG_MAX_SIDE || in->w > DATASET_PNG_MAX_SIDE)
        return set_err(err, errlen,
                       "%s: image size %dx%d is above %d per side; give a smaller size",
                       dir, in->w, in->h, DATASET_PNG_MAX_SIDE);
    if ((uint64_t)in->n_train * (uint64_t)in->c * (uint64_t)in->h * (uint64_t)in->w >
        NN_DATASET_MAX_BYTES ||
        (uint64_t)in->n_test * (uint64_t)in->c * (uint64_t)in->h * (uint64_t)in->w >
        NN_DATASET_MAX_BYTES)
        return set_err(err, errlen, "%s: %d+%d images of %dx%dx%d exceed %zu bytes of pixels", dir,
                       in->n_train, in->n_test, in->c, in->h, in->w, NN_DATASET_MAX_BYTES);
    return 0;
}

static int scan(dp_scan *s, const char *dir, const dataset_png_opts *opts, char *err, size_t errlen)
{
    dataset_png_opts o = { 0 };
    memset(s, 0, sizeof *s);
    if (opts != NULL)
        o = *opts;
    if (dir == NULL)
        return set_err(err, errlen, "dataset: no folder");
    if (scan_run(s, dir, &o, err, errlen) != 0) {
        scan_free(s);
        memset(s, 0, sizeof *s);
        return -1;
    }
    return 0;
}

/* ---- public ---- */

int dataset_png_detect(const char *dir)
{
    char root[DP_PATH_MAX], path[DP_PATH_MAX];
    DIR *d;
    struct dirent *de;
    int found = 0;

    if (dir == NULL || !is_dir(dir))
        return 0;
    if (join(root, dir, "train") != 0 || !is_dir(root))
        snprintf(root, sizeof root, "%s", dir);
    d = opendir(root);
    if (d == NULL)
        return 0;
    while (!found && (de = readdir(d)) != NULL) {
        DIR *sub;
        struct dirent *fe;
        if (de->d_name[0] == '.' || join(path, root, de->d_name) != 0)
            continue;
        sub = opendir(path);
        if (sub == NULL)
            continue;
        while (!found && (fe = readdir(sub)) != NULL)
            found = fe->d_name[0] != '.' && has_image_ext(fe->d_name);
        closedir(sub);
    }
    closedir(d);
    return found;
}

int dataset_png_scan(dataset_png_info *info, const char *dir, const dataset_png_opts *opts,
                     char *err, size_t errlen)
{
    dp_scan *s;

    if (info == NULL)
        return set_err(err, errlen, "dataset: no output");
    memset(info, 0, sizeof *info);
    s = xmalloc(sizeof *s); /* two paths of 4 KiB: not on the stack */
    if (scan(s, dir, opts, err, errlen) != 0) {
        free(s);
        return -1;
    }
    *info = s->info;
    s->info.class_names = NULL; /* now info's */
    classes_free(s->train, info->num_classes);
    classes_free(s->test, info->num_classes);
    free(s);
    return 0;
}

void dataset_png_info_free(dataset_png_info *info)
{
    if (info == NULL)
        return;
    free_names(info->class_names, info->class_names ? info->num_classes : 0);
    memset(info, 0, sizeof *info);
}

/* Builds one part: every image of cls (rooted at root) in class order. */
static int load_part(nn_dataset **out, const dp_scan *s, const dp_class *cls, const char *root,
                     int count, const char *dir, const char *suffix, uint64_t max_pixels,
                     char *err, size_t errlen)
{
    const dataset_png_info *in = &s->info;
    size_t chw = (size_t)in->c * (size_t)in->h * (size_t)in->w;
    char nerr[NN_ERRLEN], path[DP_PATH_MAX], sub[DP_PATH_MAX];
    const char *base;
    size_t blen;
    nn_dataset *d = NULL;
    image img = { 0 };
    int idx = 0;

    *out = NULL;
    if (nn_dataset_create(&d, count, in->c, in->h, in->w, in->num_classes, nerr) != NN_OK)
        return set_err(err, errlen, "%s: %s", dir, nerr);
    for (int k = 0; k < in->num_classes; k++)
        if (nn_dataset_set_class_name(d, k, in->class_names[k], nerr) != NN_OK) {
            set_err(err, errlen, "%s: class %s: %s", dir, in->class_names[k], nerr);
            goto fail;
        }
    /* The name: the folder's base name (trailing slashes ignored). */
    blen = strlen(dir);
    while (blen > 1 && dir[blen - 1] == '/')
        blen--;
    base = dir + blen;
    while (base > dir && base[-1] != '/')
        base--;
    blen -= (size_t)(base - dir);
    if (blen > NN_DATASET_NAME_LEN - 1 - strlen(suffix))
        blen = NN_DATASET_NAME_LEN - 1 - strlen(suffix);
    memcpy(d->name, base, blen);
    memcpy(d->name + blen, suffix, strlen(suffix) + 1);

    for (int k = 0; k < in->num_classes; k++) {
        if (join(sub, root, in->class_names[k]) != 0) {
            set_err(err, errlen, "%s/%s: path too long", root, in->class_names[k]);
            goto fail;
        }
        for (int i = 0; i < cls[k].n; i++) {
            if (idx >= count || join(path, sub, cls[k].files[i]) != 0) {
                set_err(err, errlen, "%s/%s: path too long or folder changed", sub,
                        cls[k].files[i]);
                goto fail;
            }
            if (image_decode_file(&img, path, max_pixels, err, errlen) != IMAGE_OK)
                goto fail;
            if (image_to_input(d->images + (size_t)idx * chw, in->c, in->h, in->w, &img,
                               nerr, sizeof nerr) != IMAGE_OK) {
                set_err(err, errlen, "%s: %s", path, nerr);
                goto fail;
            }
            image_free(&img);
            d->labels[idx++] = (uint16_t)k;
        }
    }
    *out = d;
    return 0;
fail:
    image_free(&img);
    nn_dataset_free(d);
    return -1;
}

int dataset_png_load(nn_dataset **train, nn_dataset **test, const char *dir,
                     const dataset_png_opts *opts, char *err, size_t errlen)
{
    dp_scan *s;
    uint64_t maxp = opts ? opts->max_pixels : 0;
    int rc = -1;

    if (train != NULL)
        *train = NULL;
    if (test != NULL)
        *test = NULL;
    if (train == NULL && test == NULL)
        return set_err(err, errlen, "dataset: no output");
    s = xmalloc(sizeof *s);
    if (scan(s, dir, opts, err, errlen) != 0) {
        free(s);
        return -1;
    }
    if (train != NULL && load_part(train, s, s->train, s->train_root, s->info.n_train, dir,
                                   "/train", maxp, err, errlen) != 0)
        goto done;
    if (test != NULL && s->info.n_test > 0 &&
        load_part(test, s, s->test, s->test_root, s->info.n_test, dir, "/test", maxp, err,
                  errlen) != 0) {
        if (train != NULL) {
            nn_dataset_free(*train);
            *train = NULL;
        }
        goto done;
    }
    rc = 0;
done:
    scan_free(s);
    free(s);
    return rc;
}
