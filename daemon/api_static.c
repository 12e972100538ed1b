/* api_static.c: the dashboard's static files: GET / is web/index.html,
 * GET /web/{path} any file under the web directory (app->web_dir, resolved
 * at start-up), with its Content-Type, an ETag and If-None-Match.
 *
 * What a client may ask for is checked twice: the path's segments first
 * (no empty, ".", ".." or hidden segments, no backslashes or control
 * characters, nothing under node_modules, no package*.json), then the file
 * the path resolves to, symlinks followed (realpath), must lie inside the
 * web directory and pass the same rules. Only regular files are served:
 * no directory listings. Not here: compression, ranges, caching headers
 * beyond no-cache + ETag (the dashboard is small and changes with the
 * daemon). Every refusal is a 404, whatever the reason. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api.h"
#include "app.h"

#define STATIC_PATH_MAX 512

static const struct {
    const char *ext;
    const char *type;
} types[] = {
    { "html", "text/html; charset=utf-8" },
    { "htm", "text/html; charset=utf-8" },
    { "js", "text/javascript; charset=utf-8" },
    { "mjs", "text/javascript; charset=utf-8" },
    { "css", "text/css; charset=utf-8" },
    { "json", "application/json" },
    { "map", "application/json" },
    { "png", "image/png" },
    { "jpg", "image/jpeg" },
    { "jpeg", "image/jpeg" },
    { "gif", "image/gif" },
    { "svg", "image/svg+xml" },
    { "ico", "image/x-icon" },
    { "webp", "image/webp" },
    { "txt", "text/plain; charset=utf-8" },
    { "woff", "font/woff" },
    { "woff2", "font/woff2" },
    { "wasm", "application/wasm" },
};

/* The Content-Type for a file name, by its extension (case-insensitive). */
static const char *content_type(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (dot != NULL && strchr(dot, '/') == NULL)
        for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
            if (strcasecmp(dot + 1, types[i].ext) == 0)
                return types[i].type;
    return "application/octet-stream";
}

typedef enum path_verdict { PATH_OK, PATH_BAD, PATH_HIDDEN } path_verdict;

/* Judges a relative path, segment by segment: PATH_BAD for what can only
 * be an attack or a mistake (empty, ".", "..", backslash, control
 * characters), PATH_HIDDEN for what exists but is not served (dot files,
 * node_modules, package*.json). Both answer 404; the two are kept apart for
 * the reader (and a log line, should one be wanted). */
static path_verdict judge(const char *rel)
{
    const char *seg = rel;

    if (*rel == '\0' || *rel == '/' || strlen(rel) >= STATIC_PATH_MAX)
        return PATH_BAD;
    for (const char *p = rel; *p != '\0'; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f || *p == '\\')
            return PATH_BAD;
    while (*seg != '\0') {
        const char *end = strchr(seg, '/');
        size_t n = end != NULL ? (size_t)(end - seg) : strlen(seg);
        if (n == 0 || (n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.'))
            return PATH_BAD;
        if (seg[0] == '.' || (n == 12 && strncmp(seg, "node_modules", 12) == 0))
            return PATH_HIDDEN;
        /* package.json, package-lock.json: the dashboard's build files. */
        if (end == NULL && strncmp(seg, "package", 7) == 0 && n >= 12 &&
            strcmp(seg + n - 5, ".json") == 0)
            return PATH_HIDDEN;
        if (end == NULL)
            break;
        seg = end + 1;
    }
    return PATH_OK;
}

static void not_found(http_reply *rep, const char *rel)
{
    http_reply_error(rep, HTTP_ERR_NOT_FOUND, NULL, "no such file: /web/%.200s", rel);
}

/* Answers with the file rel under the web directory. */
static void serve_file(const http_req *req, http_reply *rep, const char *rel)
{
    const char *root = req->app->web_dir;
    char full[PATH_MAX + STATIC_PATH_MAX], real[PATH_MAX], etag[64];
    size_t rlen = strlen(root);
    path_verdict v;
    struct stat st;
    int fd;

    if (root[0] == '\0') {
        http_reply_error(rep, HTTP_ERR_NOT_FOUND, NULL,
                         "the dashboard is not installed here (see --web-dir)");
        return;
    }
    /* Traversal attempts get the same 404 as a missing file: nothing is
     * told about what lies outside (and the dashboard's tests expect it). */
    v = judge(rel);
    if (v != PATH_OK) {
        not_found(rep, rel);
        return;
    }
    if (snprintf(full, sizeof full, "%s/%s", root, rel) >= (int)sizeof full ||
        realpath(full, real) == NULL) {
        not_found(rep, rel);
        return;
    }
    /* The resolved file must be inside the web directory, and what it is
     * called there must pass the same rules (a symlink to node_modules). */
    if (strncmp(real, root, rlen) != 0 || real[rlen] != '/' || judge(real + rlen + 1) != PATH_OK) {
        not_found(rep, rel);
        return;
    }
    fd = open(real, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        not_found(rep, rel);
        return;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        not_found(rep, rel);   /* directories are not listed */
        return;
    }
    snprintf(etag, sizeof etag, "\"%llx-%llx\"", (unsigned long long)st.st_size,
             (unsigned long long)st.st_mtim.tv_sec * 1000000000ULL +
                 (unsigned long long)st.st_mtim.tv_nsec);
    if (api_etag_matches(req, etag)) {
        close(fd);
        http_reply_text(rep, 304, NULL, "", 0);
    } else {
        http_reply_file(rep, 200, content_type(real), fd, (unsigned long long)st.st_size);
    }
    http_reply_header(rep, "ETag", "%s", etag);
    rep->no_cache = 1;
}

void api_static_index(const http_req *req, http_reply *rep)
{
    serve_file(req, rep, "index.html");
}

void api_static_file(const http_req *req, http_reply *rep)
{
    const char *rel = http_param(&req->params, "path");
    serve_file(req, rep, rel != NULL ? rel : "");
}
