/* test_limits.c: access and connection limits of the real convnetd
 * (argv[1]).
 *
 * - Listening beyond loopback without a token-file is a settings error:
 *   exit 2 with a message, nothing created on disk.
 * - With a token-file, state-changing routes (POST, classify included)
 *   need "Authorization: Bearer <token>" (401 JSON otherwise); GETs stay
 *   open.
 * - max-connections and max-connections-per-ip: with N connections open
 *   (each confirmed by an answered keep-alive request), connection N+1 is
 *   closed without an answer while the N still answer; once they close,
 *   the daemon answers again. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "daemon_proc.h"
#include "http_client.h"

#define MAX_CONN 4
#define TOKEN "t0k3n-for-the-test"
#define AUTH "Authorization: Bearer " TOKEN "\r\n"
#define JSON_CT "Content-Type: application/json\r\n"

static const char spec[] =
    "{\"name\":\"auth\",\"dataset\":{\"name\":\"synth\",\"val_fraction\":0.2,\"limit\":100},"
    "\"model\":{\"preset\":\"three_layer_convnet\",\"num_filters\":2,\"hidden_dim\":8},"
    "\"solver\":{\"epochs\":1,\"batch_size\":20},\"device\":\"" TEST_DEVICE "\"}";

static void sleep_ms(int ms)
{
    struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

/* Runs binary with args to its exit (at most 20 s); returns the wait status. */
static int run_to_exit(const char *binary, const char *const *args, const char *log)
{
    double deadline = tj_now() + 20;
    int status = -1;
    pid_t pid = fork();

    if (pid < 0)
        return -1;
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, STDERR_FILENO);
            dup2(fd, STDOUT_FILENO);
            close(fd);
        }
        execv(binary, (char *const *)args);
        _exit(127);
    }
    while (tj_now() < deadline) {
        if (waitpid(pid, &status, WNOHANG) == pid)
            return status;
        sleep_ms(20);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return -1;
}

static int file_contains(const char *path, const char *needle)
{
    char buf[8192];
    FILE *f = fopen(path, "r");
    size_t n;

    if (f == NULL)
        return 0;
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return strstr(buf, needle) != NULL;
}

static void test_non_loopback(const char *binary, const char *tmp)
{
    char state[512], log[512];
    const char *args[12];
    struct stat st;
    int status;

    snprintf(state, sizeof state, "%s/nl-state", tmp);
    snprintf(log, sizeof log, "%s/nl.log", tmp);
    args[0] = "convnetd";
    args[1] = "--listen";
    args[2] = "0.0.0.0:0";
    args[3] = "--state-dir";
    args[4] = state;
    args[5] = "--data-dir";
    args[6] = tmp;
    args[7] = NULL;
    status = run_to_exit(binary, args, log);
    CHECKF(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 2,
           "0.0.0.0 without a token: status %d", status);
    CHECK(file_contains(log, "not a loopback address"));
    CHECK(stat(state, &st) != 0);   /* nothing created */
    args[2] = "[::]:0";
    status = run_to_exit(binary, args, log);
    CHECKF(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 2,
           "[::] without a token: status %d", status);
}

/* Sends the request and returns the status (0: no reply); a 401's body
 * must be the API's error document with code "unauthorized". */
static int req(unsigned port, const char *method, const char *path, const char *headers,
               const char *body)
{
    hc_reply r;
    int status;

    if (hc_request(port, method, path, headers, body, body != NULL ? strlen(body) : 0, &r) != 0)
        return 0;
    status = r.status;
    if (status == 401) {
        cJSON *doc = cJSON_Parse(r.body);
        CHECKF(strcmp(tj_str(doc, "error.code"), "unauthorized") == 0, "401 body: %s", r.body);
        cJSON_Delete(doc);
    }
    hc_free(&r);
    return status;
}

