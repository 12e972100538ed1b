/* test_bad_requests.c: a catalogue of hostile and broken requests against
 * the real convnetd (argv[1]) on loopback. Every case must get a 4xx with
 * the API's JSON error body ({"error":{"code","message",...}}; the KServe
 * routes' {"error":"..."}), the daemon must keep serving (GET /v1/health
 * 200 after each), and nothing may be written: the jobs list and the
 * store's row counts are the same after the catalogue as before. Trickled
 * requests must be dropped after --request-timeout. Names with SQL
 * metacharacters come last: they are valid names, so they are accepted,
 * and must round-trip verbatim with the jobs table intact.
 *
 * One line per case (name, status, code) on stdout, then the count. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>
#include <zlib.h>

#include "check.h"
#include "daemon_proc.h"
#include "http_client.h"

#define H 12
#define W 12
#define K 3
#define REQUEST_TIMEOUT_S 2
#define MAX_BODY (1024 * 1024)   /* --max-body: caps classify and infer */

#define DS "\"dataset\":{\"name\":\"synth\",\"val_fraction\":0.2,\"limit\":200}"
#define MODEL "\"model\":{\"preset\":\"three_layer_convnet\",\"num_filters\":2,\"hidden_dim\":8}"
#define SOLVER "\"solver\":{\"epochs\":1,\"batch_size\":20}"
#define JSON_CT "Content-Type: application/json\r\n"

static unsigned port;
static int ncases;      /* cases answered as required */
static int nrun;        /* cases run */

/* SHAPE_MHD: a request libmicrohttpd refuses itself, before any callback
 * (a Content-Length that does not fit 64 bits): its own HTML page is the
 * answer, as libmicrohttpd 0.9 offers no hook to replace it. */
typedef enum shape { SHAPE_V1, SHAPE_KSERVE, SHAPE_MHD } shape;

/* ---- requests ---- */

/* "METHOD path HTTP/1.1" with Host and Connection: close, the extra header
 * lines (CRLF-terminated, may be NULL), Content-Length when body != NULL
 * and with_length, then the body. malloc'd; *len gets its size. */
static char *build(const char *method, const char *path, const char *headers,
                   const void *body, size_t blen, int with_length, size_t *len)
{
    size_t cap = strlen(method) + strlen(path) + (headers ? strlen(headers) : 0) + blen + 256;
    char *r = malloc(cap);
    int n;

    if (r == NULL)
        abort();
    n = snprintf(r, cap, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s",
                 method, path, headers != NULL ? headers : "");
    if (body != NULL && with_length)
        n += snprintf(r + n, cap - (size_t)n, "Content-Length: %zu\r\n", blen);
    n += snprintf(r + n, cap - (size_t)n, "\r\n");
    if (body != NULL) {
        memcpy(r + n, body, blen);
        n += (int)blen;
    }
    *len = (size_t)n;
    return r;
}

static int health_ok(void)
{
    hc_reply r;
    int ok = hc_request(port, "GET", "/v1/health", NULL, NULL, 0, &r) == 0 && r.status == 200;
    if (r.raw != NULL)
        hc_free(&r);
    return ok;
}

/* Sends raw (len bytes) and checks the answer: want (0 = any 4xx), the
 * error shape, an Allow header for 405, then that the daemon still
 * answers. Prints "case <name>: <status> <code>". */
static void run_raw(const char *name, const char *raw, size_t len, int want, shape sh)
{
    hc_reply r;
    cJSON *doc = NULL;
    const char *code = "-";
    int ok;

    nrun++;
    if (hc_raw(port, raw, len, &r) != 0) {
        printf("case %-44s no reply\n", name);
        CHECKF(0, "%s: no reply", name);
        CHECKF(health_ok(), "%s: the daemon stopped answering", name);
        return;
    }
    doc = cJSON_ParseWithLength(r.body, r.body_len);
    if (sh == SHAPE_V1) {
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(doc, "error");
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(e, "code");
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(e, "message");
        ok = cJSON_IsString(c) && cJSON_IsString(m) && m->valuestring[0] != '\0';
        if (cJSON_IsString(c))
            code = c->valuestring;
    } else if (sh == SHAPE_KSERVE) {
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(doc, "error");
        ok = cJSON_IsString(e) && e->valuestring[0] != '\0';
        code = "kserve";
    } else {
        ok = 1;
        code = "(libmicrohttpd)";
    }
    printf("case %-44s %d %s\n", name, r.status, code);
    CHECKF(r.status >= 400 && r.status < 500, "%s: status %d, want 4xx", name, r.status);
    CHECKF(want == 0 || r.status == want, "%s: status %d, want %d", name, r.status, want);
    CHECKF(ok, "%s: not an error document: %.200s", name, r.body);
    if (r.status == 405) {
        char allow[128];
        CHECKF(hc_header(&r, "Allow", allow, sizeof allow) != NULL && allow[0] != '\0',
               "%s: 405 without Allow", name);
    }
    if (r.status >= 400 && r.status < 500 && (want == 0 || r.status == want) && ok)
        ncases++;
    cJSON_Delete(doc);
    hc_free(&r);
    CHECKF(health_ok(), "%s: the daemon stopped answering", name);
}

static void run(const char *name, const char *method, const char *path, const char *headers,
                const char *body, int want, shape sh)
{
    size_t len;
    char *raw = build(method, path, headers, body, body != NULL ? strlen(body) : 0, 1, &len);
    run_raw(name, raw, len, want, sh);
    free(raw);
}

