/* daemon_proc.c: the end-to-end tests' helpers (see daemon_proc.h). */
#define _XOPEN_SOURCE 700   /* nftw */
#include "daemon_proc.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "http_client.h"

double tj_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(int ms)
{
    struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

int dp_mkdtemp(char *tmpl)
{
    return mkdtemp(tmpl) != NULL ? 0 : -1;
}

int dp_setup(dp_dirs *d, const char *name, int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s PATH-TO-CONVNETD\n", argv[0]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    snprintf(d->tmp, sizeof d->tmp, "/tmp/%s-XXXXXX", name);
    if (dp_mkdtemp(d->tmp) != 0) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(d->state, sizeof d->state, "%s/state", d->tmp);
    snprintf(d->data, sizeof d->data, "%s/data", d->tmp);
    snprintf(d->log, sizeof d->log, "%s/convnetd.log", d->tmp);
    if (mkdir(d->data, 0755) != 0) {
        perror(d->data);
        return 1;
    }
    return 0;
}

void dp_cleanup(const dp_dirs *d, int failures)
{
    if (failures == 0)
        dp_rmrf(d->tmp);
    else
        fprintf(stderr, "kept %s for inspection\n", d->tmp);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void dp_rmrf(const char *dir)
{
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Reads the whole log file (malloc'd, NUL-terminated) or NULL. */
static char *read_log(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;

    if (f == NULL)
        return NULL;
    if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return NULL;
    }
    buf = malloc((size_t)n + 1);
    if (buf == NULL) {
        fclose(f);
        return NULL;
    }
    n = (long)fread(buf, 1, (size_t)n, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

int dp_log_contains(const dproc *d, const char *needle)
{
    char *log = read_log(d->log);
    int found = log != NULL && strstr(log, needle) != NULL;
    free(log);
    return found;
}

int dp_start(dproc *d, const char *binary, const char *state, const char *data,
             const char *log_path, const char *const *extra)
{
    return dp_start_ex(d, binary, state, data, log_path, extra, NULL);
}

int dp_start_ex(dproc *d, const char *binary, const char *state, const char *data,
                const char *log_path, const char *const *extra, const dp_opts *opts)
{
    static const char prefix[] = "convnetd: listening on http://127.0.0.1:";
    const char *argv[32];
    long start_off = 0;
    struct stat st;
    double deadline;
    int n = 0, status;

    memset(d, 0, sizeof *d);
    snprintf(d->log, sizeof d->log, "%s", log_path);
    if (stat(log_path, &st) == 0)
        start_off = (long)st.st_size;
    argv[n++] = "convnetd";
    argv[n++] = "--listen";
    argv[n++] = "127.0.0.1:0";
    argv[n++] = "--state-dir";
    argv[n++] = state;
    argv[n++] = "--data-dir";
    argv[n++] = data;
    argv[n++] = "--threads";
    argv[n++] = "1";
    for (int i = 0; extra != NULL && extra[i] != NULL && n < 31; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;

    d->pid = fork();
    if (d->pid < 0)
        return -1;
    if (d->pid == 0) {
        int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd < 0)
            _exit(126);
        dup2(fd, STDERR_FILENO);
        dup2(fd, STDOUT_FILENO);
        close(fd);
        unsetenv("NOTIFY_SOCKET");
        unsetenv("JOURNAL_STREAM");
        if (opts != NULL && opts->fsize_limit > 0) {
            /* A "full disk" for this process alone: writes past the limit
             * fail with EFBIG. SIGXFSZ, which would kill it instead, stays
             * ignored across exec. */
            struct rlimit rl = { .rlim_cur = (rlim_t)opts->fsize_limit,
                                 .rlim_max = (rlim_t)opts->fsize_limit };
            signal(SIGXFSZ, SIG_IGN);
            if (setrlimit(RLIMIT_FSIZE, &rl) != 0)
                _exit(125);
        }
        execv(binary, (char *const *)argv);
        _exit(127);
    }
    deadline = tj_now() + 30;
    while (tj_now() < deadline) {
        char *log = read_log(log_path), *at;
        if (log != NULL && (long)strlen(log) > start_off) {
            at = strstr(log + start_off, prefix);
            if (at != NULL && strchr(at, '\n') != NULL) {
                d->port = (unsigned)strtoul(at + sizeof prefix - 1, NULL, 10);
                free(log);
                return 0;
            }
        }
        free(log);
        if (waitpid(d->pid, &status, WNOHANG) == d->pid) {
            fprintf(stderr, "convnetd exited during start-up (status %d); log %s\n", status,
                    log_path);
            d->pid = 0;
            return -1;
        }
        sleep_ms(20);
    }
    fprintf(stderr, "convnetd did not start within 30 s; log %s\n", log_path);
    kill(d->pid, SIGKILL);
    waitpid(d->pid, &status, 0);
    d->pid = 0;
    return -1;
}

int dp_stop(dproc *d, int sig, double timeout_s)
{
    double deadline = tj_now() + timeout_s;
    int status;

    if (d->pid <= 0)
        return -1;
    kill(d->pid, sig);
    while (tj_now() < deadline) {
        pid_t r = waitpid(d->pid, &status, WNOHANG);
        if (r == d->pid) {
            d->pid = 0;
            return status;
        }
        sleep_ms(10);
    }
    kill(d->pid, SIGKILL);
    waitpid(d->pid, &status, 0);
    d->pid = 0;
    return -1;
}

/* ---- JSON over HTTP ---- */

int tj_request(unsigned port, const char *method, const char *path, const char *body,
               cJSON **out)
{
    hc_reply r;
    int status;

    if (out != NULL)
        *out = NULL;
    if (hc_request(port, method, path,
                   body != NULL ? "Content-Type: application/json\r\n" : NULL, body,
                   body != NULL ? strlen(body) : 0, &r) != 0)
        return 0;
    status = r.status;
    if (out != NULL)
        *out = cJSON_Parse(r.body);
    hc_free(&r);
    return status;
}

const cJSON *tj_get(const cJSON *o, const char *path)
{
    char key[64];
    while (o != NULL && *path != '\0') {
        size_t n = strcspn(path, ".");
        if (n >= sizeof key)
            return NULL;
        memcpy(key, path, n);
        key[n] = '\0';
        o = cJSON_GetObjectItemCaseSensitive(o, key);
        path += n;
        if (*path == '.')
            path++;
    }
    return o;
}

const char *tj_str(const cJSON *o, const char *path)
{
    const char *s = cJSON_GetStringValue(tj_get(o, path));
    return s != NULL ? s : "";
}

double tj_num(const cJSON *o, const char *path)
{
    const cJSON *v = tj_get(o, path);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

long tj_submit(unsigned port, const char *spec)
{
    cJSON *doc;
    int st = tj_request(port, "POST", "/v1/jobs", spec, &doc);
    long id = -1;

    if (st == 201 && cJSON_IsNumber(tj_get(doc, "id")))
        id = (long)tj_num(doc, "id");
    else {
        char *t = doc != NULL ? cJSON_PrintUnformatted(doc) : NULL;
        fprintf(stderr, "submit: status %d: %s\n", st, t != NULL ? t : "(no JSON)");
        free(t);
    }
    cJSON_Delete(doc);
    return id;
}

int tj_wait_status(unsigned port, long id, const char *want, double timeout_s)
{
    char path[64], last[32] = "?";
    double deadline = tj_now() + timeout_s;

    snprintf(path, sizeof path, "/v1/jobs/%ld", id);
    while (tj_now() < deadline) {
        cJSON *doc;
        if (tj_request(port, "GET", path, NULL, &doc) == 200) {
            snprintf(last, sizeof last, "%s", tj_str(doc, "status"));
            if (strcmp(last, want) == 0) {
                cJSON_Delete(doc);
                return 1;
            }
            if (strcmp(last, "failed") == 0)
                fprintf(stderr, "job %ld failed: %s\n", id, tj_str(doc, "error"));
        }
        cJSON_Delete(doc);
        if (strcmp(last, "failed") == 0 && strcmp(want, "failed") != 0)
            return 0;
        sleep_ms(10);
    }
    fprintf(stderr, "job %ld: still %s after %.0f s, wanted %s\n", id, last, timeout_s, want);
    return 0;
}

int tj_wait_iteration(unsigned port, long id, long it, double timeout_s)
{
    char path[64];
    double deadline = tj_now() + timeout_s;

    snprintf(path, sizeof path, "/v1/jobs/%ld", id);
    while (tj_now() < deadline) {
        cJSON *doc;
        double got = NAN;
        if (tj_request(port, "GET", path, NULL, &doc) == 200)
            got = tj_num(doc, "progress.iteration");
        cJSON_Delete(doc);
        if (got >= (double)it)
            return 1;
        sleep_ms(5);
    }
    fprintf(stderr, "job %ld: iteration %ld not reached in %.0f s\n", id, it, timeout_s);
    return 0;
}

long *tj_steps(unsigned port, long id, const char *key, int *n)
{
    char path[128];
    cJSON *doc, *arr;
    long *steps;
    int i = 0;

    *n = 0;
    snprintf(path, sizeof path, "/v1/jobs/%ld/metrics?key=%s&limit=100000", id, key);
    if (tj_request(port, "GET", path, NULL, &doc) != 200) {
        cJSON_Delete(doc);
        return NULL;
    }
    arr = cJSON_GetObjectItemCaseSensitive(doc, "metrics");
    steps = malloc(sizeof *steps * (size_t)(cJSON_GetArraySize(arr) + 1));
    for (const cJSON *m = arr != NULL ? arr->child : NULL; m != NULL; m = m->next)
        steps[i++] = (long)tj_num(m, "step");
    *n = i;
    cJSON_Delete(doc);
    return steps;
}

int tj_steps_exact(const long *steps, int n)
{
    if (steps == NULL || n == 0)
        return 0;
    for (int i = 0; i < n; i++) {
        if (steps[i] != i + 1) {
            fprintf(stderr, "steps: position %d holds %ld (of %d)\n", i, steps[i], n);
            return 0;
        }
    }
    return 1;
}

/* ---- a synthetic data set ---- */

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

void tj_synth_image(unsigned char *img, int h, int w, int classes, int label, uint32_t *x)
{
    /* Class k lights a block in column band k; noise everywhere. */
    int band = w / classes;
    for (int p = 0; p < h * w; p++) {
        *x ^= *x << 13;
        *x ^= *x >> 17;
        *x ^= *x << 5;
        img[p] = (unsigned char)(*x % 64);
    }
    for (int r = h / 4; r < 3 * h / 4; r++)
        for (int c = label * band; c < (label + 1) * band; c++)
            img[r * w + c] = (unsigned char)(200 + *x % 50);
}

/* Writes dir/name/<prefix>-images-idx3-ubyte and -labels-idx1-ubyte. */
static int write_pair(const char *dir, const char *name, const char *prefix, int n, int h,
                      int w, int classes, uint32_t seed)
{
    char path[1024];
    unsigned char hdr[16], *img;
    uint32_t x = seed ? seed : 1;
    FILE *fi, *fl;
    int rc = -1;

    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        return -1;
    snprintf(path, sizeof path, "%s/%s/%s-images-idx3-ubyte", dir, name, prefix);
    fi = fopen(path, "wb");
    snprintf(path, sizeof path, "%s/%s/%s-labels-idx1-ubyte", dir, name, prefix);
    fl = fopen(path, "wb");
    img = malloc((size_t)h * (size_t)w);
    if (fi == NULL || fl == NULL || img == NULL)
        goto out;
    put_be32(hdr, 0x803);
    put_be32(hdr + 4, (uint32_t)n);
    put_be32(hdr + 8, (uint32_t)h);
    put_be32(hdr + 12, (uint32_t)w);
    if (fwrite(hdr, 1, 16, fi) != 16)
        goto out;
    put_be32(hdr, 0x801);
    put_be32(hdr + 4, (uint32_t)n);
    if (fwrite(hdr, 1, 8, fl) != 8)
        goto out;
    for (int i = 0; i < n; i++) {
        unsigned char label = (unsigned char)(i % classes);
        tj_synth_image(img, h, w, classes, label, &x);
        if (fwrite(img, 1, (size_t)h * (size_t)w, fi) != (size_t)h * (size_t)w ||
            fwrite(&label, 1, 1, fl) != 1)
            goto out;
    }
    rc = 0;
out:
    if (fi != NULL && fclose(fi) != 0)
        rc = -1;
    if (fl != NULL && fclose(fl) != 0)
        rc = -1;
    free(img);
    return rc;
}

int tj_write_synth(const char *dir, const char *name, int n, int h, int w, int classes,
                   uint32_t seed)
{
    return write_pair(dir, name, "train", n, h, w, classes, seed);
}

int tj_write_synth_test(const char *dir, const char *name, int n, int h, int w, int classes,
                        uint32_t seed)
{
    return write_pair(dir, name, "t10k", n, h, w, classes, seed);
}