static void test_token(unsigned port)
{
    CHECK(req(port, "POST", "/v1/jobs", JSON_CT, spec) == 401);
    CHECK(req(port, "POST", "/v1/jobs", JSON_CT "Authorization: Bearer wrong\r\n", spec) == 401);
    CHECK(req(port, "POST", "/v1/jobs", JSON_CT "Authorization: Bearer " TOKEN "x\r\n", spec) ==
          401);
    CHECK(req(port, "POST", "/v1/jobs", JSON_CT "Authorization: Basic " TOKEN "\r\n", spec) ==
          401);
    CHECK(req(port, "POST", "/v1/jobs/1/cancel", NULL, NULL) == 401);
    CHECK(req(port, "POST", "/v1/models/1/classify", "Content-Type: image/png\r\n", "x") == 401);
    CHECK(req(port, "POST", "/v2/models/1/infer", JSON_CT, "{}") == 401);
    CHECK(req(port, "GET", "/v1/jobs", NULL, NULL) == 200);
    CHECK(req(port, "GET", "/v1/health", NULL, NULL) == 200);
    CHECK(req(port, "POST", "/v1/jobs", JSON_CT AUTH, spec) == 201);
    CHECK(req(port, "GET", "/v1/jobs/1", NULL, NULL) == 200);
}

