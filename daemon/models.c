/* models.c: the model registry (see models.h): checkpoint metadata read
 * without the tensors, cached per job and checked against the file with a
 * stat, and the filter pictures drawn from the weights.
 *
 * The metadata is read by hand from the container's header (docs/
 * checkpoint.md is the normative layout: magic, version, meta_len, then the
 * JSON): listing a hundred models must not read a hundred files of
 * weights. That skips the CRC, which is fine for what it is used for (the
 * shape, classes and mean of a file we wrote); the worker's nn_model_load
 * and the filter picture's nn_ckpt_read verify every byte. */
#include "models.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <nn/checkpoint.h>

#include "log.h"
#include "pngenc.h"
#include "store.h"
#include "util.h"

typedef struct filters_entry {
    long id;
    int epoch;                    /* asked for: -1 latest */
    unsigned long long ino, dev, size;
    long long mtime_ns;
    uint8_t *png;
    size_t len;
    char etag[FILTERS_ETAG_LEN];
    int width, height, at_epoch;
    long at_iteration;
    unsigned long long used;      /* LRU clock */
} filters_entry;

struct models {
    app *a;
    pthread_mutex_t mu;
    model_meta *meta[MODELS_CACHE_MAX];   /* each holds one reference */
    unsigned long long used[MODELS_CACHE_MAX];
    int nmeta;
    filters_entry filters[MODELS_FILTERS_CACHE_MAX];
    unsigned long long clock;
};

models *models_create(app *a)
{
    models *r = xcalloc(1, sizeof *r);
    r->a = a;
    pthread_mutex_init(&r->mu, NULL);
    return r;
}

static void meta_free(model_meta *m)
{
    if (m == NULL)
        return;
    for (int i = 0; m->class_names != NULL && i < m->num_classes; i++)
        free(m->class_names[i]);
    free(m->class_names);
    free(m);
}

void models_free(models *r)
{
    if (r == NULL)
        return;
    for (int i = 0; i < r->nmeta; i++)
        meta_free(r->meta[i]);
    for (int i = 0; i < MODELS_FILTERS_CACHE_MAX; i++)
        free(r->filters[i].png);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

void models_ckpt_path(const app *a, long id, char *out, size_t len)
{
    snprintf(out, len, "%s/jobs/%ld/checkpoint.ckpt", a->cfg->state_dir, id);
}

void models_filters_path(const app *a, long id, int epoch, char *out, size_t len)
{
    snprintf(out, len, "%s/jobs/%ld/filters/epoch-%d.ckpt", a->cfg->state_dir, id, epoch);
}

static long long mtime_ns(const struct stat *st)
{
    return (long long)st->st_mtim.tv_sec * 1000000000LL + st->st_mtim.tv_nsec;
}

/* ---- reading the metadata ---- */

static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const unsigned char *p)
{
    return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

/* Reads the metadata JSON of the checkpoint open at fd (st its fstat) into
 * *meta (malloc'd, NUL-terminated). 0, or -1 with a message in err. */
static int read_meta(int fd, const struct stat *st, const char *path, char **meta, char *err,
                     size_t errlen)
{
    static const unsigned char magic[8] = { 'C', 'N', 'V', 'N', 'E', 'T', 'D', 0 };
    unsigned char hdr[32];
    uint64_t meta_len;
    char *buf;
    size_t got = 0;

    /* 32 header bytes and the 12-byte trailer at least. */
    if (st->st_size < 44 || pread(fd, hdr, sizeof hdr, 0) != (ssize_t)sizeof hdr ||
        memcmp(hdr, magic, 8) != 0) {
        snprintf(err, errlen, "%s is not a convnetd checkpoint", path);
        return -1;
    }
    if (le32(hdr + 8) != 1) {
        snprintf(err, errlen, "%s: checkpoint version %u is not supported", path,
                 (unsigned)le32(hdr + 8));
        return -1;
    }
    meta_len = le64(hdr + 16);
    if (meta_len == 0 || meta_len > NN_CKPT_MAX_META ||
        meta_len > (uint64_t)st->st_size - 44) {
        snprintf(err, errlen, "%s: bad metadata length", path);
        return -1;
    }
    buf = xmalloc((size_t)meta_len + 1);
    while (got < meta_len) {
        ssize_t n = pread(fd, buf + got, (size_t)meta_len - got, (off_t)(32 + got));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            snprintf(err, errlen, "%s: cannot read the metadata", path);
            free(buf);
            return -1;
        }
        got += (size_t)n;
    }
    buf[meta_len] = '\0';
    if (strlen(buf) != meta_len) {
        snprintf(err, errlen, "%s: NUL in the metadata", path);
        free(buf);
        return -1;
    }
    *meta = buf;
    return 0;
}

