/* util.h: small helpers the daemon's modules share: allocation that aborts
 * on out-of-memory, a growable string buffer, clocks and RFC 3339 times,
 * strict number parsing, and the host's available memory.
 *
 * The daemon is a program, not a library: when malloc fails there is no
 * sensible recovery, so the x* functions log and abort (antirez's rule). Size
 * limits on client input are enforced before allocating, never by these. */
#ifndef CONVNETD_UTIL_H
#define CONVNETD_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Like malloc/calloc/realloc/strdup but never return NULL: on failure they
 * log the size and abort(). xmalloc(0) returns a unique freeable pointer. */
void *xmalloc(size_t size);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t size);
char *xstrdup(const char *s);

/* Writes the printf-formatted message to err (errlen bytes; err may be
 * NULL) and returns -1: the error return of the pure parsers (kserve,
 * multipart, PNG encoding and data-set folders). */
int set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- string buffer ---- */

/* A NUL-terminated string that grows as text is appended. Zero-initialise
 * it ({0}); release with sb_free. s is NULL until the first append. */
typedef struct strbuf {
    char *s;
    size_t len, cap;
} strbuf;

/* Appends printf-formatted text. Never fails (xrealloc). */
void sb_printf(strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends n bytes of s. */
void sb_append(strbuf *b, const char *s, size_t n);
/* Empties b, keeping its memory. */
void sb_reset(strbuf *b);
/* Hands b's string to the caller (malloc'd, "" when empty) and resets b. */
char *sb_take(strbuf *b);
void sb_free(strbuf *b);

/* ---- time ---- */

/* Seconds since the epoch (wall clock) with sub-second precision. */
double now_wall(void);
/* Seconds from an arbitrary start that never jumps (CLOCK_MONOTONIC). */
double now_mono(void);
/* Formats t (seconds since the epoch, UTC) as RFC 3339 with milliseconds,
 * "2024-05-01T12:00:00.123Z", into out (>= 32 bytes). */
void format_rfc3339(char *out, size_t len, double t);

/* ---- parsing ---- */

/* Parses all of s as a decimal integer in lo..hi (no sign for lo >= 0, no
 * spaces, no trailing text). Returns 0 and *out, or -1. */
int parse_long(const char *s, long lo, long hi, long *out);

/* Decodes base64 text in[0..inlen) into out (cap bytes): the standard
 * alphabet (RFC 4648 section 4) or the URL-safe one (section 5), padding
 * optional but only at the end, whitespace (space, tab, CR, LF: line-wrapped
 * encoders) skipped. Any other character, a lone trailing character, or
 * output beyond cap fails. Returns 0 with *outlen set, or -1. Needs at most
 * inlen / 4 * 3 + 2 bytes of out. Pure. */
int b64_decode(unsigned char *out, size_t cap, size_t *outlen, const char *in, size_t inlen);

/* ---- the host ---- */

/* Bytes of memory the kernel says can be allocated without swapping:
 * MemAvailable from /proc/meminfo, else free pages from sysconf. 0 when
 * neither is known. */
uint64_t host_available_memory(void);

/* Parses the JSON text buf[0..len) like cJSON_ParseWithLengthOpts, but
 * refuses anything but whitespace after the value, and refuses, as invalid, a text holding a NUL:
 * a raw 0 byte anywhere, or a \u0000 escape inside a string. cJSON would
 * decode the latter into a C string that silently ends early ("a\u0000b"
 * becomes "a"), so a name could be stored other than as sent. Returns the
 * document (owned; cJSON_Delete) or NULL; *end (may be NULL) gets the
 * position of the error. Thread-safe. */
struct cJSON;
struct cJSON *json_parse_strict(const char *buf, size_t len, const char **end);

#endif
