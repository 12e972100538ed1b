/* test_http_smoke.c: runs the real convnetd binary (argv[1]) on 127.0.0.1
 * port 0 with a fresh state directory, and talks HTTP to it over loopback.
 *
 * Checks start-up (the listening log line, the state dir, sd_notify READY=1
 * on an abstract socket), three requests (200, 404, 405 + Allow), and a
 * clean SIGTERM shutdown (STOPPING=1, exit 0); also that a bad option exits
 * 2 and --version exits 0. Not a load or fuzz test. */
#define _XOPEN_SOURCE 700   /* nftw */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "check.h"
#include "http_client.h"

static const char *binary;
static char tmpdir[] = "/tmp/convnetd-smoke-XXXXXX";

/* The child's stderr, accumulated; lines are echoed to ours for ctest logs. */
static char logbuf[64 * 1024];
static size_t loglen;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Reads what fd has within timeout_ms into logbuf. Returns bytes read, 0 at
 * EOF or timeout, -1 on error. */
static ssize_t pump_log(int fd, int timeout_ms)
{
    struct pollfd pfd = { .fd = fd, .events = POLLIN };
    ssize_t n;

    if (poll(&pfd, 1, timeout_ms) <= 0)
        return 0;
    if (loglen >= sizeof logbuf - 1)
        loglen = 0;   /* shortcut: a runaway log only loses old lines */
    n = read(fd, logbuf + loglen, sizeof logbuf - 1 - loglen);
    if (n > 0) {
        fwrite(logbuf + loglen, 1, (size_t)n, stderr);
        loglen += (size_t)n;
        logbuf[loglen] = '\0';
    }
    return n;
}

/* Starts the binary with args (NULL-terminated, argv[0] excluded) and
 * NOTIFY_SOCKET set to notify (or unset if NULL). Returns the pid; *errfd
 * is the read end of its stderr. */
static pid_t spawn(const char *const args[], const char *notify, int *errfd)
{
    int p[2];
    pid_t pid;

    if (pipe(p) != 0)
        return -1;
    pid = fork();
    if (pid == 0) {
        const char *argv[16];
        int n = 0;
        argv[n++] = "convnetd";
        while (args[n - 1] != NULL && n < 15) {
            argv[n] = args[n - 1];
            n++;
        }
        argv[n] = NULL;
        dup2(p[1], STDERR_FILENO);
        dup2(p[1], STDOUT_FILENO);
        close(p[0]);
        close(p[1]);
        if (notify != NULL)
            setenv("NOTIFY_SOCKET", notify, 1);
        else
            unsetenv("NOTIFY_SOCKET");
        unsetenv("JOURNAL_STREAM");
        execv(binary, (char *const *)argv);
        _exit(127);
    }
    close(p[1]);
    *errfd = p[0];
    return pid;
}

/* Waits up to timeout_s for pid; returns its wait status or -1 on timeout. */
static int wait_exit(pid_t pid, int errfd, double timeout_s)
{
    double end = now_s() + timeout_s;
    int status;

    while (now_s() < end) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            return status;
        if (r < 0)
            return -1;
        if (errfd >= 0)
            pump_log(errfd, 50);
        else
            usleep(50 * 1000);
    }
    return -1;
}

/* Receives one datagram from fd within timeout_ms into buf. */
static int recv_notify(int fd, char *buf, size_t len, int timeout_ms)
{
    struct pollfd pfd = { .fd = fd, .events = POLLIN };
    ssize_t n;

    buf[0] = '\0';
    if (poll(&pfd, 1, timeout_ms) <= 0)
        return -1;
    n = recv(fd, buf, len - 1, 0);
    if (n < 0)
        return -1;
    buf[n] = '\0';
    return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* A bad option exits 2 with a message; --version exits 0. */
static void test_exit_codes(void)
{
    const char *bad[] = { "--threads", "99999", NULL };
    const char *ver[] = { "--version", NULL };
    int fd, st;
    pid_t pid;

    loglen = 0;
    pid = spawn(bad, NULL, &fd);
    st = wait_exit(pid, fd, 10);
    while (pump_log(fd, 100) > 0)
        ;
    CHECKF(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 2, "status %d", st);
    CHECK(strstr(logbuf, "convnetd: threads: 99999 is out of range") != NULL);
    close(fd);

    loglen = 0;
    logbuf[0] = '\0';
    pid = spawn(ver, NULL, &fd);
    st = wait_exit(pid, fd, 10);
    while (pump_log(fd, 100) > 0)
        ;
    CHECKF(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d", st);
    CHECK(strncmp(logbuf, "convnetd " CONVNETD_VERSION, 9 + strlen(CONVNETD_VERSION)) == 0);
    close(fd);
}

static void test_requests(unsigned port)
{
    char hdr[128];
    hc_reply r;
    cJSON *doc;

    if (hc_request(port, "GET", "/v1/health", NULL, NULL, 0, &r) == 0) {
        CHECKF(r.status == 200, "status %d", r.status);
        CHECK(hc_header(&r, "Content-Type", hdr, sizeof hdr) != NULL &&
              strcmp(hdr, "application/json") == 0);
        doc = cJSON_Parse(r.body);
        CHECKF(doc != NULL, "body: %s", r.body);
        CHECK(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(doc, "status")) != NULL &&
              strcmp(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(doc, "status")),
                     "ok") == 0);
        CHECK(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(doc, "version")) != NULL &&
              strcmp(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(doc, "version")),
                     CONVNETD_VERSION) == 0);
        CHECK(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(doc, "devices")) >= 1);
        CHECK(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(doc, "blas")));
        cJSON_Delete(doc);
        hc_free(&r);
    } else CHECK(!"GET /v1/health failed");

    if (hc_request(port, "GET", "/nope", NULL, NULL, 0, &r) == 0) {
        CHECKF(r.status == 404, "status %d", r.status);
        doc = cJSON_Parse(r.body);
        CHECK(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
                  cJSON_GetObjectItemCaseSensitive(doc, "error"), "code")) != NULL &&
              strcmp(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
                         cJSON_GetObjectItemCaseSensitive(doc, "error"), "code")),
                     "not_found") == 0);
        cJSON_Delete(doc);
        hc_free(&r);
    } else CHECK(!"GET /nope failed");

    if (hc_request(port, "POST", "/v1/health", NULL, "{}", 2, &r) == 0) {
        CHECKF(r.status == 405, "status %d", r.status);
        CHECK(hc_header(&r, "Allow", hdr, sizeof hdr) != NULL && strstr(hdr, "GET") != NULL);
        doc = cJSON_Parse(r.body);
        CHECK(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
                  cJSON_GetObjectItemCaseSensitive(doc, "error"), "code")) != NULL &&
              strcmp(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
                         cJSON_GetObjectItemCaseSensitive(doc, "error"), "code")),
                     "method_not_allowed") == 0);
        cJSON_Delete(doc);
        hc_free(&r);
    } else CHECK(!"POST /v1/health failed");
}

