/* main.c: convnetd's start-up and shutdown, nothing else.
 *
 * Reads the settings, prepares the state directory, opens and migrates the
 * store, loads the BLAS, finds the devices and data sets, requeues the jobs
 * a previous run left, starts one worker per device and the HTTP server,
 * tells systemd it is ready, then sleeps until SIGTERM/SIGINT. Shutdown is
 * graceful: running jobs finish their minibatch and checkpoint, and stay
 * marked running so the next start resumes them. Request handling lives in
 * http.c and api_*.c, training in worker.c. Exit status: 0 clean shutdown,
 * 1 run-time failure, 2 bad settings. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <nn/blas.h>
#ifdef CONVNETD_HAVE_CUDA
#include <nn_cuda/nn_cuda.h>
#endif

#include "app.h"
#include "config.h"
#include "datasets.h"
#include "http.h"
#include "jobs.h"
#include "log.h"
#include "models.h"
#include "sdnotify.h"
#include "serve.h"
#include "store.h"
#include "util.h"
#include "worker.h"

/* Where migrations/ is, set by CMake: the source tree's and the installed
 * copy, and the installed binary's path to tell which one we are. */
#ifndef CONVNETD_MIGRATIONS_SOURCE
#define CONVNETD_MIGRATIONS_SOURCE "migrations"
#endif
#ifndef CONVNETD_MIGRATIONS_INSTALLED
#define CONVNETD_MIGRATIONS_INSTALLED "/usr/local/share/convnetd/migrations"
#endif
#ifndef CONVNETD_WEB_SOURCE
#define CONVNETD_WEB_SOURCE "web"
#endif
#ifndef CONVNETD_WEB_INSTALLED
#define CONVNETD_WEB_INSTALLED "/usr/local/share/convnetd/web"
#endif
#ifndef CONVNETD_INSTALLED_BINARY
#define CONVNETD_INSTALLED_BINARY "/usr/local/bin/convnetd"
#endif

/* The longest bearer token accepted (http.c compares that many bytes). */
#define TOKEN_MAX HTTP_TOKEN_MAX

/* The self-pipe: the one global, because a signal handler has no context
 * argument. Written by on_signal, read by wait_for_signal. */
static int signal_pipe[2] = { -1, -1 };

static void on_signal(int sig)
{
    int saved = errno;
    unsigned char b = (unsigned char)sig;
    /* If the pipe is full a signal is already pending; losing this one is fine. */
    ssize_t w = write(signal_pipe[1], &b, 1);
    (void)w;
    errno = saved;
}

static int setup_signals(void)
{
    struct sigaction sa;

    if (pipe(signal_pipe) != 0)
        return -1;
    for (int i = 0; i < 2; i++) {
        if (fcntl(signal_pipe[i], F_SETFD, FD_CLOEXEC) != 0 ||
            fcntl(signal_pipe[i], F_SETFL, O_NONBLOCK) != 0)
            return -1;
    }
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    if (sigaction(SIGTERM, &sa, NULL) != 0 || sigaction(SIGINT, &sa, NULL) != 0)
        return -1;
    /* A client that hangs up mid-reply must not kill the daemon, and
     * neither may a file-size limit (RLIMIT_FSIZE): with SIGXFSZ ignored
     * the write fails with EFBIG, and the job that wrote fails with it. */
    sa.sa_handler = SIG_IGN;
    if (sigaction(SIGXFSZ, &sa, NULL) != 0)
        return -1;
    return sigaction(SIGPIPE, &sa, NULL);
}

/* Blocks until SIGTERM or SIGINT; returns the signal number. */
static int wait_for_signal(void)
{
    struct pollfd pfd = { .fd = signal_pipe[0], .events = POLLIN };
    unsigned char b;

    for (;;) {
        if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
            return SIGTERM;   /* cannot wait any more: treat as a stop request */
        if (read(signal_pipe[0], &b, 1) == 1)
            return b;
    }
}

/* mkdir -p path with mode for the directories it creates. 0 or -1 + errno. */
static int make_dirs(const char *path, mode_t mode)
{
    char buf[CFG_PATH_MAX];
    struct stat st;
    size_t len = strlen(path);

    if (len >= sizeof buf) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(buf, path, len + 1);
    for (char *p = buf + 1; ; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(buf, mode) != 0 && errno != EEXIST)
                return -1;
            *p = c;
            if (c == '\0')
                break;
        }
    }
    if (stat(path, &st) != 0)
        return -1;
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