static double num_or(const cJSON *o, const char *key, double def)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : def;
}

/* Fills m's model fields from the metadata document (nn_model_load's
 * rules). 0 or -1 with err. */
static int parse_meta(model_meta *m, const char *text, char *err, size_t errlen)
{
    cJSON *doc = cJSON_Parse(text);
    const cJSON *input = cJSON_GetObjectItemCaseSensitive(doc, "input");
    const cJSON *names = cJSON_GetObjectItemCaseSensitive(doc, "class_names");
    const cJSON *mean = cJSON_GetObjectItemCaseSensitive(doc, "mean");
    const cJSON *pos = cJSON_GetObjectItemCaseSensitive(doc, "position");
    const cJSON *extra = cJSON_GetObjectItemCaseSensitive(doc, "extra");
    const char *ds = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(extra, "dataset"));
    double k = num_or(doc, "num_classes", 0);
    int rc = -1;

    if (!cJSON_IsArray(input) || cJSON_GetArraySize(input) != 3 || !cJSON_IsArray(names) ||
        !cJSON_IsArray(mean) || !(k >= 2 && k <= NN_DATASET_MAX_CLASSES) ||
        cJSON_GetArraySize(names) != (int)k) {
        snprintf(err, errlen, "%s: the metadata lacks input, class_names or mean", m->path);
        goto out;
    }
    m->num_classes = (int)k;
    for (int i = 0; i < 3; i++) {
        const cJSON *v = cJSON_GetArrayItem(input, i);
        double d = cJSON_IsNumber(v) ? v->valuedouble : 0;
        if (!(d >= 1 && d <= 65536)) {
            snprintf(err, errlen, "%s: bad input shape", m->path);
            goto out;
        }
        *(i == 0 ? &m->c : i == 1 ? &m->h : &m->w) = (int)d;
    }
    if (m->c > NN_DATASET_MAX_CHANNELS || cJSON_GetArraySize(mean) != m->c) {
        snprintf(err, errlen, "%s: bad input channels or mean", m->path);
        goto out;
    }
    for (int i = 0; i < m->c; i++) {
        const cJSON *v = cJSON_GetArrayItem(mean, i);
        if (!cJSON_IsNumber(v)) {
            snprintf(err, errlen, "%s: bad mean", m->path);
            goto out;
        }
        m->mean[i] = (float)v->valuedouble;
    }
    m->class_names = xcalloc((size_t)m->num_classes, sizeof *m->class_names);
    for (int i = 0; i < m->num_classes; i++) {
        const char *s = cJSON_GetStringValue(cJSON_GetArrayItem(names, i));
        if (s == NULL) {
            snprintf(err, errlen, "%s: class_names[%d] is not a string", m->path, i);
            goto out;
        }
        m->class_names[i] = xstrdup(s);
    }
    m->iteration = (long)num_or(pos, "iteration", 0);
    m->epoch = (int)num_or(pos, "epoch", 0);
    m->best_val_acc = num_or(pos, "best_val_acc", -1);
    snprintf(m->dataset, sizeof m->dataset, "%s", ds != NULL ? ds : "");
    rc = 0;
out:
    cJSON_Delete(doc);
    return rc;
}

/* The worker serving job id: the device the job ran on when this daemon
 * has it, else the first device (the CPU when there is one). -1 when the
 * job does not exist. */
static int job_device(app *a, long id)
{
    store_job j;
    int dev = 0, rc;

    if (a->db == NULL)
        return 0;
    rc = store_job_get(a->db, id, &j);
    if (rc != 0)
        return -1;
    for (int d = 0; d < a->ndevices; d++)
        if (strcmp(a->devices[d].name, j.device) == 0)
            dev = d;
    store_job_clear(&j);
    return dev;
}