int main(int argc, char **argv)
{
    static const char prefix[] = "convnetd: listening on http://127.0.0.1:";
    char state[600], notify_name[108], msg[512];
    const char *args[9];
    struct sockaddr_un sun;
    struct stat st;
    unsigned port = 0;
    double deadline;
    int nfd, errfd = -1, status;
    pid_t pid;

    if (argc != 2) {
        fprintf(stderr, "usage: %s PATH-TO-CONVNETD\n", argv[0]);
        return 2;
    }
    binary = argv[1];
    signal(SIGPIPE, SIG_IGN);
    if (mkdtemp(tmpdir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    test_exit_codes();

    /* An abstract notify socket, as systemd's own tests use. */
    nfd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    memset(&sun, 0, sizeof sun);
    sun.sun_family = AF_UNIX;
    snprintf(notify_name, sizeof notify_name, "@convnetd-smoke-%ld", (long)getpid());
    memcpy(sun.sun_path, notify_name, strlen(notify_name));
    sun.sun_path[0] = '\0';
    if (nfd < 0 || bind(nfd, (struct sockaddr *)&sun,
                        (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
                                    strlen(notify_name))) != 0) {
        perror("notify socket");
        return 1;
    }

    /* A state dir two levels below an existing one: convnetd must create it. */
    snprintf(state, sizeof state, "%s/state/convnetd", tmpdir);
    args[0] = "--listen";
    args[1] = "127.0.0.1:0";
    args[2] = "--state-dir";
    args[3] = state;
    args[4] = "--data-dir";
    args[5] = tmpdir;
    args[6] = "--threads";
    args[7] = "1";
    args[8] = NULL;
    loglen = 0;
    logbuf[0] = '\0';
    pid = spawn(args, notify_name, &errfd);
    CHECK(pid > 0);
    if (pid <= 0)
        return check_result("daemon_http_smoke");

    deadline = now_s() + 30;
    while (port == 0 && now_s() < deadline) {
        char *at;
        if (pump_log(errfd, 200) < 0)
            break;
        at = strstr(logbuf, prefix);
        if (at != NULL && strchr(at, '\n') != NULL)
            port = (unsigned)strtoul(at + sizeof prefix - 1, NULL, 10);
        if (waitpid(pid, &status, WNOHANG) == pid) {
            fprintf(stderr, "convnetd exited early, status %d\n", status);
            pid = -1;
            break;
        }
    }
    CHECKF(port > 0 && port < 65536, "no listening line in: %s", logbuf);
    if (port > 0) {
        CHECK(recv_notify(nfd, msg, sizeof msg, 5000) == 0);
        CHECKF(strstr(msg, "READY=1") != NULL, "notify: '%s'", msg);
        CHECK(stat(state, &st) == 0 && S_ISDIR(st.st_mode));
        test_requests(port);
    }
    if (pid > 0) {
        CHECK(kill(pid, SIGTERM) == 0);
        status = wait_exit(pid, errfd, 20);
        if (status == -1) {
            fprintf(stderr, "convnetd ignored SIGTERM; killing it\n");
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            CHECK(!"exit within 20 s of SIGTERM");
        } else {
            CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d", status);
        }
        CHECK(recv_notify(nfd, msg, sizeof msg, 5000) == 0);
        CHECKF(strstr(msg, "STOPPING=1") != NULL, "notify: '%s'", msg);
        while (pump_log(errfd, 100) > 0)
            ;
        CHECK(strstr(logbuf, "convnetd: received SIGTERM, shutting down") != NULL);
        CHECK(strstr(logbuf, "convnetd: stopped") != NULL);
    }
    close(nfd);
    if (errfd >= 0)
        close(errfd);
    nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return check_result("daemon_http_smoke");
}