/* 127.0.0.0/8 or ::1. */
static int is_loopback(const struct sockaddr_storage *addr)
{
    if (addr->ss_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)addr)->sin_addr.s_addr) >> 24) == 127;
    if (addr->ss_family == AF_INET6) {
        static const unsigned char lo[16] = { [15] = 1 };
        return memcmp(&((const struct sockaddr_in6 *)addr)->sin6_addr, lo, 16) == 0;
    }
    return 0;
}

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* 1 when this process is the installed binary (not a build tree's). */
static int running_installed(void)
{
    char self[CFG_PATH_MAX], installed[CFG_PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);

    if (n <= 0)
        return 0;
    self[n] = '\0';
    /* The install prefix may itself be a symlink: compare real paths. */
    return realpath(CONVNETD_INSTALLED_BINARY, installed) != NULL &&
           strcmp(self, installed) == 0;
}

/* A data directory (migrations/, web/): the setting when given; else the
 * installed copy for the installed binary and the source tree's for a
 * build-tree binary, each falling back to the other. NULL when none
 * exists. */
static const char *data_dir(const char *setting, const char *source, const char *installed)
{
    int is_installed = running_installed();

    if (setting[0] != '\0')
        return setting;
    if (is_installed && is_dir(installed))
        return installed;
    if (is_dir(source))
        return source;
    if (is_dir(installed))
        return installed;
    return NULL;
}

static const char *migrations_dir(const cfg *c)
{
    return data_dir(c->migrations_dir, CONVNETD_MIGRATIONS_SOURCE, CONVNETD_MIGRATIONS_INSTALLED);
}

/* Resolves the dashboard's directory into a->web_dir (a real path, so the
 * file handler's containment check compares like with like). When none is
 * found by itself the API is served without its dashboard (a warning);
 * a web-dir setting that is not a directory is a settings error (-1). */
static int find_web_dir(app *a, const cfg *c, char *err, size_t errlen)
{
    const char *dir = data_dir(c->web_dir, CONVNETD_WEB_SOURCE, CONVNETD_WEB_INSTALLED);
    char real[PATH_MAX];

    a->web_dir[0] = '\0';
    if (dir == NULL || realpath(dir, real) == NULL || !is_dir(real) ||
        strlen(real) >= sizeof a->web_dir) {
        if (c->web_dir[0] != '\0') {
            snprintf(err, errlen, "web-dir %s: not a directory", c->web_dir);
            return -1;
        }
        log_warn("no dashboard: web directory %s not found (set --web-dir); the API is "
                 "served without it", dir != NULL ? dir : CONVNETD_WEB_INSTALLED);
        return 0;
    }
    memcpy(a->web_dir, real, strlen(real) + 1);   /* the length was checked above */
    log_info("dashboard files from %s", a->web_dir);
    return 0;
}

/* Fills a->devices from the device setting: "auto" is the CPU and every
 * GPU, "cpu" the CPU alone, "cuda:N" GPU N alone. Returns 0, or -1 with a
 * message in err when the asked-for GPU does not exist. */
static int find_devices(app *a, const cfg *c, char *err, size_t errlen)
{
    int want_cuda = cfg_device_cuda_index(c->device);
    device_desc *d;

    if (strcmp(c->device, "auto") == 0 || strcmp(c->device, "cpu") == 0) {
        d = &a->devices[a->ndevices++];
        snprintf(d->name, sizeof d->name, "cpu");
        d->cuda = -1;
        snprintf(d->info, sizeof d->info, "%d threads; %s", a->cpu_threads,
                 a->blas != NULL ? a->blas : "no BLAS");
    }
#ifdef CONVNETD_HAVE_CUDA
    a->have_cuda = 1;
    if (strcmp(c->device, "cpu") != 0) {
        int n = nn_cuda_device_count();
        if (want_cuda >= 0 && want_cuda >= n) {
            snprintf(err, errlen, "device: %s asked for, but the CUDA runtime sees %d GPU(s)",
                     c->device, n);
            return -1;
        }
        for (int i = 0; i < n && a->ndevices < APP_MAX_DEVICES; i++) {
            const char *gib;
            if (want_cuda >= 0 && i != want_cuda)
                continue;
            d = &a->devices[a->ndevices++];
            snprintf(d->name, sizeof d->name, "cuda:%d", i);
            d->cuda = i;
            if (nn_cuda_device_info(i, d->info, sizeof d->info) != NN_OK)
                log_warn("%s: %s", d->name, d->info);
            /* The info line ends in the memory, e.g. "139.8 GiB". */
            gib = strstr(d->info, " GiB");
            if (gib != NULL) {
                const char *p = gib;
                while (p > d->info && (p[-1] == '.' || (p[-1] >= '0' && p[-1] <= '9')))
                    p--;
                d->memory = (uint64_t)(strtod(p, NULL) * 1073741824.0);
            }
        }
    }
#else
    (void)want_cuda;
    (void)err;
    (void)errlen;
#endif
    return 0;
}

/* Reads the bearer token: the file's content without trailing whitespace,
 * 1..TOKEN_MAX bytes. Returns 0 or -1 with a message in err. */
static int read_token(const char *path, char *token, size_t size, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    size_t n;

    if (f == NULL) {
        snprintf(err, errlen, "token-file %s: %s", path, strerror(errno));
        return -1;
    }
    n = fread(token, 1, size - 1, f);
    if (n == size - 1 && fgetc(f) != EOF) {
        fclose(f);
        snprintf(err, errlen, "token-file %s: longer than %zu bytes", path, size - 2);
        return -1;
    }
    fclose(f);
    token[n] = '\0';
    while (n > 0 && (token[n - 1] == '\n' || token[n - 1] == '\r' ||
                     token[n - 1] == ' ' || token[n - 1] == '\t'))
        token[--n] = '\0';
    if (n == 0) {
        snprintf(err, errlen, "token-file %s is empty", path);
        return -1;
    }
    if (n > size - 2) {
        snprintf(err, errlen, "token-file %s: longer than %zu bytes", path, size - 2);
        return -1;
    }
    return 0;
}

/* "http://127.0.0.1:8080" or "http://[::1]:8080" for addr with port. */
static void format_url(char *out, size_t len, const struct sockaddr_storage *addr,
                       unsigned port)
{
    char host[INET6_ADDRSTRLEN] = "?";

    if (addr->ss_family == AF_INET6) {
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)addr)->sin6_addr,
                  host, sizeof host);
        snprintf(out, len, "http://[%s]:%u", host, port);
    } else {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)addr)->sin_addr,
                  host, sizeof host);
        snprintf(out, len, "http://%s:%u", host, port);
    }
}

