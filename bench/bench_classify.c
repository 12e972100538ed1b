/* bench_classify.c: POST /v1/models/{id}/classify under load, idle and
 * while a training job runs on the same device.
 *
 * It starts convnetd itself (the binary CMake built, or argv's --convnetd)
 * on 127.0.0.1 with an ephemeral port and a temporary state and data
 * directory holding a synthetic 16x16 four-class IDX data set, trains a
 * tiny model, then drives the classify endpoint from a small C client:
 * --threads client threads (default 2, one per core of a 2-core box), each
 * multiplexing --connections keep-alive connections with poll(), every
 * connection in a closed loop (one request in flight). It measures idle,
 * then starts a long training job and measures again, and prints one line
 * per phase:
 *   bench=classify rps=... p50_ms=... p99_ms=... training=0|1
 * (plus errors= and the daemon's batching counters). Goals: >= 5000 req/s,
 * p99 <= 5 ms idle and <= 50 ms while training. Not a test: no thresholds
 * are enforced here. BENCH_KEEP=1 keeps the temporary directory (the
 * daemon's log) instead of removing it. */
#define _GNU_SOURCE   /* mkdtemp, nftw */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pngenc.h"

#ifndef BENCH_CONVNETD
#define BENCH_CONVNETD "convnetd"
#endif

#define MAX_CONN_PER_THREAD 64
#define MAX_THREADS 16
#define MAX_LAT 4000000   /* latency samples kept per phase */

static double now_s(void)
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

/* ---- a synthetic data set (tests/daemon's pattern) ---- */

