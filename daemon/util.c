/* util.c: allocation, string buffer, time, parsing and host helpers (see
 * util.h). */
#include "util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#include <cjson/cJSON.h>

static void oom(size_t size)
{
    log_err("out of memory allocating %zu bytes", size);
    abort();
}

void *xmalloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (p == NULL)
        oom(size);
    return p;
}

void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (p == NULL)
        oom(n * size);
    return p;
}

void *xrealloc(void *p, size_t size)
{
    void *q = realloc(p, size ? size : 1);
    if (q == NULL)
        oom(size);
    return q;
}

char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = xmalloc(n);
    memcpy(p, s, n);
    return p;
}

int set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err != NULL && errlen > 0) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* ---- string buffer ---- */

static void sb_reserve(strbuf *b, size_t extra)
{
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    b->s = xrealloc(b->s, cap);
    b->cap = cap;
}

void sb_append(strbuf *b, const char *s, size_t n)
{
    sb_reserve(b, n);
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

void sb_printf(strbuf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    sb_reserve(b, 128);
    va_start(ap, fmt);
    n = vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;   /* an encoding error: nothing sensible to append */
    if ((size_t)n >= b->cap - b->len) {
        sb_reserve(b, (size_t)n);
        va_start(ap, fmt);
        vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
    }
    b->len += (size_t)n;
}

void sb_reset(strbuf *b)
{
    b->len = 0;
    if (b->s != NULL)
        b->s[0] = '\0';
}

char *sb_take(strbuf *b)
{
    char *s = b->s != NULL ? b->s : xstrdup("");
    memset(b, 0, sizeof *b);
    return s;
}

void sb_free(strbuf *b)
{
    free(b->s);
    memset(b, 0, sizeof *b);
}

/* ---- time ---- */

double now_wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double now_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void format_rfc3339(char *out, size_t len, double t)
{
    time_t secs = (time_t)t;
    long ms = (long)((t - (double)secs) * 1000.0);
    struct tm tm;

    if (ms < 0)
        ms = 0;
    if (ms > 999)
        ms = 999;
    if (gmtime_r(&secs, &tm) == NULL) {
        snprintf(out, len, "1970-01-01T00:00:00.000Z");
        return;
    }
    snprintf(out, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
}

/* ---- parsing ---- */

int parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    long v;

    if (s == NULL || *s == '\0' || !(*s == '-' || (*s >= '0' && *s <= '9')))
        return -1;
    if (*s == '-' && lo >= 0)
        return -1;
    errno = 0;
    v = strtol(s, &end, 10);
    if (*end != '\0' || errno == ERANGE || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+' || c == '-')
        return 62;
    if (c == '/' || c == '_')
        return 63;
    return -1;
}

int b64_decode(unsigned char *out, size_t cap, size_t *outlen, const char *in, size_t inlen)
{
    uint32_t acc = 0;
    size_t n = 0;
    int bits = 0, pad = 0, chars = 0;

    for (size_t i = 0; i < inlen; i++) {
        unsigned char c = (unsigned char)in[i];
        int v;
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
            continue;
        if (c == '=') {
            pad++;
            if (pad > 2)
                return -1;
            continue;
        }
        if (pad > 0)
            return -1;   /* data after padding */
        v = b64_value(c);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        chars++;
        if (bits >= 8) {
            bits -= 8;
            if (n == cap)
                return -1;
            out[n++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    /* A group of 4 characters minus padding leaves 2 or 3 characters; 1 is
     * never a valid ending, and padding must complete the group. */
    if (chars % 4 == 1 || (pad > 0 && (chars + pad) % 4 != 0))
        return -1;
    *outlen = n;
    return 0;
}

/* ---- the host ---- */

uint64_t host_available_memory(void)
{
    char line[256];
    FILE *f = fopen("/proc/meminfo", "r");
    long pages, psize;

    if (f != NULL) {
        while (fgets(line, sizeof line, f) != NULL) {
            unsigned long long kb;
            if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) {
                fclose(f);
                return (uint64_t)kb * 1024u;
            }
        }
        fclose(f);
    }
    /* Older kernels lack MemAvailable; free pages undercount (no page cache)
     * but err on the safe side. */
    pages = sysconf(_SC_AVPHYS_PAGES);
    psize = sysconf(_SC_PAGESIZE);
    if (pages <= 0 || psize <= 0)
        return 0;
    return (uint64_t)pages * (uint64_t)psize;
}

/* ---- JSON ---- */

/* The position of the first NUL in the JSON text s[0..n): a raw 0 byte, or
 * a \u0000 escape within a string; NULL when there is none. Escapes are
 * followed in order, so "\\u0000" (a backslash, then "u0000") is not one. */
static const char *json_find_nul(const char *s, size_t n)
{
    int in_string = 0;

    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\0')
            return s + i;
        if (!in_string) {
            if (s[i] == '"')
                in_string = 1;
            continue;
        }
        if (s[i] == '"') {
            in_string = 0;
        } else if (s[i] == '\\' && i + 1 < n) {
            if (s[i + 1] == 'u' && i + 5 < n && memcmp(s + i + 2, "0000", 4) == 0)
                return s + i;
            i++;   /* the escaped character; a \uXXXX's digits are plain text */
        }
    }
    return NULL;
}

struct cJSON *json_parse_strict(const char *buf, size_t len, const char **end)
{
    const char *nul = json_find_nul(buf, len);

    if (nul != NULL) {
        if (end != NULL)
            *end = nul;
        return NULL;
    }
    /* cJSON's own trailing-data check wants a NUL inside len, which a
     * body never has (see above): check what follows the value here. */
    const char *stop = NULL;
    cJSON *doc = cJSON_ParseWithLengthOpts(buf, len, &stop, 0);
    if (doc != NULL && stop != NULL) {
        while (stop < buf + len && (*stop == ' ' || *stop == '\t' || *stop == '\n' ||
                                    *stop == '\r'))
            stop++;
        if (stop < buf + len) {
            cJSON_Delete(doc);
            doc = NULL;
        }
    }
    if (end != NULL)
        *end = stop;
    return doc;
}
