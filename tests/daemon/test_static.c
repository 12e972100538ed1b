/* test_static.c: the dashboard's static files on the real binary (argv[1])
 * with a --web-dir made here: GET / is index.html; files come with their
 * Content-Type, an ETag and 304 on If-None-Match; directories are not
 * listed; node_modules, package*.json and dot files are hidden; traversal
 * (.., %2e%2e, encoded slashes, absolute paths, symlinks out of the
 * directory or into node_modules) is a 404 and never reaches a file (a
 * %00 ends the path where libmicrohttpd decodes it); a --web-dir that
 * is not a directory stops start-up. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "daemon_proc.h"
#include "http_client.h"

static unsigned port;
static char web[256];

static void put(const char *rel, const char *text)
{
    char path[512];
    FILE *f;
    snprintf(path, sizeof path, "%s/%s", web, rel);
    f = fopen(path, "w");
    if (f == NULL || fputs(text, f) == EOF) {
        perror(path);
        check_failures++;
    }
    if (f != NULL)
        fclose(f);
}

static void dir(const char *rel)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", web, rel);
    mkdir(path, 0755);
}

static void link_(const char *target, const char *rel)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", web, rel);
    if (symlink(target, path) != 0) {
        perror(path);
        check_failures++;
    }
}

/* GETs path (sent as is, no normalisation); returns the status and, when
 * ct != NULL, checks the Content-Type; body_has (may be NULL) must occur
 * in the body. */
static int get(const char *path, const char *ct, const char *body_has)
{
    hc_reply r;
    char v[256];
    int st;

    if (hc_request(port, "GET", path, NULL, NULL, 0, &r) != 0)
        return 0;
    st = r.status;
    if (ct != NULL)
        CHECKF(hc_header(&r, "Content-Type", v, sizeof v) && strcmp(v, ct) == 0,
               "%s: Content-Type %s, want %s", path, v, ct);
    if (body_has != NULL)
        CHECKF(strstr(r.body, body_has) != NULL, "%s: body lacks '%s'", path, body_has);
    if (st != 200)
        CHECKF(strstr(r.body, "SECRET") == NULL, "%s leaked a hidden file", path);
    hc_free(&r);
    return st;
}

