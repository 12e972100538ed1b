/* multipart.c: the multipart/form-data parser (see multipart.h).
 *
 * Written as a cursor over [body, body + len): every read is checked
 * against the end, nothing is allocated, and the only loops are over the
 * body's bytes, so a hostile body costs O(len * boundary) time at most. */
#include "multipart.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "util.h"

/* The first occurrence of needle (nlen >= 1) in [hay, hay + hlen), or NULL.
 * memmem is a GNU extension; this is the plain loop. */
static const uint8_t *find(const uint8_t *hay, size_t hlen, const uint8_t *needle, size_t nlen)
{
    if (nlen == 0 || hlen < nlen)
        return NULL;
    for (size_t i = 0; i + nlen <= hlen; i++) {
        const uint8_t *p = memchr(hay + i, needle[0], hlen - nlen + 1 - i);
        if (p == NULL)
            return NULL;
        if (memcmp(p, needle, nlen) == 0)
            return p;
        i = (size_t)(p - hay);
    }
    return NULL;
}

/* RFC 2046 bchars: DIGIT / ALPHA / "'()+_,-./:=?" and space (not last). */
static int bchar(int c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c != '\0' && strchr("'()+_,-./:=? ", c) != NULL);
}

/* RFC 7230 tchar, for tokens. */
static int tchar(int c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    return p;
}

/* Reads a token or a quoted-string at *pp (< end) into out (outlen bytes,
 * NUL-terminated); advances *pp. Returns 0, or -1 when malformed or longer
 * than outlen - 1. */
static int read_value(const char **pp, const char *end, char *out, size_t outlen)
{
    const char *p = *pp;
    size_t n = 0;

    if (p < end && *p == '"') {
        p++;
        for (;;) {
            unsigned char c;
            if (p >= end)
                return -1;              /* unterminated */
            c = (unsigned char)*p++;
            if (c == '"')
                break;
            if (c == '\\') {
                if (p >= end)
                    return -1;
                c = (unsigned char)*p++;
            }
            if (c < 0x20 && c != '\t')
                return -1;              /* no control characters in names */
            if (n + 1 >= outlen)
                return -1;
            out[n++] = (char)c;
        }
    } else {
        while (p < end && tchar((unsigned char)*p)) {
            if (n + 1 >= outlen)
                return -1;
            out[n++] = *p++;
        }
        if (n == 0)
            return -1;
    }
    out[n] = '\0';
    *pp = p;
    return 0;
}

/* Walks the ";"-separated parameters in [p, end): calls back for each
 * name=value. Returns 0, or -1 on a malformed list. */
typedef int (*param_fn)(void *user, const char *name, size_t nlen, const char *value);

static int each_param(const char *p, const char *end, param_fn fn, void *user)
{
    char value[MP_FILENAME_MAX];

    for (;;) {
        const char *name;
        size_t nlen;

        p = skip_ws(p, end);
        if (p == end)
            return 0;
        if (*p != ';')
            return -1;
        p = skip_ws(p + 1, end);
        if (p == end)
            return 0;                  /* a trailing ';' is tolerated */
        name = p;
        while (p < end && tchar((unsigned char)*p))
            p++;
        nlen = (size_t)(p - name);
        p = skip_ws(p, end);
        if (nlen == 0 || p == end || *p != '=')
            return -1;
        p = skip_ws(p + 1, end);
        if (read_value(&p, end, value, sizeof value) != 0)
            return -1;
        if (fn(user, name, nlen, value) != 0)
            return -1;
    }
}

/* ---- Content-Type ---- */

typedef struct boundary_ctx {
    char *out;
    size_t outlen;
    int found;
} boundary_ctx;

static int on_type_param(void *user, const char *name, size_t nlen, const char *value)
{
    boundary_ctx *b = user;
    if (nlen == 8 && strncasecmp(name, "boundary", 8) == 0) {
        if (b->found || strlen(value) >= b->outlen)
            return -1;
        snprintf(b->out, b->outlen, "%s", value);
        b->found = 1;
    }
    return 0;
}