static void synth_image(unsigned char *img, int h, int w, int classes, int label, uint32_t *x)
{
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

static void be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static int write_synth(const char *dir, int n)
{
    char path[600];
    unsigned char hdr[16], img[256];
    uint32_t x = 7;
    FILE *fi, *fl;
    int ok = 1;

    snprintf(path, sizeof path, "%s/synth", dir);
    if (mkdir(path, 0755) != 0)
        return -1;
    snprintf(path, sizeof path, "%s/synth/train-images-idx3-ubyte", dir);
    fi = fopen(path, "wb");
    snprintf(path, sizeof path, "%s/synth/train-labels-idx1-ubyte", dir);
    fl = fopen(path, "wb");
    if (fi == NULL || fl == NULL)
        ok = 0;
    be32(hdr, 0x803);
    be32(hdr + 4, (uint32_t)n);
    be32(hdr + 8, 16);
    be32(hdr + 12, 16);
    ok = ok && fwrite(hdr, 1, 16, fi) == 16;
    be32(hdr, 0x801);
    ok = ok && fwrite(hdr, 1, 8, fl) == 8;
    for (int i = 0; ok && i < n; i++) {
        unsigned char label = (unsigned char)(i % 4);
        synth_image(img, 16, 16, 4, label, &x);
        ok = fwrite(img, 1, 256, fi) == 256 && fwrite(&label, 1, 1, fl) == 1;
    }
    if (fi != NULL)
        ok = fclose(fi) == 0 && ok;
    if (fl != NULL)
        ok = fclose(fl) == 0 && ok;
    return ok ? 0 : -1;
}

/* ---- one-shot HTTP for set-up ---- */

static unsigned port;

static int connect_lo(void)
{
    struct sockaddr_in sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    if (fd < 0)
        return -1;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((unsigned short)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

/* Sends a request with Connection: close and reads the whole reply into
 * out (cap bytes). Returns the status or 0. */
static int request(const char *method, const char *path, const char *body, char *out, size_t cap)
{
    char req[4096];
    size_t got = 0;
    int fd, n, status = 0;

    n = snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                 "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s", method,
                 path, body != NULL ? strlen(body) : 0, body != NULL ? body : "");
    fd = connect_lo();
    if (fd < 0)
        return 0;
    if (write(fd, req, (size_t)n) != n) {
        close(fd);
        return 0;
    }
    for (;;) {
        ssize_t r = read(fd, out + got, cap - 1 - got);
        if (r <= 0)
            break;
        got += (size_t)r;
        if (got == cap - 1)
            break;
    }
    out[got] = '\0';
    close(fd);
    sscanf(out, "HTTP/1.%*d %d", &status);
    return status;
}

/* A JSON number field's value after "key": in text, or -1. */
static double field(const char *text, const char *key)
{
    char needle[64];
    const char *at;
    snprintf(needle, sizeof needle, "\"%s\":", key);
    at = strstr(text, needle);
    return at != NULL ? strtod(at + strlen(needle), NULL) : -1;
}

/* Polls job id until its status is want (or failed); 0 or -1. */
static int wait_status(long id, const char *want, double timeout_s)
{
    char path[64], buf[16384], needle[64];
    double end = now_s() + timeout_s;
    snprintf(path, sizeof path, "/v1/jobs/%ld", id);
    snprintf(needle, sizeof needle, "\"status\":\"%s\"", want);
    while (now_s() < end) {
        if (request("GET", path, NULL, buf, sizeof buf) == 200) {
            if (strstr(buf, needle) != NULL)
                return 0;
            if (strstr(buf, "\"status\":\"failed\"") != NULL) {
                fprintf(stderr, "job %ld failed: %s\n", id, strstr(buf, "\r\n\r\n"));
                return -1;
            }
        }
        sleep_ms(20);
    }
    return -1;
}

/* ---- the load generator ---- */

typedef struct conn {
    int fd;
    size_t sent;          /* bytes of the request written */
    char in[4096];        /* the reply so far */
    size_t got;
    double t0;
} conn;

typedef struct loader {
    pthread_t th;
    int nconn;
    const char *req;
    size_t reqlen;
    volatile int *measuring, *stop;
    long ok, errors;
    double *lat;          /* this thread's samples */
    long nlat, cap;
} loader;

static void conn_open(conn *c)
{
    c->fd = connect_lo();
    if (c->fd >= 0)
        fcntl(c->fd, F_SETFL, O_NONBLOCK);
    c->sent = 0;
    c->got = 0;
    c->t0 = now_s();
}

/* 1 when c->in holds a whole reply; *status gets its status. */
static int reply_done(const conn *c, int *status)
{
    const char *end = NULL, *cl;
    long len = 0;

    for (size_t i = 3; i < c->got; i++)
        if (memcmp(c->in + i - 3, "\r\n\r\n", 4) == 0) {
            end = c->in + i + 1;
            break;
        }
    if (end == NULL)
        return 0;
    cl = strstr(c->in, "Content-Length: ");
    if (cl == NULL || cl > end)
        cl = strstr(c->in, "content-length: ");
    if (cl != NULL && cl < end)
        len = strtol(cl + 16, NULL, 10);
    if ((size_t)(end - c->in) + (size_t)len > c->got)
        return 0;
    *status = 0;
    sscanf(c->in, "HTTP/1.%*d %d", status);
    return 1;
}

static void *loader_main(void *arg)
{
    loader *l = arg;
    conn cs[MAX_CONN_PER_THREAD];
    struct pollfd pf[MAX_CONN_PER_THREAD];

    for (int i = 0; i < l->nconn; i++)
        conn_open(&cs[i]);
    while (!*l->stop) {
        for (int i = 0; i < l->nconn; i++) {
            pf[i].fd = cs[i].fd;
            pf[i].events = cs[i].sent < l->reqlen ? POLLOUT : POLLIN;
            pf[i].revents = 0;
        }
        if (poll(pf, (nfds_t)l->nconn, 100) < 0 && errno != EINTR)
            break;
        for (int i = 0; i < l->nconn; i++) {
            conn *c = &cs[i];
            int status;
            if (pf[i].revents == 0)
                continue;
            if (c->sent < l->reqlen) {
                ssize_t w = write(c->fd, l->req + c->sent, l->reqlen - c->sent);
                if (w > 0)
                    c->sent += (size_t)w;
                else if (w < 0 && errno != EAGAIN) {
                    close(c->fd);
                    l->errors++;
                    conn_open(c);
                }
                continue;
            }
            {
                ssize_t r = read(c->fd, c->in + c->got, sizeof c->in - 1 - c->got);
                if (r <= 0) {
                    if (r < 0 && errno == EAGAIN)
                        continue;
                    close(c->fd);
                    l->errors++;
                    conn_open(c);
                    continue;
                }
                c->got += (size_t)r;
                c->in[c->got] = '\0';
            }
            if (!reply_done(c, &status)) {
                if (c->got >= sizeof c->in - 1) {
                    close(c->fd);
                    l->errors++;
                    conn_open(c);
                }
                continue;
            }
            if (*l->measuring) {
                if (status == 200)
                    l->ok++;
                else
                    l->errors++;
                if (l->nlat < l->cap)
                    l->lat[l->nlat++] = now_s() - c->t0;
            }
            /* Next request on the same connection. */
            c->sent = 0;
            c->got = 0;
            c->t0 = now_s();
        }
    }
    for (int i = 0; i < l->nconn; i++)
        if (cs[i].fd >= 0)
            close(cs[i].fd);
    return NULL;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The counter name's value in /metrics, or -1. */
static double prom(const char *name)
{
    static char buf[1 << 17];
    char needle[96];
    const char *at;
    if (request("GET", "/metrics", NULL, buf, sizeof buf) != 200)
        return -1;
    snprintf(needle, sizeof needle, "\n%s ", name);
    at = strstr(buf, needle);
    return at != NULL ? strtod(at + strlen(needle), NULL) : -1;
}

/* Runs one phase: warm-up, then `seconds` measured; prints its line. */
static void phase(int threads, int conns, double seconds, const char *req, size_t reqlen,
                  int training)
{
    loader ls[MAX_THREADS];
    volatile int measuring = 0, stop = 0;
    double *all, t0, t1, req0, bat0, req1, bat1;
    long ok = 0, errors = 0, n = 0;

    for (int i = 0; i < threads; i++) {
        ls[i] = (loader){ .nconn = conns, .req = req, .reqlen = reqlen, .measuring = &measuring,
                          .stop = &stop, .cap = MAX_LAT / threads };
        ls[i].lat = malloc(sizeof *ls[i].lat * (size_t)ls[i].cap);
        pthread_create(&ls[i].th, NULL, loader_main, &ls[i]);
    }
    sleep_ms(500);   /* warm-up: connections, model cache, page faults */
    req0 = prom("convnetd_inference_requests_total");
    bat0 = prom("convnetd_inference_batches_total");
    t0 = now_s();
    measuring = 1;
    sleep_ms((int)(seconds * 1000));
    measuring = 0;
    t1 = now_s();
    req1 = prom("convnetd_inference_requests_total");
    bat1 = prom("convnetd_inference_batches_total");
    stop = 1;
    for (int i = 0; i < threads; i++)
        pthread_join(ls[i].th, NULL);
    for (int i = 0; i < threads; i++)
        n += ls[i].nlat;
    all = malloc(sizeof *all * (size_t)(n > 0 ? n : 1));
    n = 0;
    for (int i = 0; i < threads; i++) {
        memcpy(all + n, ls[i].lat, sizeof *all * (size_t)ls[i].nlat);
        n += ls[i].nlat;
        ok += ls[i].ok;
        errors += ls[i].errors;
        free(ls[i].lat);
    }
    qsort(all, (size_t)n, sizeof *all, by_value);
    printf("bench=classify rps=%.0f p50_ms=%.3f p99_ms=%.3f training=%d errors=%ld "
           "connections=%d client_threads=%d requests=%.0f forward_passes=%.0f\n",
           (double)ok / (t1 - t0), n > 0 ? all[n / 2] * 1000 : 0,
           n > 0 ? all[(size_t)((double)(n - 1) * 0.99)] * 1000 : 0, training, errors,
           threads * conns, threads, req1 - req0, bat1 - bat0);
    fflush(stdout);
    free(all);
}

/* ---- the daemon ---- */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static pid_t start_daemon(const char *bin, const char *tmp, int cpu_threads)
{
    static const char prefix[] = "listening on http://127.0.0.1:";
    char state[400], data[400], log[400], threads[16];
    double end;
    pid_t pid;

    snprintf(state, sizeof state, "%s/state", tmp);
    snprintf(data, sizeof data, "%s/data", tmp);
    snprintf(log, sizeof log, "%s/convnetd.log", tmp);
    snprintf(threads, sizeof threads, "%d", cpu_threads);
    pid = fork();
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        unsetenv("NOTIFY_SOCKET");
        execl(bin, "convnetd", "--listen", "127.0.0.1:0", "--state-dir", state, "--data-dir",
              data, "--threads", threads, "--device", "cpu", (char *)NULL);
        _exit(127);
    }
    end = now_s() + 30;
    while (pid > 0 && now_s() < end) {
        char buf[8192];
        FILE *f = fopen(log, "r");
        size_t n = f != NULL ? fread(buf, 1, sizeof buf - 1, f) : 0;
        const char *at;
        if (f != NULL)
            fclose(f);
        buf[n] = '\0';
        at = strstr(buf, prefix);
        if (at != NULL && strchr(at, '\n') != NULL) {
            port = (unsigned)strtoul(at + sizeof prefix - 1, NULL, 10);
            return pid;
        }
        if (waitpid(pid, NULL, WNOHANG) == pid) {
            fprintf(stderr, "convnetd exited at start-up; see %s\n", log);
            return -1;
        }
        sleep_ms(20);
    }
    fprintf(stderr, "convnetd did not start; see %s\n", log);
    if (pid > 0)
        kill(pid, SIGKILL);
    return -1;
}

static void usage(void)
{
    fprintf(stderr, "usage: bench_classify [--convnetd PATH] [--threads N] [--connections N "
            "per thread] [--seconds S] [--daemon-threads N]\n");
}

int main(int argc, char **argv)
{
    const char *bin = BENCH_CONVNETD;
    int threads = 2, conns = 8, daemon_threads = 1;
    double seconds = 5;
    char tmp[] = "/tmp/convnetd-bench-classify-XXXXXX", data[400], buf[65536], *req;
    unsigned char px[256], *png = NULL;
    size_t pnglen = 0, reqlen;
    uint32_t x = 99;
    long model, trainer;
    pid_t pid;
    int st;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--convnetd") == 0 && i + 1 < argc)
            bin = argv[++i];
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "--connections") == 0 && i + 1 < argc)
            conns = atoi(argv[++i]);
        else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
            seconds = atof(argv[++i]);
        else if (strcmp(argv[i], "--daemon-threads") == 0 && i + 1 < argc)
            daemon_threads = atoi(argv[++i]);
        else {
            usage();
            return 2;
        }
    }
    if (threads < 1 || threads > MAX_THREADS || conns < 1 || conns > MAX_CONN_PER_THREAD ||
        !(seconds > 0 && seconds <= 600) || daemon_threads < 1 || daemon_threads > 256) {
        usage();
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    if (mkdtemp(tmp) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(data, sizeof data, "%s/data", tmp);
    if (mkdir(data, 0755) != 0 || write_synth(data, 8000) != 0) {
        fprintf(stderr, "cannot write the data set under %s\n", tmp);
        return 1;
    }
    pid = start_daemon(bin, tmp, daemon_threads);
    if (pid < 0)
        return 1;

    /* A tiny model: three-layer convnet, 4 filters, hidden 16, 2 epochs. */
    st = request("POST", "/v1/jobs",
                 "{\"name\":\"bench-model\",\"dataset\":{\"name\":\"synth\",\"val_fraction\":0.2,"
                 "\"limit\":600},\"model\":{\"preset\":\"three_layer_convnet\",\"num_filters\":4,"
                 "\"hidden_dim\":16,\"weight_scale\":0.01},\"solver\":{\"epochs\":2,"
                 "\"batch_size\":32,\"learning_rate\":0.01},\"device\":\"cpu\"}",
                 buf, sizeof buf);
    model = st == 201 ? (long)field(strstr(buf, "\r\n\r\n"), "id") : -1;
    if (model < 1 || wait_status(model, "succeeded", 120) != 0) {
        fprintf(stderr, "training the model failed (status %d)\n", st);
        goto out;
    }

    synth_image(px, 16, 16, 4, 2, &x);
    if (pngenc_gray(&png, &pnglen, px, 16, 16, buf, sizeof buf) != 0) {
        fprintf(stderr, "png: %s\n", buf);
        goto out;
    }
    req = malloc(pnglen + 512);
    reqlen = (size_t)snprintf(req, 512, "POST /v1/models/%ld/classify?top_k=1 HTTP/1.1\r\n"
                              "Host: 127.0.0.1\r\nContent-Type: image/png\r\n"
                              "Content-Length: %zu\r\n\r\n", model, pnglen);
    memcpy(req + reqlen, png, pnglen);
    reqlen += pnglen;

    phase(threads, conns, seconds, req, reqlen, 0);

    /* A long job on the same (only) device; measure while it trains. */
    st = request("POST", "/v1/jobs",
                 "{\"name\":\"bench-trainer\",\"dataset\":{\"name\":\"synth\",\"val_fraction\":0.2},"
                 "\"model\":{\"preset\":\"three_layer_convnet\",\"num_filters\":8,"
                 "\"hidden_dim\":32},\"solver\":{\"epochs\":10000,\"batch_size\":32},"
                 "\"device\":\"cpu\"}", buf, sizeof buf);
    trainer = st == 201 ? (long)field(strstr(buf, "\r\n\r\n"), "id") : -1;
    if (trainer < 1 || wait_status(trainer, "running", 30) != 0) {
        fprintf(stderr, "the training job did not start (status %d)\n", st);
        free(req);
        goto out;
    }
    sleep_ms(300);
    {
        char path[64];
        double it0, it1;
        snprintf(path, sizeof path, "/v1/jobs/%ld", trainer);
        request("GET", path, NULL, buf, sizeof buf);
        it0 = field(buf, "iteration");
        phase(threads, conns, seconds, req, reqlen, 1);
        request("GET", path, NULL, buf, sizeof buf);
        it1 = field(buf, "iteration");
        printf("bench=classify_training_job iterations_during_phase=%.0f status=%s\n",
               it1 - it0, strstr(buf, "\"status\":\"running\"") ? "running" : "not-running");
        snprintf(path, sizeof path, "/v1/jobs/%ld/cancel", trainer);
        request("POST", path, NULL, buf, sizeof buf);
    }
    free(req);
out:
    free(png);
    kill(pid, SIGTERM);
    waitpid(pid, &st, 0);
    if (getenv("BENCH_KEEP") != NULL)
        printf("kept %s\n", tmp);
    else
        nftw(tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}