/* Reads a fresh model_meta for job id (no lock held). */
static models_rc load_meta(models *r, long id, model_meta **out, char *err, size_t errlen)
{
    model_meta *m = xcalloc(1, sizeof *m);
    struct stat st;
    char *text = NULL;
    int fd, dev;

    m->id = id;
    m->refs_ = 1;
    models_ckpt_path(r->a, id, m->path, sizeof m->path);
    dev = job_device(r->a, id);
    if (dev < 0) {
        snprintf(err, errlen, "no such model: %ld", id);
        meta_free(m);
        return MODELS_NOTFOUND;
    }
    m->device = dev;
    fd = open(m->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "job %ld has no checkpoint yet: a model appears after its "
                 "first epoch", id);
        meta_free(m);
        return errno == ENOENT ? MODELS_NOTFOUND : MODELS_ERROR;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
        read_meta(fd, &st, m->path, &text, err, errlen) != 0 ||
        parse_meta(m, text, err, errlen) != 0) {
        if (!S_ISREG(st.st_mode))
            snprintf(err, errlen, "%s is not a regular file", m->path);
        close(fd);
        free(text);
        meta_free(m);
        return MODELS_ERROR;
    }
    close(fd);
    free(text);
    m->file_size = (unsigned long long)st.st_size;
    m->mtime = (double)st.st_mtim.tv_sec + st.st_mtim.tv_nsec / 1e9;
    m->ino_ = (unsigned long long)st.st_ino;
    m->dev_ = (unsigned long long)st.st_dev;
    m->mtime_ns_ = mtime_ns(&st);
    *out = m;
    return MODELS_OK;
}

static int same_file(const model_meta *m, const struct stat *st)
{
    return m->ino_ == (unsigned long long)st->st_ino &&
           m->dev_ == (unsigned long long)st->st_dev &&
           m->file_size == (unsigned long long)st->st_size && m->mtime_ns_ == mtime_ns(st);
}

/* Drops the registry's reference of entry i, with r->mu held. */
static void drop_locked(models *r, int i)
{
    model_meta *m = r->meta[i];
    if (--m->refs_ == 0)
        meta_free(m);
    r->meta[i] = r->meta[r->nmeta - 1];
    r->used[i] = r->used[r->nmeta - 1];
    r->nmeta--;
}

models_rc models_get(models *r, long id, const model_meta **out, char *err, size_t errlen)
{
    char path[MODELS_PATH_MAX];
    struct stat st;
    model_meta *m = NULL;
    models_rc rc;

    *out = NULL;
    models_ckpt_path(r->a, id, path, sizeof path);
    if (stat(path, &st) != 0) {
        /* No file: forget a cached entry (the state dir was cleaned). */
        pthread_mutex_lock(&r->mu);
        for (int i = 0; i < r->nmeta; i++)
            if (r->meta[i]->id == id) {
                drop_locked(r, i);
                break;
            }
        pthread_mutex_unlock(&r->mu);
        if (job_device(r->a, id) < 0)
            snprintf(err, errlen, "no such model: %ld", id);
        else
            snprintf(err, errlen, "job %ld has no checkpoint yet: a model appears after its "
                     "first epoch", id);
        return MODELS_NOTFOUND;
    }
    pthread_mutex_lock(&r->mu);
    for (int i = 0; i < r->nmeta; i++) {
        if (r->meta[i]->id != id)
            continue;
        if (same_file(r->meta[i], &st)) {
            m = r->meta[i];
            m->refs_++;
            r->used[i] = ++r->clock;
        } else {
            drop_locked(r, i);
        }
        break;
    }
    pthread_mutex_unlock(&r->mu);
    if (m != NULL) {
        *out = m;
        return MODELS_OK;
    }

    /* Read outside the lock: other models stay served meanwhile. Two
     * threads may read the same new file at once; the second insert wins,
     * which is harmless. */
    rc = load_meta(r, id, &m, err, errlen);
    if (rc != MODELS_OK)
        return rc;
    pthread_mutex_lock(&r->mu);
    for (int i = 0; i < r->nmeta; i++)
        if (r->meta[i]->id == id) {
            drop_locked(r, i);
            break;
        }
    if (r->nmeta == MODELS_CACHE_MAX) {
        int lru = 0;
        for (int i = 1; i < r->nmeta; i++)
            if (r->used[i] < r->used[lru])
                lru = i;
        drop_locked(r, lru);
    }
    m->refs_++;   /* one for the registry, one for the caller */
    r->meta[r->nmeta] = m;
    r->used[r->nmeta] = ++r->clock;
    r->nmeta++;
    pthread_mutex_unlock(&r->mu);
    *out = m;
    return MODELS_OK;
}