int mp_boundary(const char *content_type, char *out, size_t outlen, char *err, size_t errlen)
{
    static const char type[] = "multipart/form-data";
    const char *p, *end;
    boundary_ctx b = { .out = out, .outlen = outlen };
    size_t n;

    if (content_type == NULL || out == NULL || outlen < MP_BOUNDARY_MAX + 1)
        return set_err(err, errlen, "multipart: no Content-Type");
    end = content_type + strlen(content_type);
    p = skip_ws(content_type, end);
    if ((size_t)(end - p) < sizeof type - 1 || strncasecmp(p, type, sizeof type - 1) != 0)
        return set_err(err, errlen, "multipart: Content-Type is not multipart/form-data");
    p += sizeof type - 1;
    if (p < end && *p != ';' && *p != ' ' && *p != '\t')
        return set_err(err, errlen, "multipart: Content-Type is not multipart/form-data");
    if (each_param(p, end, on_type_param, &b) != 0)
        return set_err(err, errlen, "multipart: malformed Content-Type parameters");
    if (!b.found)
        return set_err(err, errlen, "multipart: Content-Type has no boundary");
    n = strlen(out);
    if (n < 1 || n > MP_BOUNDARY_MAX || out[n - 1] == ' ')
        return set_err(err, errlen, "multipart: the boundary must be 1..70 characters");
    for (size_t i = 0; i < n; i++)
        if (!bchar((unsigned char)out[i]))
            return set_err(err, errlen, "multipart: the boundary has a character RFC 2046 "
                           "does not allow");
    return 0;
}

/* ---- part headers ---- */

typedef struct disp_ctx {
    mp_part *part;
    int has_name;
    int bad;
} disp_ctx;

static int on_disp_param(void *user, const char *name, size_t nlen, const char *value)
{
    disp_ctx *d = user;
    if (nlen == 4 && strncasecmp(name, "name", 4) == 0) {
        if (d->has_name || strlen(value) >= sizeof d->part->name)
            return -1;
        snprintf(d->part->name, sizeof d->part->name, "%s", value);
        d->has_name = 1;
    } else if (nlen == 8 && strncasecmp(name, "filename", 8) == 0) {
        if (d->part->has_filename)
            return -1;
        snprintf(d->part->filename, sizeof d->part->filename, "%s", value);
        d->part->has_filename = 1;
    }
    return 0;   /* filename* and others are ignored */
}

/* Parses one header line [p, end) (no CRLF) into part. 0 or -1. */
static int header_line(mp_part *part, int *has_disp, const char *p, const char *end,
                       char *err, size_t errlen)
{
    const char *colon = memchr(p, ':', (size_t)(end - p));
    const char *v;
    size_t nlen;

    if (p < end && (*p == ' ' || *p == '\t'))
        return set_err(err, errlen, "multipart: folded header lines are not supported");
    if (colon == NULL || colon == p)
        return set_err(err, errlen, "multipart: malformed part header");
    nlen = (size_t)(colon - p);
    for (const char *q = p; q < colon; q++)
        if (!tchar((unsigned char)*q))
            return set_err(err, errlen, "multipart: malformed part header name");
    v = skip_ws(colon + 1, end);
    while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    for (const char *q = v; q < end; q++)
        if ((unsigned char)*q < 0x20 && *q != '\t')
            return set_err(err, errlen, "multipart: control character in a part header");
    if (nlen == 19 && strncasecmp(p, "Content-Disposition", 19) == 0) {
        static const char fd[] = "form-data";
        disp_ctx d = { .part = part };
        if (*has_disp)
            return set_err(err, errlen, "multipart: two Content-Disposition headers in a part");
        *has_disp = 1;
        if ((size_t)(end - v) < sizeof fd - 1 || strncasecmp(v, fd, sizeof fd - 1) != 0 ||
            (v + sizeof fd - 1 < end && v[sizeof fd - 1] != ';' && v[sizeof fd - 1] != ' '))
            return set_err(err, errlen, "multipart: Content-Disposition is not form-data");
        if (each_param(v + sizeof fd - 1, end, on_disp_param, &d) != 0)
            return set_err(err, errlen, "multipart: malformed or over-long Content-Disposition "
                           "parameters");
    } else if (nlen == 12 && strncasecmp(p, "Content-Type", 12) == 0) {
        size_t n = (size_t)(end - v);
        if (n >= sizeof part->content_type)
            return set_err(err, errlen, "multipart: a part's Content-Type is too long");
        memcpy(part->content_type, v, n);
        part->content_type[n] = '\0';
    } else if (nlen == 25 && strncasecmp(p, "Content-Transfer-Encoding", 25) == 0) {
        size_t n = (size_t)(end - v);
        if (!((n == 6 && strncasecmp(v, "binary", 6) == 0) ||
              (n == 4 && strncasecmp(v, "8bit", 4) == 0) ||
              (n == 4 && strncasecmp(v, "7bit", 4) == 0)))
            return set_err(err, errlen, "multipart: Content-Transfer-Encoding %.*s is not "
                           "supported", (int)(n > 32 ? 32 : n), v);
    }
    return 0;
}