/* A body of blen bytes (binary). */
static void run_bin(const char *name, const char *method, const char *path,
                    const char *headers, const void *body, size_t blen, int want, shape sh)
{
    size_t len;
    char *raw = build(method, path, headers, body, blen, 1, &len);
    run_raw(name, raw, len, want, sh);
    free(raw);
}

/* body sent chunked (Transfer-Encoding: chunked), in 8 KiB chunks. */
static void run_chunked(const char *name, const char *path, const char *headers,
                        const char *body, size_t blen, int want)
{
    char hdrs[512];
    size_t cap = blen + blen / 8192 * 16 + 64, n = 0, len;
    char *chunks = malloc(cap), *raw;

    if (chunks == NULL)
        abort();
    for (size_t off = 0; off < blen; off += 8192) {
        size_t k = blen - off < 8192 ? blen - off : 8192;
        n += (size_t)snprintf(chunks + n, cap - n, "%zx\r\n", k);
        memcpy(chunks + n, body + off, k);
        n += k;
        memcpy(chunks + n, "\r\n", 2);
        n += 2;
    }
    memcpy(chunks + n, "0\r\n\r\n", 5);
    n += 5;
    snprintf(hdrs, sizeof hdrs, "%sTransfer-Encoding: chunked\r\n", headers);
    raw = build("POST", path, hdrs, chunks, n, 0, &len);
    run_raw(name, raw, len, want, SHAPE_V1);
    free(raw);
    free(chunks);
}

/* Sends the first bytes of a request, then nothing: the daemon must close
 * the connection within about REQUEST_TIMEOUT_S (not hold a thread for
 * ever). Passes when the connection ends (EOF, reset, or a 4xx reply)
 * within 4x the timeout. */
static void run_trickle(const char *name, const char *partial)
{
    struct sockaddr_in sa;
    struct timeval tv = { .tv_sec = 4 * REQUEST_TIMEOUT_S };
    char buf[4096];
    double t0 = tj_now(), dt;
    int fd = socket(AF_INET, SOCK_STREAM, 0), closed = 0, status = 0;

    nrun++;
    CHECK(fd >= 0);
    if (fd < 0)
        return;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((unsigned short)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
        send(fd, partial, strlen(partial), MSG_NOSIGNAL) == (ssize_t)strlen(partial)) {
        for (;;) {
            ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
            if (n > 0) {
                buf[n] = '\0';
                if (status == 0)
                    sscanf(buf, "HTTP/1.%*d %d", &status);
                continue;
            }
            closed = n == 0 || errno == ECONNRESET;
            break;
        }
    }
    close(fd);
    dt = tj_now() - t0;
    printf("case %-44s %s after %.1f s (%d)\n", name, closed ? "closed" : "HELD", dt, status);
    CHECKF(closed && dt < 4 * REQUEST_TIMEOUT_S, "%s: connection held %.1f s", name, dt);
    CHECKF(status == 0 || (status >= 400 && status < 500), "%s: status %d", name, status);
    if (closed && (status == 0 || status < 500))
        ncases++;
    CHECKF(health_ok(), "%s: the daemon stopped answering", name);
}

/* ---- bodies made at run time ---- */

static void put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* A PNG of the signature, an IHDR declaring w x h 8-bit grey (correct CRC)
 * and, with idat, a tiny IDAT and IEND: the shape of a decompression bomb,
 * whose header alone must get it refused. 57 bytes into out. */
static size_t png_header(unsigned char *out, uint32_t w, uint32_t h, int idat)
{
    static const unsigned char sig[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };
    size_t n = 0;

    memcpy(out, sig, 8);
    n = 8;
    put32(out + n, 13);
    memcpy(out + n + 4, "IHDR", 4);
    put32(out + n + 8, w);
    put32(out + n + 12, h);
    out[n + 16] = 8;   /* bit depth */
    out[n + 17] = 0;   /* grey */
    out[n + 18] = 0;
    out[n + 19] = 0;
    out[n + 20] = 0;
    put32(out + n + 21, (uint32_t)crc32(0, out + n + 4, 17));
    n += 25;
    if (idat) {
        static const unsigned char z[] = { 0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01 };
        put32(out + n, sizeof z);
        memcpy(out + n + 4, "IDAT", 4);
        memcpy(out + n + 8, z, sizeof z);
        put32(out + n + 8 + sizeof z, (uint32_t)crc32(0, out + n + 4, 4 + sizeof z));
        n += 12 + sizeof z;
        put32(out + n, 0);
        memcpy(out + n + 4, "IEND", 4);
        put32(out + n + 8, (uint32_t)crc32(0, out + n + 4, 4));
        n += 12;
    }
    return n;
}

/* n copies of open followed by n of close, NUL-terminated. */
static char *nested(size_t n, const char *open, const char *close)
{
    size_t lo = strlen(open), lc = strlen(close);
    char *s = malloc(n * (lo + lc) + 1), *p = s;
    if (s == NULL)
        abort();
    for (size_t i = 0; i < n; i++, p += lo)
        memcpy(p, open, lo);
    for (size_t i = 0; i < n; i++, p += lc)
        memcpy(p, close, lc);
    *p = '\0';
    return s;
}

/* ---- the store ---- */

typedef struct counts {
    long long jobs, metrics, checkpoints, evaluations;
} counts;