void models_put(models *r, const model_meta *cm)
{
    model_meta *m = (model_meta *)cm;
    if (m == NULL)
        return;
    pthread_mutex_lock(&r->mu);
    if (--m->refs_ == 0)
        meta_free(m);
    pthread_mutex_unlock(&r->mu);
}

/* ---- filters ---- */

static int by_int(const void *x, const void *y)
{
    int a = *(const int *)x, b = *(const int *)y;
    return (a > b) - (a < b);
}

int models_filter_epochs(const app *a, long id, int *epochs, int max)
{
    char dir[MODELS_PATH_MAX];
    struct dirent *e;
    int *all = NULL, n = 0, cap = 0;
    DIR *d;

    snprintf(dir, sizeof dir, "%s/jobs/%ld/filters", a->cfg->state_dir, id);
    d = opendir(dir);
    if (d == NULL)
        return 0;
    while ((e = readdir(d)) != NULL) {
        long ep;
        char num[32];
        size_t len = strlen(e->d_name);
        /* "epoch-<N>.ckpt" exactly; a job has at most 10000 epochs. */
        if (len < 12 || len - 11 >= sizeof num || strncmp(e->d_name, "epoch-", 6) != 0 ||
            strcmp(e->d_name + len - 5, ".ckpt") != 0)
            continue;
        memcpy(num, e->d_name + 6, len - 11);
        num[len - 11] = '\0';
        if (parse_long(num, 0, 1000000, &ep) != 0)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            all = xrealloc(all, sizeof *all * (size_t)cap);
        }
        all[n++] = (int)ep;
    }
    closedir(d);
    if (n > 1)
        qsort(all, (size_t)n, sizeof *all, by_int);
    for (int i = n > max ? n - max : 0, k = 0; i < n; i++)
        epochs[k++] = all[i];
    free(all);
    return n;
}

/* Reads the filters (K,C,R,S) from the checkpoint or snapshot at path and
 * draws them. 0, 1 (no conv layer) or -1 (err). */
static int draw(filters_entry *fe, const char *path, int snapshot, char *err, size_t errlen)
{
    char nerr[NN_ERRLEN], *meta = NULL;
    nn_ckpt_tensor *tt = NULL;
    const nn_ckpt_tensor *t = NULL;
    cJSON *doc = NULL;
    const cJSON *pos;
    filters_grid g;
    int n = 0, rc = -1;
    nn_status st = nn_ckpt_read(path, &meta, &tt, &n, nerr);

    if (st != NN_OK) {
        snprintf(err, errlen, "%s", nerr);
        return -1;
    }
    if (snapshot) {
        t = nn_ckpt_find(tt, n, "filters");
    } else {
        /* The tensors are in layer order: the first 4-d parameter is the
         * first conv layer's weight (K,C,R,S). */
        for (int i = 0; i < n && t == NULL; i++)
            if (tt[i].ndim == 4 && strncmp(tt[i].name, "param/", 6) == 0)
                t = &tt[i];
    }
    if (t == NULL || t->ndim != 4) {
        snprintf(err, errlen, "the model has no conv layer: no filters to draw");
        rc = 1;
        goto out;
    }
    doc = cJSON_Parse(meta);
    pos = snapshot ? doc : cJSON_GetObjectItemCaseSensitive(doc, "position");
    fe->at_epoch = (int)num_or(pos, "epoch", 0);
    fe->at_iteration = (long)num_or(pos, "iteration", 0);
    /* nn_real is float in the library the daemon links (tensor.h). */
    if (filters_png(&fe->png, &fe->len, &g, t->data, t->shape[0], t->shape[1], t->shape[2],
                    t->shape[3], err, errlen) != 0)
        goto out;
    filters_etag(fe->etag, t->data, t->shape[0], t->shape[1], t->shape[2], t->shape[3]);
    fe->width = g.width;
    fe->height = g.height;
    rc = 0;
out:
    cJSON_Delete(doc);
    nn_ckpt_free(meta, tt, n);
    return rc;
}