/* ---- the body ---- */

int mp_parse(const char *content_type, const uint8_t *body, size_t len, mp_part *parts,
             int max, int *nparts, char *err, size_t errlen)
{
    char boundary[MP_BOUNDARY_MAX + 1];
    /* "\r\n--" + boundary: what ends a part's data. */
    uint8_t delim[MP_BOUNDARY_MAX + 4];
    size_t blen, dlen;
    const uint8_t *p, *end;
    int n = 0;

    if (nparts != NULL)
        *nparts = 0;
    if ((body == NULL && len > 0) || parts == NULL || nparts == NULL || max < 1 ||
        max > MP_MAX_PARTS)
        return set_err(err, errlen, "multipart: bad arguments");
    if (mp_boundary(content_type, boundary, sizeof boundary, err, errlen) != 0)
        return -1;
    blen = strlen(boundary);
    memcpy(delim, "\r\n--", 4);
    memcpy(delim + 4, boundary, blen);
    dlen = blen + 4;
    end = body + len;

    /* The first delimiter, without the CRLF before it. */
    if (len < dlen - 2 || memcmp(body, delim + 2, dlen - 2) != 0)
        return set_err(err, errlen, "multipart: the body does not start with the boundary");
    p = body + dlen - 2;
    for (;;) {
        mp_part *part;
        const uint8_t *hend, *line, *data_end;
        int has_disp = 0;

        /* After a delimiter: "--" closes, else optional padding and CRLF. */
        if (end - p >= 2 && p[0] == '-' && p[1] == '-')
            break;
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        if (end - p < 2 || p[0] != '\r' || p[1] != '\n')
            return set_err(err, errlen, "multipart: malformed delimiter line");
        p += 2;
        if (n == max)
            return set_err(err, errlen, "multipart: more than %d parts", max);
        part = &parts[n];
        memset(part, 0, sizeof *part);

        /* Headers: up to the empty line, bounded. An empty block (data at
         * once) is a part without headers, which form-data forbids. */
        hend = find(p, (size_t)(end - p) < MP_MAX_HEADER_BYTES ? (size_t)(end - p)
                                                               : MP_MAX_HEADER_BYTES,
                    (const uint8_t *)"\r\n\r\n", 4);
        if (hend == NULL) {
            if (end - p >= 2 && p[0] == '\r' && p[1] == '\n')
                return set_err(err, errlen, "multipart: part %d has no headers", n + 1);
            return set_err(err, errlen, "multipart: part %d's headers are truncated or longer "
                           "than %d bytes", n + 1, MP_MAX_HEADER_BYTES);
        }
        for (line = p; line < hend + 2;) {
            const uint8_t *eol = find(line, (size_t)(hend + 2 - line),
                                      (const uint8_t *)"\r\n", 2);
            if (eol == NULL)
                break;   /* cannot happen: hend + 2 ends in CRLF */
            if (memchr(line, '\0', (size_t)(eol - line)) != NULL)
                return set_err(err, errlen, "multipart: NUL in a part header");
            if (header_line(part, &has_disp, (const char *)line, (const char *)eol, err,
                            errlen) != 0)
                return -1;
            line = eol + 2;
        }
        if (!has_disp)
            return set_err(err, errlen, "multipart: part %d has no Content-Disposition", n + 1);
        p = hend + 4;

        /* Data: up to CRLF "--" boundary. */
        data_end = find(p, (size_t)(end - p), delim, dlen);
        if (data_end == NULL)
            return set_err(err, errlen, "multipart: the body ends inside part %d (no closing "
                           "boundary)", n + 1);
        part->data = p;
        part->len = (size_t)(data_end - p);
        n++;
        p = data_end + dlen;
    }
    *nparts = n;
    if (n == 0)
        return set_err(err, errlen, "multipart: the form has no parts");
    return 0;
}