int main(int argc, char **argv)
{
    char outside[200], wd_arg[300];
    const char *extra[3];
    hc_reply r;
    dproc d;
    int st;

    dp_dirs dirs;
    int rc = dp_setup(&dirs, "convnetd-test-static", argc, argv);
    if (rc != 0)
        return rc;
    const char *tmp = dirs.tmp, *state = dirs.state, *data = dirs.data, *log = dirs.log;
    snprintf(web, sizeof web, "%s/web", tmp);
    snprintf(outside, sizeof outside, "%s/outside", tmp);
    mkdir(web, 0755);
    mkdir(outside, 0755);
    {
        char p[300];
        FILE *f;
        snprintf(p, sizeof p, "%s/secret.txt", outside);
        f = fopen(p, "w");
        if (f != NULL) {
            fputs("SECRET outside\n", f);
            fclose(f);
        }
    }
    put("index.html", "<!doctype html><title>dash</title>\n");
    put("app.js", "console.log('app');\n");
    put("style.css", "body{}\n");
    put("data.json", "{}\n");
    put("app.js.map", "{}\n");
    put("logo.svg", "<svg/>\n");
    put("LICENSE", "text\n");
    put("package.json", "{\"SECRET\":1}\n");
    put("package-lock.json", "{\"SECRET\":1}\n");
    put(".env", "SECRET=1\n");
    dir("vendor");
    dir("vendor/uplot");
    put("vendor/uplot/uPlot.iife.min.js", "var uPlot;\n");
    dir("node_modules");
    put("node_modules/secret.js", "SECRET\n");
    dir("sub");
    dir("sub/node_modules");
    put("sub/node_modules/x.js", "SECRET\n");
    link_(outside, "out");                            /* a directory outside */
    {
        char p[300];
        snprintf(p, sizeof p, "%s/secret.txt", outside);
        link_(p, "leak.txt");                         /* a file outside */
    }
    link_("node_modules/secret.js", "alias.js");      /* inside, but hidden */
    link_("app.js", "alias2.js");                     /* inside, fine */

    snprintf(wd_arg, sizeof wd_arg, "--web-dir=%s", web);
    extra[0] = wd_arg;
    extra[1] = NULL;
    if (dp_start(&d, argv[1], state, data, log, extra) != 0)
        return 1;
    port = d.port;

    CHECK(get("/", "text/html; charset=utf-8", "<title>dash</title>") == 200);
    CHECK(get("/web/index.html", "text/html; charset=utf-8", "dash") == 200);
    CHECK(get("/web/app.js", "text/javascript; charset=utf-8", "console.log") == 200);
    CHECK(get("/web/style.css", "text/css; charset=utf-8", NULL) == 200);
    CHECK(get("/web/data.json", "application/json", NULL) == 200);
    CHECK(get("/web/app.js.map", "application/json", NULL) == 200);
    CHECK(get("/web/logo.svg", "image/svg+xml", NULL) == 200);
    CHECK(get("/web/LICENSE", "application/octet-stream", NULL) == 200);
    CHECK(get("/web/vendor/uplot/uPlot.iife.min.js", "text/javascript; charset=utf-8", "uPlot")
          == 200);
    CHECK(get("/web/alias2.js", "text/javascript; charset=utf-8", "console.log") == 200);

    /* ETag and 304. */
    if (hc_request(port, "GET", "/web/app.js", NULL, NULL, 0, &r) == 0) {
        char etag[128], hdr[200];
        CHECK(hc_header(&r, "ETag", etag, sizeof etag) != NULL);
        CHECK(hc_header(&r, "Cache-Control", hdr, sizeof hdr) && strcmp(hdr, "no-cache") == 0);
        hc_free(&r);
        snprintf(hdr, sizeof hdr, "If-None-Match: %s\r\n", etag);
        if (hc_request(port, "GET", "/web/app.js", hdr, NULL, 0, &r) == 0) {
            CHECK(r.status == 304 && r.body_len == 0);
            hc_free(&r);
        }
    }

    /* Hidden, missing, directories. */
    CHECK(get("/web/package.json", NULL, NULL) == 404);
    CHECK(get("/web/package-lock.json", NULL, NULL) == 404);
    CHECK(get("/web/.env", NULL, NULL) == 404);
    CHECK(get("/web/node_modules/secret.js", NULL, NULL) == 404);
    CHECK(get("/web/sub/node_modules/x.js", NULL, NULL) == 404);
    CHECK(get("/web/alias.js", NULL, NULL) == 404);
    CHECK(get("/web/leak.txt", NULL, NULL) == 404);
    CHECK(get("/web/out/secret.txt", NULL, NULL) == 404);
    CHECK(get("/web/missing.js", "application/json", "not_found") == 404);
    CHECK(get("/web/vendor", NULL, NULL) == 404);
    CHECK(get("/web/vendor/", NULL, NULL) == 404);
    CHECK(get("/web/", NULL, NULL) == 404);
    CHECK(get("/web", NULL, NULL) == 404);

    /* Traversal in every spelling: 404, as for a missing file; never a
     * file's bytes. */
    {
        static const char *const attempts[] = {
            "/web/../README.md",
            "/web/%2e%2e/README.md",
            "/web/%2E%2E/%2E%2E/etc/passwd",
            "/web/..%2f..%2fetc%2fpasswd",
            "/web/vendor/../../secret.txt",
            "/web/vendor/%2e%2e/%2e%2e/outside/secret.txt",
            "/web//etc/passwd",
            "/web/%2fetc%2fpasswd",
            "/web/..\\..\\etc\\passwd",
            "/web/./app.js",
            "/web/vendor/./uplot/uPlot.iife.min.js",
            "/web/%00app.js",
            "/web/app.js%00.png",
            "/../../etc/passwd",
        };
        for (size_t i = 0; i < sizeof attempts / sizeof attempts[0]; i++) {
            int s = get(attempts[i], NULL, NULL);
            CHECKF(s == 404 || (i == 12 && s == 200), "%s: status %d", attempts[i], s);
        }
    }
    /* Only GET (and HEAD). */
    if (hc_request(port, "POST", "/", NULL, "", 0, &r) == 0) {
        CHECK(r.status == 405);
        hc_free(&r);
    }
    if (hc_request(port, "HEAD", "/web/app.js", NULL, NULL, 0, &r) == 0) {
        CHECK(r.status == 200 && r.body_len == 0);
        hc_free(&r);
    }
    CHECK(get("/v1/health", NULL, NULL) == 200);

    st = dp_stop(&d, SIGTERM, 30);
    CHECKF(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status %d", st);

    /* A --web-dir that is not a directory is a settings error. */
    {
        char bad[300];
        snprintf(bad, sizeof bad, "--web-dir=%s/nope", tmp);
        extra[0] = bad;
        CHECK(dp_start(&d, argv[1], state, data, log, extra) != 0);
        CHECK(dp_log_contains(&d, "web-dir") && dp_log_contains(&d, "not a directory"));
    }

    dp_cleanup(&dirs, check_failures);
    return check_result("daemon_static");
}