models_rc models_filters(models *r, long id, int epoch, uint8_t **png, size_t *len,
                         char *etag, int *width, int *height, int *at_epoch,
                         long *at_iteration, char *err, size_t errlen)
{
    char path[MODELS_PATH_MAX];
    struct stat st;
    filters_entry fe, *hit = NULL;
    int snapshot = 0, drc;

    *png = NULL;
    *len = 0;
    err[0] = '\0';
    if (job_device(r->a, id) < 0) {
        snprintf(err, errlen, "no such job: %ld", id);
        return MODELS_NOTFOUND;
    }
    if (epoch >= 0) {
        models_filters_path(r->a, id, epoch, path, sizeof path);
        snapshot = stat(path, &st) == 0;
    }
    if (!snapshot) {
        models_ckpt_path(r->a, id, path, sizeof path);
        if (stat(path, &st) != 0) {
            snprintf(err, errlen, "job %ld has no checkpoint yet: filters appear after its "
                     "first epoch", id);
            return MODELS_NOTFOUND;
        }
    }

    pthread_mutex_lock(&r->mu);
    for (int i = 0; i < MODELS_FILTERS_CACHE_MAX; i++) {
        filters_entry *e = &r->filters[i];
        if (e->png != NULL && e->id == id && e->epoch == (snapshot ? epoch : -1) &&
            e->ino == (unsigned long long)st.st_ino && e->dev == (unsigned long long)st.st_dev &&
            e->size == (unsigned long long)st.st_size && e->mtime_ns == mtime_ns(&st)) {
            hit = e;
            break;
        }
    }
    if (hit != NULL) {
        hit->used = ++r->clock;
        fe = *hit;
        fe.png = xmalloc(hit->len);
        memcpy(fe.png, hit->png, hit->len);
    }
    pthread_mutex_unlock(&r->mu);

    if (hit == NULL) {
        memset(&fe, 0, sizeof fe);
        fe.id = id;
        fe.epoch = snapshot ? epoch : -1;
        fe.ino = (unsigned long long)st.st_ino;
        fe.dev = (unsigned long long)st.st_dev;
        fe.size = (unsigned long long)st.st_size;
        fe.mtime_ns = mtime_ns(&st);
        drc = draw(&fe, path, snapshot, err, errlen);
        if (drc != 0) {
            free(fe.png);
            return drc > 0 ? MODELS_NOTFOUND : MODELS_ERROR;
        }
        pthread_mutex_lock(&r->mu);
        {
            filters_entry *slot = &r->filters[0];
            for (int i = 0; i < MODELS_FILTERS_CACHE_MAX; i++) {
                if (r->filters[i].png == NULL) {
                    slot = &r->filters[i];
                    break;
                }
                if (r->filters[i].used < slot->used)
                    slot = &r->filters[i];
            }
            free(slot->png);
            *slot = fe;
            slot->png = xmalloc(fe.len);
            memcpy(slot->png, fe.png, fe.len);
            slot->used = ++r->clock;
        }
        pthread_mutex_unlock(&r->mu);
    }
    /* A snapshot was asked for but the latest checkpoint answers: only
     * when that checkpoint is not past the epoch asked for. */
    if (epoch >= 0 && !snapshot && fe.at_epoch > epoch) {
        free(fe.png);
        snprintf(err, errlen, "job %ld kept no filters for epoch %d (latest: epoch %d)", id,
                 epoch, fe.at_epoch);
        return MODELS_NOTFOUND;
    }
    *png = fe.png;
    *len = fe.len;
    memcpy(etag, fe.etag, FILTERS_ETAG_LEN);
    if (width != NULL)
        *width = fe.width;
    if (height != NULL)
        *height = fe.height;
    if (at_epoch != NULL)
        *at_epoch = fe.at_epoch;
    if (at_iteration != NULL)
        *at_iteration = fe.at_iteration;
    return MODELS_OK;
}