static long long count_rows(sqlite3 *db, const char *table)
{
    char sql[128];
    sqlite3_stmt *st = NULL;
    long long n = -1;

    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", table);
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
}

static int read_counts(const char *dbpath, counts *c)
{
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READONLY, NULL);

    if (rc == SQLITE_OK) {
        sqlite3_busy_timeout(db, 5000);
        c->jobs = count_rows(db, "jobs");
        c->metrics = count_rows(db, "metrics");
        c->checkpoints = count_rows(db, "checkpoints");
        c->evaluations = count_rows(db, "evaluations");
    }
    sqlite3_close(db);
    return rc == SQLITE_OK && c->jobs >= 0 && c->metrics >= 0 && c->checkpoints >= 0 &&
                   c->evaluations >= 0 ? 0 : -1;
}

/* The name stored for job id, malloc'd, or NULL. */
static char *stored_name(const char *dbpath, long id)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    char *name = NULL;

    if (sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, "SELECT name FROM jobs WHERE id = ?", -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, id);
        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0) != NULL)
            name = strdup((const char *)sqlite3_column_text(st, 0));
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return name;
}

static char *jobs_list(void)
{
    hc_reply r;
    char *s = NULL;
    if (hc_request(port, "GET", "/v1/jobs?limit=100", NULL, NULL, 0, &r) == 0) {
        if (r.status == 200)
            s = strdup(r.body);
        hc_free(&r);
    }
    return s;
}

/* ---- the catalogue ---- */

