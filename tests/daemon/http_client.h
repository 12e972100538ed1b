/* http_client.h: a minimal HTTP/1.1 client over loopback for the daemon
 * tests, written on POSIX sockets (no libcurl).
 *
 * One request per connection ("Connection: close"), the whole reply read
 * into memory. Enough for tests; not a general client (no TLS, no redirects,
 * chunked replies are not decoded). */
#ifndef CONVNETD_TEST_HTTP_CLIENT_H
#define CONVNETD_TEST_HTTP_CLIENT_H

#include <stddef.h>

#define HC_MAX_REPLY (8 * 1024 * 1024)

typedef struct hc_reply {
    int status;           /* e.g. 200; 0 when nothing parseable came back */
    char *head;           /* status line and headers, NUL-terminated */
    char *body;           /* NUL-terminated */
    size_t body_len;
    char *raw;            /* backing storage for head and body */
} hc_reply;

/* Sends the raw bytes req (len bytes) to 127.0.0.1:port and reads the reply
 * until the server closes. Times out after 30 s of silence. Returns 0 with *out filled
 * (free with hc_free), or -1 with a message on stderr. */
int hc_raw(unsigned port, const char *req, size_t len, hc_reply *out);

/* Sends "method path HTTP/1.1" with Host, Connection: close, Content-Length
 * (when body != NULL) and extra_headers (CRLF-terminated lines, or NULL). */
int hc_request(unsigned port, const char *method, const char *path,
               const char *extra_headers, const char *body, size_t body_len,
               hc_reply *out);

/* Copies the value of header name (case-insensitive) into buf; returns buf,
 * or NULL when the reply has no such header. */
const char *hc_header(const hc_reply *r, const char *name, char *buf, size_t len);

void hc_free(hc_reply *r);

#endif