static int connect_lo(unsigned port)
{
    struct sockaddr_in sa;
    /* Generous: only a broken daemon makes a recv wait this long. */
    struct timeval tv = { .tv_sec = 30 };
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((unsigned short)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* One keep-alive GET /v1/health on the open connection fd; returns the
 * status once the whole reply (head and Content-Length body) is in, and
 * leaves the connection open. 0: the daemon closed or reset it unanswered. */
static int keepalive_health(int fd)
{
    static const char get[] = "GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n";
    char buf[4096], *sep, *line;
    size_t got = 0, need = 0;
    int status = 0;

    if (send(fd, get, sizeof get - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof get - 1))
        return 0;
    for (;;) {
        ssize_t n = recv(fd, buf + got, sizeof buf - 1 - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return 0;
        got += (size_t)n;
        buf[got] = '\0';
        sep = strstr(buf, "\r\n\r\n");
        if (sep != NULL && need == 0) {
            if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
                return 0;
            for (line = strstr(buf, "\r\n"); line != NULL && line < sep;
                 line = strstr(line + 2, "\r\n"))
                if (strncasecmp(line + 2, "Content-Length:", 15) == 0)
                    break;
            if (line == NULL || line >= sep)
                return 0;
            need = (size_t)(sep + 4 - buf) + strtoul(line + 17, NULL, 10);
        }
        if (need != 0 && got >= need)
            return status;
        if (got == sizeof buf - 1)
            return 0;
    }
}

/* What became of a connection sent one request: answered (bytes came
 * back), closed (EOF or reset, nothing read), or neither before the
 * receive timeout. */
enum fate { FATE_ANSWERED, FATE_CLOSED, FATE_SILENT };

static enum fate request_fate(int fd)
{
    static const char get[] = "GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    char buf[256];
    ssize_t n;

    /* Sending may fail when the daemon has already closed it: fine. */
    (void)send(fd, get, sizeof get - 1, MSG_NOSIGNAL);
    do
        n = recv(fd, buf, sizeof buf, 0);
    while (n < 0 && errno == EINTR);
    if (n > 0)
        return FATE_ANSWERED;
    if (n == 0 || errno == ECONNRESET || errno == EPIPE)
        return FATE_CLOSED;
    return FATE_SILENT;
}

/* With limit connections open, one more is closed unanswered; once they
 * close, the daemon answers again. what names the setting under test.
 *
 * connect() returning says only that the kernel completed the handshake;
 * libmicrohttpd counts a connection from its accept until its thread has
 * been reaped, which on a loaded machine can be well after the client saw
 * the reply. So a connection of an earlier request may still hold a slot,
 * and one of ours be the one refused. Each of the limit connections is
 * therefore confirmed by a keep-alive request answered on it (refused ones
 * are retried), and confirmed again after the extra one, so the refusal is
 * known to have happened with exactly those open. */
static void test_connection_limit(unsigned port, int limit, const char *what)
{
    static const char *const fates[] = { "ANSWERED", "closed unanswered",
                                         "neither answered nor closed" };
    int fds[MAX_CONN], held = 0, retries = 0, extra, answered = 0;
    enum fate fate = FATE_SILENT;
    double deadline;

    if (limit > MAX_CONN)
        return;
    deadline = tj_now() + 30;
    while (held < limit && tj_now() < deadline) {
        int fd = connect_lo(port);
        if (fd >= 0 && keepalive_health(fd) == 200) {
            fds[held++] = fd;
            continue;
        }
        if (fd >= 0)
            close(fd);
        retries++;
        sleep_ms(20);
    }
    CHECKF(held == limit, "%s %d: only %d connections held open in 30 s", what, limit, held);
    if (held == limit) {
        extra = connect_lo(port);
        CHECK(extra >= 0);
        if (extra >= 0) {
            fate = request_fate(extra);
            close(extra);
        }
        printf("%s: connection %d of %d: %s (%d refused while opening the %d)\n", what,
               limit + 1, limit, fates[fate], retries, limit);
        CHECKF(fate == FATE_CLOSED, "%s %d: connection %d %s", what, limit, limit + 1,
               fates[fate]);
        /* The held connections were open all along and still answer. */
        for (int i = 0; i < held; i++)
            CHECKF(keepalive_health(fds[i]) == 200, "%s %d: held connection %d lost", what,
                   limit, i + 1);
    }
    for (int i = 0; i < held; i++)
        close(fds[i]);
    /* The daemon notices the closes on its own threads, and frees the slots
     * when it reaps them: wait for an answer, with room for a loaded host. */
    deadline = tj_now() + 30;
    while (!answered && tj_now() < deadline) {
        answered = req(port, "GET", "/v1/health", NULL, NULL) == 200;
        if (!answered)
            sleep_ms(50);
    }
    CHECKF(answered, "%s %d: /v1/health not answered in 30 s after the connections closed",
           what, limit);
}

int main(int argc, char **argv)
{
    char tokfile[512], maxconn[16];
    const char *extra[8];
    FILE *f;
    dproc d;
    int st;

    dp_dirs dirs;
    int rc = dp_setup(&dirs, "convnetd-limits", argc, argv);
    if (rc != 0)
        return rc;
    const char *tmp = dirs.tmp, *state = dirs.state, *data = dirs.data, *log = dirs.log;
    snprintf(tokfile, sizeof tokfile, "%s/token", tmp);
    if (tj_write_synth(data, "synth", 120, 12, 12, 3, 3) != 0)
        return 1;
    f = fopen(tokfile, "w");
    if (f == NULL)
        return 1;
    fprintf(f, "%s\n", TOKEN);
    fclose(f);

    test_non_loopback(argv[1], tmp);

    snprintf(maxconn, sizeof maxconn, "%d", MAX_CONN);
    extra[0] = "--token-file";
    extra[1] = tokfile;
    extra[2] = "--max-connections";
    extra[3] = maxconn;
    extra[4] = NULL;
    if (dp_start(&d, argv[1], state, data, log, extra) != 0)
        return 1;
    test_token(d.port);
    test_connection_limit(d.port, MAX_CONN, "max-connections");
    st = dp_stop(&d, SIGTERM, 30);
    CHECKF(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status %d", st);

    /* Per client address: every test connection comes from 127.0.0.1. */
    extra[2] = "--max-connections-per-ip";
    snprintf(maxconn, sizeof maxconn, "%d", MAX_CONN - 2);
    if (dp_start(&d, argv[1], state, data, log, extra) != 0)
        return 1;
    test_connection_limit(d.port, MAX_CONN - 2, "max-connections-per-ip");
    st = dp_stop(&d, SIGTERM, 30);
    CHECKF(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status %d", st);
    dp_cleanup(&dirs, check_failures);
    return check_result("daemon_limits");
}