static void catalogue(long job)
{
    char path[256], big_cl[128];
    unsigned char png[128];
    size_t n;
    char *s, *big;

    /* Malformed JSON. */
    run("empty body", "POST", "/v1/jobs", JSON_CT, "", 400, SHAPE_V1);
    run("no body at all", "POST", "/v1/jobs", JSON_CT, NULL, 400, SHAPE_V1);
    run("truncated object", "POST", "/v1/jobs", JSON_CT, "{\"name\":\"x\",", 400, SHAPE_V1);
    run("not JSON", "POST", "/v1/jobs", JSON_CT, "name=x&epochs=3", 400, SHAPE_V1);
    run("trailing garbage", "POST", "/v1/jobs", JSON_CT, "{} {}", 400, SHAPE_V1);
    /* A job the daemon would accept, then more: refused as a whole. */
    run("valid job, then garbage", "POST", "/v1/jobs", JSON_CT,
        "{\"name\":\"tail\"," DS "," MODEL "," SOLVER ",\"device\":\"" TEST_DEVICE "\"} x", 400, SHAPE_V1);
    run("valid job, then a second object", "POST", "/v1/jobs", JSON_CT,
        "{\"name\":\"tail\"," DS "," MODEL "," SOLVER ",\"device\":\"" TEST_DEVICE "\"}\n{}", 400,
        SHAPE_V1);
    run("JSON null", "POST", "/v1/jobs", JSON_CT, "null", 400, SHAPE_V1);
    run("JSON array", "POST", "/v1/jobs", JSON_CT, "[1,2,3]", 400, SHAPE_V1);
    run("JSON string", "POST", "/v1/jobs", JSON_CT, "\"job\"", 400, SHAPE_V1);
    run("NaN literal", "POST", "/v1/jobs", JSON_CT,
        "{" DS "," MODEL ",\"solver\":{\"learning_rate\":NaN}}", 400, SHAPE_V1);
    s = nested(60000, "[", "]");   /* 120 KB: over the 64 KiB limit, chunked */
    run_chunked("100000-deep [ (60000, chunked)", "/v1/jobs", JSON_CT, s, strlen(s), 413);
    free(s);
    s = nested(30000, "[", "]");   /* 60 KB: under the limit, parsed */
    run("30000-deep [ (parsed)", "POST", "/v1/jobs", JSON_CT, s, 400, SHAPE_V1);
    free(s);
    s = nested(6000, "{\"a\":", "}");
    run("6000-deep objects", "POST", "/v1/jobs", JSON_CT, s, 400, SHAPE_V1);
    free(s);
    s = nested(100000, "[", "]");
    run_bin("100000-deep [ (Content-Length)", "POST", "/v1/jobs", JSON_CT, s, strlen(s), 413,
            SHAPE_V1);
    free(s);

    /* Wrong types, huge and negative numbers, zero sizes. */
    run("name is an array", "POST", "/v1/jobs", JSON_CT,
        "{\"name\":[\"x\"]," DS "," MODEL "}", 400, SHAPE_V1);
    run("dataset is a number", "POST", "/v1/jobs", JSON_CT, "{\"dataset\":7," MODEL "}", 400,
        SHAPE_V1);
    run("model is true", "POST", "/v1/jobs", JSON_CT, "{" DS ",\"model\":true}", 400, SHAPE_V1);
    run("device is a number", "POST", "/v1/jobs", JSON_CT,
        "{" DS "," MODEL ",\"device\":0}", 400, SHAPE_V1);
    run("device cuda:99", "POST", "/v1/jobs", JSON_CT,
        "{" DS "," MODEL ",\"device\":\"cuda:99\"}", 400, SHAPE_V1);
    run("batch_size 1e308", "POST", "/v1/jobs", JSON_CT,
        "{" DS "," MODEL ",\"solver\":{\"batch_size\":1e308}}", 400, SHAPE_V1);
    run("batch_size 2^63", "POST", "/v1/jobs", JSON_CT,
        "{" DS "," MODEL ",\"solver\":{\"batch_size\":9223372036854775808}}", 400, SHAPE_V1);
    run("batch_size -1", "POST", "/v1/jobs", JSON_CT,
        "{" DS "," MODEL ",\"solver\":{\"batch_size\":-1}}", 400, SHAPE_V1);
    run("batch_size 0", "POST", "/v1/jobs", JSON_CT,
        "{" DS "," MODEL ",\"solver\":{\"batch_size\":0}}", 400, SHAPE_V1);
    run("batch_size \"32\"", "POST", "/v1/jobs", JSON_CT,
        "{" DS "," MODEL ",\"solver\":{\"batch_size\":\"32\"}}", 400, SHAPE_V1);
    run("epochs -1", "POST", "/v1/jobs", JSON_CT,
        "{" DS "," MODEL ",\"solver\":{\"epochs\":-1}}", 400, SHAPE_V1);
    run("epochs 1e308", "POST", "/v1/jobs", JSON_CT,
        "{" DS "," MODEL ",\"solver\":{\"epochs\":1e308}}", 400, SHAPE_V1);
    run("learning_rate 1e308", "POST", "/v1/jobs", JSON_CT,
        "{" DS "," MODEL ",\"solver\":{\"learning_rate\":1e308}}", 400, SHAPE_V1);
    run("learning_rate -1e-308", "POST", "/v1/jobs", JSON_CT,
        "{" DS "," MODEL ",\"solver\":{\"learning_rate\":-1e-308}}", 400, SHAPE_V1);
    run("num_filters 0", "POST", "/v1/jobs", JSON_CT,
        "{" DS ",\"model\":{\"preset\":\"three_layer_convnet\",\"num_filters\":0}}", 400,
        SHAPE_V1);
    run("num_filters 2^63", "POST", "/v1/jobs", JSON_CT,
        "{" DS ",\"model\":{\"preset\":\"three_layer_convnet\",\"num_filters\":9223372036854775808}}",
        400, SHAPE_V1);
    run("hidden_dim 1e9", "POST", "/v1/jobs", JSON_CT,
        "{" DS ",\"model\":{\"preset\":\"three_layer_convnet\",\"hidden_dim\":1000000000}}", 400,
        SHAPE_V1);
    run("dataset limit -5", "POST", "/v1/jobs", JSON_CT,
        "{\"dataset\":{\"name\":\"synth\",\"limit\":-5}," MODEL "}", 400, SHAPE_V1);
    run("dataset limit 1e308", "POST", "/v1/jobs", JSON_CT,
        "{\"dataset\":{\"name\":\"synth\",\"limit\":1e308}," MODEL "}", 400, SHAPE_V1);
    run("val_fraction -0.5", "POST", "/v1/jobs", JSON_CT,
        "{\"dataset\":{\"name\":\"synth\",\"val_fraction\":-0.5}," MODEL "}", 400, SHAPE_V1);

    /* Unknown fields at every level. */
    run("unknown top-level field", "POST", "/v1/jobs", JSON_CT,
        "{" DS "," MODEL ",\"priority\":9}", 400, SHAPE_V1);
    run("unknown dataset field", "POST", "/v1/jobs", JSON_CT,
        "{\"dataset\":{\"name\":\"synth\",\"path\":\"/etc\"}," MODEL "}", 400, SHAPE_V1);
    run("unknown model field", "POST", "/v1/jobs", JSON_CT,
        "{" DS ",\"model\":{\"preset\":\"three_layer_convnet\",\"layers\":[]}}", 400, SHAPE_V1);
    run("unknown solver field", "POST", "/v1/jobs", JSON_CT,
        "{" DS "," MODEL ",\"solver\":{\"momentum2\":1}}", 400, SHAPE_V1);
    run("unknown augment field", "POST", "/v1/jobs", JSON_CT,
        "{" DS "," MODEL ",\"solver\":{\"augment\":{\"rotate\":90}}}", 400, SHAPE_V1);
    run("duplicate-looking key (Name)", "POST", "/v1/jobs", JSON_CT,
        "{\"Name\":\"x\"," DS "," MODEL "}", 400, SHAPE_V1);

    /* Text: invalid UTF-8, NUL bytes, control characters. */
    run("name: invalid UTF-8", "POST", "/v1/jobs", JSON_CT,
        "{\"name\":\"\xff\xfe\xc0\xaf\"," DS "," MODEL "}", 400, SHAPE_V1);
    run("name: overlong UTF-8 '/'", "POST", "/v1/jobs", JSON_CT,
        "{\"name\":\"a\xc0\xaf" "b\"," DS "," MODEL "}", 400, SHAPE_V1);
    run("name: lone surrogate escape", "POST", "/v1/jobs", JSON_CT,
        "{\"name\":\"\\ud800\"," DS "," MODEL "}", 400, SHAPE_V1);
    run("name: \\u0000", "POST", "/v1/jobs", JSON_CT,
        "{\"name\":\"a\\u0000b\"," DS "," MODEL "}", 400, SHAPE_V1);
    run_bin("name: raw NUL byte", "POST", "/v1/jobs", JSON_CT,
            "{\"name\":\"a\0b\"," DS "," MODEL "}",
            sizeof("{\"name\":\"a\0b\"," DS "," MODEL "}") - 1, 400, SHAPE_V1);
    run("dataset name ../../etc", "POST", "/v1/jobs", JSON_CT,
        "{\"dataset\":{\"name\":\"../../etc\"}," MODEL "}", 400, SHAPE_V1);

    /* Content types and sizes. */
    run("text/plain on POST /v1/jobs", "POST", "/v1/jobs", "Content-Type: text/plain\r\n",
        "{" DS "," MODEL "}", 415, SHAPE_V1);
    run("form on POST /v1/jobs", "POST", "/v1/jobs",
        "Content-Type: application/x-www-form-urlencoded\r\n", "{" DS "," MODEL "}", 415,
        SHAPE_V1);
    run("application/jsonx", "POST", "/v1/jobs", "Content-Type: application/jsonx\r\n",
        "{" DS "," MODEL "}", 415, SHAPE_V1);
    n = (size_t)snprintf(big_cl, sizeof big_cl, "%sContent-Length: 65537\r\n", JSON_CT);
    (void)n;
    run("declared 65537 bytes (not sent)", "POST", "/v1/jobs", big_cl, NULL, 413, SHAPE_V1);
    run("declared 2^64+ bytes", "POST", "/v1/jobs",
        JSON_CT "Content-Length: 99999999999999999999999\r\n", NULL, 413, SHAPE_MHD);
    big = malloc(MAX_BODY + 2);
    if (big == NULL)
        abort();
    memset(big, 'A', MAX_BODY + 1);
    big[MAX_BODY + 1] = '\0';
    snprintf(path, sizeof path, "/v1/models/%ld/classify", job);
    run_chunked("classify: max-body + 1, chunked", path, "Content-Type: image/png\r\n", big,
                MAX_BODY + 1, 413);
    run_bin("classify: max-body + 1, Content-Length", "POST", path,
            "Content-Type: image/png\r\n", big, MAX_BODY + 1, 413, SHAPE_V1);
    free(big);
    run("body on cancel over 1 KiB", "POST", "/v1/jobs/1/cancel", JSON_CT,
        "{\"x\":\"" "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}",
        413, SHAPE_V1);

    /* Slow clients: dropped after --request-timeout. */
    run_trickle("trickled headers (slowloris)", "GET /v1/health HTTP/1.1\r\nHost: x\r\nX-A: ");
    run_trickle("trickled body", "POST /v1/jobs HTTP/1.1\r\nHost: x\r\n" JSON_CT
                                 "Content-Length: 100\r\n\r\n{\"na");

    /* Routes and methods. */
    run("unknown route", "GET", "/v1/nothing", NULL, NULL, 404, SHAPE_V1);
    run("unknown v2 route", "GET", "/v2/nothing/here", NULL, NULL, 404, SHAPE_V1);
    run("trailing slash", "GET", "/v1/jobs/", NULL, NULL, 404, SHAPE_V1);
    run("over-long segment", "GET",
        "/v1/jobs/1111111111111111111111111111111111111111111111111111111111111111111111111"
        "11111111111111111111111111111111111111111111111111111111111111111111", NULL, NULL, 404,
        SHAPE_V1);
    run("DELETE /v1/jobs", "DELETE", "/v1/jobs", NULL, NULL, 405, SHAPE_V1);
    run("PUT /v1/jobs/1", "PUT", "/v1/jobs/1", JSON_CT, "{}", 405, SHAPE_V1);
    run("POST /v1/health", "POST", "/v1/health", NULL, NULL, 405, SHAPE_V1);
    run("PATCH /v1/models/1", "PATCH", "/v1/models/1", JSON_CT, "{}", 405, SHAPE_V1);
    run("GET /v1/jobs/1/cancel", "GET", "/v1/jobs/1/cancel", NULL, NULL, 405, SHAPE_V1);

    /* Images: empty, truncated, bombs. */
    snprintf(path, sizeof path, "/v1/models/%ld/classify", job);
    run_bin("classify: empty PNG", "POST", path, "Content-Type: image/png\r\n", "", 0, 400,
            SHAPE_V1);
    n = png_header(png, 8, 8, 0);
    run_bin("classify: PNG header only (truncated)", "POST", path,
            "Content-Type: image/png\r\n", png, n - 10, 400, SHAPE_V1);
    run_bin("classify: PNG without IDAT", "POST", path, "Content-Type: image/png\r\n", png, n,
            400, SHAPE_V1);
    n = png_header(png, 30000, 30000, 1);
    run_bin("classify: PNG bomb 30000x30000", "POST", path, "Content-Type: image/png\r\n", png,
            n, 413, SHAPE_V1);
    n = png_header(png, 10000, 10000, 1);
    run_bin("classify: PNG 10000x10000 (over pixels)", "POST", path,
            "Content-Type: image/png\r\n", png, n, 413, SHAPE_V1);
    n = png_header(png, 0, 0, 1);
    run_bin("classify: PNG 0x0", "POST", path, "Content-Type: image/png\r\n", png, n, 400,
            SHAPE_V1);
    n = png_header(png, 0x80000000u, 1, 1);
    run_bin("classify: PNG width 2^31", "POST", path, "Content-Type: image/png\r\n", png, n, 0,
            SHAPE_V1);
    n = png_header(png, 8, 8, 1);
    png[20] ^= 0xff;   /* breaks the IHDR CRC */
    run_bin("classify: PNG bad CRC", "POST", path, "Content-Type: image/png\r\n", png, n, 400,
            SHAPE_V1);
    run("classify: text as image/png", "POST", path, "Content-Type: image/png\r\n",
        "hello, world", 0, SHAPE_V1);
    run("classify: text/plain", "POST", path, "Content-Type: text/plain\r\n", "hello", 415,
        SHAPE_V1);
    run("classify: JSON, not JSON", "POST", path, JSON_CT, "{\"image_base64\":", 400,
        SHAPE_V1);
    run("classify: bad base64", "POST", path, JSON_CT, "{\"image_base64\":\"@@@@\"}", 400,
        SHAPE_V1);
    run("classify: base64 with \\u0000", "POST", path, JSON_CT,
        "{\"image_base64\":\"iVBO\\u0000RK\"}", 400, SHAPE_V1);
    run("classify: unknown JSON field", "POST", path, JSON_CT,
        "{\"image_base64\":\"iVBORw0KGgo=\",\"url\":\"http://x\"}", 400, SHAPE_V1);
    run("classify: top_k in JSON -1", "POST", path, JSON_CT,
        "{\"image_base64\":\"iVBORw0KGgo=\",\"top_k\":-1}", 400, SHAPE_V1);
    snprintf(path, sizeof path, "/v1/models/%ld/classify?top_k=0", job);
    run("classify: top_k=0", "POST", path, "Content-Type: image/png\r\n", "x", 400, SHAPE_V1);
    snprintf(path, sizeof path, "/v1/models/%ld/classify?top_k=1000000", job);
    run("classify: top_k=1000000", "POST", path, "Content-Type: image/png\r\n", "x", 400,
        SHAPE_V1);
    run("classify: model 0", "POST", "/v1/models/0/classify", "Content-Type: image/png\r\n",
        "x", 404, SHAPE_V1);
    run("classify: model abc", "POST", "/v1/models/abc/classify", "Content-Type: image/png\r\n",
        "x", 404, SHAPE_V1);

    /* Static files: traversal in every spelling. */
    run("static: /web/../README.md", "GET", "/web/../README.md", NULL, NULL, 404, SHAPE_V1);
    run("static: /web/%2e%2e/README.md", "GET", "/web/%2e%2e/README.md", NULL, NULL, 404,
        SHAPE_V1);
    run("static: /web/..%2fREADME.md", "GET", "/web/..%2fREADME.md", NULL, NULL, 404,
        SHAPE_V1);
    run("static: /web/%2e%2e%2f%2e%2e%2fetc%2fpasswd", "GET",
        "/web/%2e%2e%2f%2e%2e%2fetc%2fpasswd", NULL, NULL, 404, SHAPE_V1);
    run("static: /web//etc/passwd", "GET", "/web//etc/passwd", NULL, NULL, 404, SHAPE_V1);
    run("static: /web/%2fetc%2fpasswd", "GET", "/web/%2fetc%2fpasswd", NULL, NULL, 404,
        SHAPE_V1);
    run("static: /../../etc/passwd", "GET", "/../../etc/passwd", NULL, NULL, 404, SHAPE_V1);
    run("static: /web/../../../../etc/passwd", "GET", "/web/../../../../etc/passwd", NULL,
        NULL, 404, SHAPE_V1);
    run("static: absolute-form URI", "GET", "http://127.0.0.1/etc/passwd", NULL, NULL, 0,
        SHAPE_V1);
    run("static: /web/.git/config", "GET", "/web/.git/config", NULL, NULL, 404, SHAPE_V1);
    run("static: /web/%00", "GET", "/web/a%00.js", NULL, NULL, 404, SHAPE_V1);

    /* Bad ids. */
    run("job id 0", "GET", "/v1/jobs/0", NULL, NULL, 404, SHAPE_V1);
    run("job id -1", "GET", "/v1/jobs/-1", NULL, NULL, 404, SHAPE_V1);
    run("job id 99999999999999999999", "GET", "/v1/jobs/99999999999999999999", NULL, NULL, 404,
        SHAPE_V1);
    run("job id abc", "GET", "/v1/jobs/abc", NULL, NULL, 404, SHAPE_V1);
    run("job id 1;DROP TABLE jobs", "GET", "/v1/jobs/1;DROP%20TABLE%20jobs", NULL, NULL, 404,
        SHAPE_V1);
    run("job id 1 OR 1=1", "GET", "/v1/jobs/1%20OR%201=1", NULL, NULL, 404, SHAPE_V1);
    run("job id 0x10", "GET", "/v1/jobs/0x10", NULL, NULL, 404, SHAPE_V1);
    run("job id +1", "GET", "/v1/jobs/+1", NULL, NULL, 404, SHAPE_V1);
    run("cancel job 0", "POST", "/v1/jobs/0/cancel", NULL, NULL, 404, SHAPE_V1);
    run("pause job 99999999999999999999", "POST", "/v1/jobs/99999999999999999999/pause", NULL,
        NULL, 404, SHAPE_V1);
    run("resume finished job", "POST", "/v1/jobs/1/resume", NULL, NULL, 409, SHAPE_V1);
    run("cancel finished job", "POST", "/v1/jobs/1/cancel", NULL, NULL, 409, SHAPE_V1);
    run("model id -1", "GET", "/v1/models/-1", NULL, NULL, 404, SHAPE_V1);
    run("model 99999 checkpoint", "GET", "/v1/models/99999/checkpoint", NULL, NULL, 404,
        SHAPE_V1);
    run("filters of job abc", "GET", "/v1/jobs/abc/filters.png", NULL, NULL, 404, SHAPE_V1);

    /* Event streams: bad Last-Event-ID. */
    snprintf(path, sizeof path, "/v1/jobs/%ld/events", job);
    run("Last-Event-ID: abc", "GET", path, "Last-Event-ID: abc\r\n", NULL, 400, SHAPE_V1);
    run("Last-Event-ID: -5", "GET", path, "Last-Event-ID: -5\r\n", NULL, 400, SHAPE_V1);
    run("Last-Event-ID: huge", "GET", path, "Last-Event-ID: 999999999999999999999999\r\n", NULL,
        400, SHAPE_V1);
    run("Last-Event-ID: 1;2", "GET", path, "Last-Event-ID: 1;2\r\n", NULL, 400, SHAPE_V1);
    snprintf(path, sizeof path, "/v1/jobs/%ld/events?last_event_id=x", job);
    run("?last_event_id=x", "GET", path, NULL, NULL, 400, SHAPE_V1);
    run("events of job 0", "GET", "/v1/jobs/0/events", NULL, NULL, 404, SHAPE_V1);

    /* Query parameters. */
    run("jobs ?limit=-1", "GET", "/v1/jobs?limit=-1", NULL, NULL, 400, SHAPE_V1);
    run("jobs ?limit=0", "GET", "/v1/jobs?limit=0", NULL, NULL, 400, SHAPE_V1);
    run("jobs ?limit=abc", "GET", "/v1/jobs?limit=abc", NULL, NULL, 400, SHAPE_V1);
    run("jobs ?limit=2^63", "GET", "/v1/jobs?limit=9223372036854775808", NULL, NULL, 400,
        SHAPE_V1);
    run("jobs ?status=bogus", "GET", "/v1/jobs?status=bogus", NULL, NULL, 400, SHAPE_V1);
    run("jobs ?page_token=garbage", "GET", "/v1/jobs?page_token=%27%20OR%201=1", NULL, NULL,
        400, SHAPE_V1);
    snprintf(path, sizeof path, "/v1/jobs/%ld/metrics?since=abc", job);
    run("metrics ?since=abc", "GET", path, NULL, NULL, 400, SHAPE_V1);
    snprintf(path, sizeof path, "/v1/jobs/%ld/metrics?since=-1", job);
    run("metrics ?since=-1", "GET", path, NULL, NULL, 400, SHAPE_V1);
    snprintf(path, sizeof path, "/v1/jobs/%ld/metrics?limit=-5", job);
    run("metrics ?limit=-5", "GET", path, NULL, NULL, 400, SHAPE_V1);
    snprintf(path, sizeof path, "/v1/jobs/%ld/metrics?format=xml", job);
    run("metrics ?format=xml", "GET", path, NULL, NULL, 400, SHAPE_V1);
    snprintf(path, sizeof path, "/v1/jobs/%ld/filters.png?epoch=-1", job);
    run("filters ?epoch=-1", "GET", path, NULL, NULL, 400, SHAPE_V1);

    /* KServe v2: the protocol's own error shape. */
    snprintf(path, sizeof path, "/v2/models/%ld/infer", job);
    run("infer: not JSON", "POST", path, JSON_CT, "{\"inputs\":[", 400, SHAPE_KSERVE);
    run("infer: no inputs", "POST", path, JSON_CT, "{}", 400, SHAPE_KSERVE);
    run("infer: inputs not an array", "POST", path, JSON_CT, "{\"inputs\":7}", 400,
        SHAPE_KSERVE);
    run("infer: bad datatype", "POST", path, JSON_CT,
        "{\"inputs\":[{\"name\":\"input\",\"shape\":[1,1," "12,12],\"datatype\":\"BF99\","
        "\"data\":[0]}]}", 400, SHAPE_KSERVE);
    run("infer: shape 2^63", "POST", path, JSON_CT,
        "{\"inputs\":[{\"name\":\"input\",\"shape\":[9223372036854775807,1,12,12],"
        "\"datatype\":\"FP32\",\"data\":[0]}]}", 400, SHAPE_KSERVE);
    run("infer: negative shape", "POST", path, JSON_CT,
        "{\"inputs\":[{\"name\":\"input\",\"shape\":[-1,1,12,12],"
        "\"datatype\":\"FP32\",\"data\":[0]}]}", 400, SHAPE_KSERVE);
    run("infer: data too short", "POST", path, JSON_CT,
        "{\"inputs\":[{\"name\":\"input\",\"shape\":[1,1,12,12],"
        "\"datatype\":\"FP32\",\"data\":[0,1,2]}]}", 400, SHAPE_KSERVE);
    run("infer: data 1e308 strings", "POST", path, JSON_CT,
        "{\"inputs\":[{\"name\":\"input\",\"shape\":[1,1,1,1],"
        "\"datatype\":\"FP32\",\"data\":[\"1e308\"]}]}", 400, SHAPE_KSERVE);
    run("infer: unknown model", "POST", "/v2/models/99999999999999999999/infer", JSON_CT,
        "{\"inputs\":[]}", 404, SHAPE_KSERVE);
    run("v2 model abc", "GET", "/v2/models/abc", NULL, NULL, 404, SHAPE_KSERVE);
}