int main(int argc, char **argv)
{
    static char token[TOKEN_MAX + 2];
    char err[CFG_PATH_MAX + 256], blas_line[NN_ERRLEN + 32], url[128], state[192];
    struct sockaddr_storage addr;
    socklen_t addrlen;
    cJSON_Hooks hooks = { .malloc_fn = xmalloc, .free_fn = free };
    http_server *server = NULL;
    worker *workers[APP_MAX_DEVICES] = { 0 };
    const char *mdir;
    struct stat st;
    cfg c;
    app a;
    long ncpu;
    int sig, rc = 1, from = 0, to = 0, requeued;

    log_init();
    switch (cfg_parse_args(&c, argc, argv, err, sizeof err)) {
    case CFG_HELP:
        cfg_usage(stdout);
        return 0;
    case CFG_VERSION:
        printf("convnetd %s\n", CONVNETD_VERSION);
        return 0;
    case CFG_ERROR:
        log_err("%s", err);
        return 2;
    case CFG_RUN:
        break;
    }
    /* Validated by the config table already; this cannot fail. */
    if (cfg_parse_listen(c.listen, &addr, &addrlen, err, sizeof err) != 0) {
        log_err("%s", err);
        return 2;
    }
#ifndef CONVNETD_HAVE_CUDA
    if (cfg_device_cuda_index(c.device) >= 0) {
        log_err("device: %s asked for, but this convnetd was built without CUDA", c.device);
        return 2;
    }
#endif

    memset(&a, 0, sizeof a);
    a.cfg = &c;
    a.started = time(NULL);
    log_info("version %s starting (pid %ld)", CONVNETD_VERSION, (long)getpid());
    /* cJSON's allocations follow the daemon's rule: OOM aborts, so no
     * handler has to treat a NULL from cJSON_Create* as a possibility. */
    cJSON_InitHooks(&hooks);

    /* Beyond loopback, anyone who can reach the port could submit, cancel
     * and pause jobs: that needs a token, and its absence is a settings
     * error, not a warning. */
    if (!is_loopback(&addr) && c.token_file[0] == '\0') {
        log_err("listen: %s is not a loopback address, and no token-file is set; "
                "set token-file (requests that change state then need it) or listen "
                "on 127.0.0.1 / [::1]", c.listen);
        return 2;
    }

    /* Settings errors first, before anything is created on disk. */
    if (c.token_file[0] != '\0') {
        if (read_token(c.token_file, token, sizeof token, err, sizeof err) != 0) {
            log_err("%s", err);
            rc = 2;
            goto fail;
        }
        a.token = token;
    }
    if (find_web_dir(&a, &c, err, sizeof err) != 0) {
        log_err("%s", err);
        rc = 2;
        goto fail;
    }

    if (make_dirs(c.state_dir, 0750) != 0 || access(c.state_dir, W_OK) != 0) {
        log_err("state-dir %s: %s", c.state_dir, strerror(errno));
        goto fail;
    }
    log_info("state directory %s", c.state_dir);
    /* Missing data is not fatal: jobs name their dataset, and only those
     * jobs fail. The daemon stays useful for models already trained. */
    if (stat(c.data_dir, &st) != 0 || !S_ISDIR(st.st_mode))
        log_warn("data-dir %s is not a directory; jobs that need datasets will fail",
                 c.data_dir);

    /* The store: one connection here for the HTTP threads; each worker
     * opens its own (see store.h). */
    snprintf(a.db_path, sizeof a.db_path, "%s/convnetd.db", c.state_dir);
    mdir = migrations_dir(&c);
    if (mdir == NULL) {
        log_err("cannot find the migrations directory (looked in %s and %s); "
                "set --migrations-dir", CONVNETD_MIGRATIONS_INSTALLED, CONVNETD_MIGRATIONS_SOURCE);
        goto fail;
    }
    if (store_open(&a.db, a.db_path, err, sizeof err) != 0 ||
        store_migrate(a.db, mdir, 0, &from, &to, err, sizeof err) != 0) {
        log_err("store: %s", err);
        goto fail;
    }
    if (to != STORE_SCHEMA_VERSION) {
        log_err("store: %s brings the schema to version %d, this convnetd needs %d",
                mdir, to, STORE_SCHEMA_VERSION);
        goto fail;
    }
    log_info("store %s: schema version %d%s (migrations from %s)", a.db_path, to,
             from != to ? " (migrated)" : "", mdir);

    ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    a.cpu_threads = c.threads > 0 ? (int)c.threads : (ncpu > 0 ? (int)ncpu : 1);
    nn_blas_set_threads(a.cpu_threads);
    /* Loading the BLAS now puts its cost and its log line at start-up
     * rather than in the first job. Without it the daemon still serves. */
    if (nn_blas_init(err) != NN_OK) {
        snprintf(blas_line, sizeof blas_line, "unavailable: %.*s", NN_ERRLEN, err);
        log_warn("BLAS %s", blas_line);
        a.blas = blas_line;
    } else {
        a.blas = nn_blas_info();
        log_info("BLAS: %s", a.blas);
    }
    log_info("device %s, %d CPU threads", c.device, a.cpu_threads);
    if (find_devices(&a, &c, err, sizeof err) != 0) {
        log_err("%s", err);
        rc = 2;
        goto fail;
    }
    for (int i = 0; i < a.ndevices; i++)
        log_info("device %s: %s", a.devices[i].name, a.devices[i].info);

    datasets_scan(&a.datasets, c.data_dir);
    a.jobs = jobs_create(&a);
    a.serve = serve_create(&a);
    a.models = models_create(&a);
    requeued = jobs_recover(a.jobs, a.db);
    if (requeued < 0) {
        log_err("store: cannot read the jobs left by the last run");
        goto fail;
    }
    for (int i = 0; i < a.ndevices; i++) {
        if (worker_start(&workers[i], &a, i, err, sizeof err) != 0) {
            log_err("%s", err);
            goto fail;
        }
    }

    if (setup_signals() != 0) {
        log_err("cannot install signal handlers: %s", strerror(errno));
        goto fail;
    }
    if (http_start(&server, http_routes, http_routes_count, &a,
                   (const struct sockaddr *)&addr, addrlen, err, sizeof err) != 0) {
        log_err("listen %s: %s", c.listen, err);
        goto fail;
    }
    format_url(url, sizeof url, &addr, http_port(server));
    /* Tests and scripts parse this line for the port: keep its format. */
    log_info("listening on %s", url);
    snprintf(state, sizeof state, "READY=1\nSTATUS=listening on %s", url);
    if (sdnotify_send(state) < 0)
        log_warn("sd_notify READY failed: %s", strerror(errno));

    sig = wait_for_signal();
    log_info("received %s, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
    if (sdnotify_send("STOPPING=1") < 0)
        log_warn("sd_notify STOPPING failed: %s", strerror(errno));
    rc = 0;

fail:
    /* Workers first: each running job finishes its minibatch and
     * checkpoints while HTTP still answers (event streams end at once). */
    if (a.jobs != NULL)
        jobs_shutdown(a.jobs);
    for (int i = 0; i < APP_MAX_DEVICES; i++)
        worker_join(workers[i]);
    http_stop(server);
    models_free(a.models);
    serve_free(a.serve);
    jobs_free(a.jobs);
    datasets_free(a.datasets);
    store_close(a.db);
    for (int i = 0; i < 2; i++)
        if (signal_pipe[i] >= 0)
            close(signal_pipe[i]);
    log_info(rc == 0 ? "stopped" : "exiting after an error");
    return rc;
}