/* ---- SQL metacharacters in names: accepted, stored verbatim ---- */

static void sql_names(const char *dbpath, const counts *before)
{
    static const char *const names[] = { "' OR 1=1 --", "\\\"; DROP TABLE jobs;--" };
    static const char *const want[] = { "' OR 1=1 --", "\"; DROP TABLE jobs;--" };
    counts after;

    for (int i = 0; i < 2; i++) {
        char body[1024], path[64];
        cJSON *doc = NULL;
        char *stored;
        long id;
        int st;

        snprintf(body, sizeof body,
                 "{\"name\":\"%s\"," DS "," MODEL ",\"solver\":{\"epochs\":1000,"
                 "\"batch_size\":20},\"device\":\"" TEST_DEVICE "\"}", names[i]);
        id = tj_submit(port, body);
        printf("case %-44s %s (id %ld)\n", want[i], id > 0 ? "201 accepted" : "refused", id);
        if (id <= 0)
            continue;   /* refusing is allowed too */
        snprintf(path, sizeof path, "/v1/jobs/%ld/cancel", id);
        st = tj_request(port, "POST", path, NULL, NULL);
        CHECKF(st == 200 || st == 202 || st == 409, "cancel %ld: %d", id, st);
        snprintf(path, sizeof path, "/v1/jobs/%ld", id);
        CHECK(tj_request(port, "GET", path, NULL, &doc) == 200);
        CHECKF(strcmp(tj_str(doc, "name"), want[i]) == 0, "name came back as %s",
               tj_str(doc, "name"));
        cJSON_Delete(doc);
        stored = stored_name(dbpath, id);
        CHECKF(stored != NULL && strcmp(stored, want[i]) == 0, "stored name %s",
               stored ? stored : "(none)");
        free(stored);
        CHECK(tj_wait_status(port, id, "cancelled", 30));
    }
    CHECK(read_counts(dbpath, &after) == 0);
    CHECKF(after.jobs == before->jobs + 2, "jobs %lld -> %lld", before->jobs, after.jobs);
    CHECK(after.checkpoints >= before->checkpoints);
    CHECK(health_ok());
}

int main(int argc, char **argv)
{
    char dbpath[600], body[1024];
    char timeout_s[16], max_body[32];
    const char *extra[8];
    counts before, after;
    char *list_before, *list_after;
    dproc d;
    long job;
    int st;

    dp_dirs dirs;
    int rc = dp_setup(&dirs, "convnetd-bad", argc, argv);
    if (rc != 0)
        return rc;
    const char *state = dirs.state, *data = dirs.data, *log = dirs.log;
    setvbuf(stdout, NULL, _IOLBF, 0);   /* case lines in order with stderr's */
    snprintf(dbpath, sizeof dbpath, "%s/convnetd.db", state);
    /* No test split: a finished job then has no evaluation to write
     * behind the catalogue's back. */
    if (tj_write_synth(data, "synth", 250, H, W, K, 5) != 0) {
        fprintf(stderr, "cannot write the data set\n");
        return 1;
    }
    snprintf(timeout_s, sizeof timeout_s, "%d", REQUEST_TIMEOUT_S);
    snprintf(max_body, sizeof max_body, "%d", MAX_BODY);
    extra[0] = "--request-timeout";
    extra[1] = timeout_s;
    extra[2] = "--max-body";
    extra[3] = max_body;
    extra[4] = NULL;
    if (dp_start(&d, argv[1], state, data, log, extra) != 0)
        return 1;
    port = d.port;

    /* One finished job: a model to classify with, a stream and metrics. */
    snprintf(body, sizeof body, "{\"name\":\"base\"," DS "," MODEL "," SOLVER ",\"device\":\"" TEST_DEVICE "\"}");
    job = tj_submit(port, body);
    CHECK(job == 1 && tj_wait_status(port, job, "succeeded", 60));
    /* A finished job's evaluation is written after it succeeds: wait for
     * it, or its row would land in the middle of the catalogue. */
    {
        double deadline = tj_now() + 30;
        int done = 0;
        while (!done && tj_now() < deadline) {
            cJSON *ev = NULL;
            done = tj_request(port, "GET", "/v1/models/1/evaluation", NULL, &ev) == 200 &&
                   strcmp(tj_str(ev, "status"), "done") == 0;
            cJSON_Delete(ev);
            if (!done) {
                struct timespec ts = { .tv_nsec = 20000000L };
                nanosleep(&ts, NULL);
            }
        }
        CHECK(done);
    }

    CHECK(read_counts(dbpath, &before) == 0);
    list_before = jobs_list();
    CHECK(list_before != NULL);

    catalogue(job);

    CHECK(read_counts(dbpath, &after) == 0);
    list_after = jobs_list();
    CHECKF(after.jobs == before.jobs && after.metrics == before.metrics &&
               after.checkpoints == before.checkpoints &&
               after.evaluations == before.evaluations,
           "rows changed: jobs %lld->%lld metrics %lld->%lld checkpoints %lld->%lld "
           "evaluations %lld->%lld", before.jobs, after.jobs, before.metrics, after.metrics,
           before.checkpoints, after.checkpoints, before.evaluations, after.evaluations);
    CHECK(list_before != NULL && list_after != NULL && strcmp(list_before, list_after) == 0);
    free(list_before);
    free(list_after);

    sql_names(dbpath, &before);

    printf("catalogue: %d of %d cases answered as required\n", ncases, nrun);
    CHECKF(ncases >= 60 && ncases == nrun, "%d of %d cases passed", ncases, nrun);

    st = dp_stop(&d, SIGTERM, 30);
    CHECKF(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status %d", st);
    dp_cleanup(&dirs, check_failures);
    return check_result("daemon_bad_requests");
}
