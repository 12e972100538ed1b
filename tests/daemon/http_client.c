/* http_client.c: the tests' loopback HTTP client (see http_client.h). */
#include "http_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

int hc_raw(unsigned port, const char *req, size_t len, hc_reply *out)
{
    struct sockaddr_in sa;
    struct timeval tv = { .tv_sec = 30 };
    size_t got = 0, sent = 0;
    char *sep;
    int fd = -1;

    memset(out, 0, sizeof *out);
    out->raw = malloc(HC_MAX_REPLY + 1);
    if (out->raw == NULL)
        goto fail;
    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        goto fail;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((unsigned short)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0)
        goto fail;
    while (sent < len) {
        ssize_t n = send(fd, req + sent, len - sent, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        /* The server may answer (413) and stop reading before we finish;
         * what it sent back is still worth reading. */
        if (n <= 0)
            break;
        sent += (size_t)n;
    }
    for (;;) {
        ssize_t n;
        if (got == HC_MAX_REPLY) {
            fprintf(stderr, "http_client: reply longer than %d bytes\n", HC_MAX_REPLY);
            errno = 0;
            goto fail;
        }
        n = recv(fd, out->raw + got, HC_MAX_REPLY - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && got > 0 && errno == ECONNRESET)
            break;
        if (n < 0)
            goto fail;
        if (n == 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    fd = -1;
    out->raw[got] = '\0';
    sep = strstr(out->raw, "\r\n\r\n");
    if (sep == NULL || sscanf(out->raw, "HTTP/1.%*d %d", &out->status) != 1) {
        fprintf(stderr, "http_client: malformed reply (%zu bytes)\n", got);
        errno = 0;
        goto fail;
    }
    *sep = '\0';
    out->head = out->raw;
    out->body = sep + 4;
    out->body_len = got - (size_t)(out->body - out->raw);
    return 0;
fail:
    if (errno != 0)
        fprintf(stderr, "http_client: port %u: %s\n", port, strerror(errno));
    if (fd >= 0)
        close(fd);
    hc_free(out);
    return -1;
}

int hc_request(unsigned port, const char *method, const char *path,
               const char *extra_headers, const char *body, size_t body_len,
               hc_reply *out)
{
    char head[2048];
    char *req;
    int n, rc;

    n = snprintf(head, sizeof head, "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n"
                 "Connection: close\r\n", method, path, port);
    if (body != NULL && n > 0 && (size_t)n < sizeof head)
        n += snprintf(head + n, sizeof head - (size_t)n, "Content-Length: %zu\r\n", body_len);
    if (extra_headers != NULL && n > 0 && (size_t)n < sizeof head)
        n += snprintf(head + n, sizeof head - (size_t)n, "%s", extra_headers);
    if (n > 0 && (size_t)n < sizeof head)
        n += snprintf(head + n, sizeof head - (size_t)n, "\r\n");
    if (n <= 0 || (size_t)n >= sizeof head) {
        fprintf(stderr, "http_client: request head too long\n");
        return -1;
    }
    req = malloc((size_t)n + body_len + 1);
    if (req == NULL)
        return -1;
    memcpy(req, head, (size_t)n);
    if (body != NULL)
        memcpy(req + n, body, body_len);
    else
        body_len = 0;
    rc = hc_raw(port, req, (size_t)n + body_len, out);
    free(req);
    return rc;
}

const char *hc_header(const hc_reply *r, const char *name, char *buf, size_t len)
{
    size_t nlen = strlen(name);
    const char *line = strstr(r->head, "\r\n");

    while (line != NULL) {
        const char *next;
        line += 2;
        next = strstr(line, "\r\n");
        if (strncasecmp(line, name, nlen) == 0 && line[nlen] == ':') {
            const char *v = line + nlen + 1;
            size_t vlen = next != NULL ? (size_t)(next - v) : strlen(v);
            while (vlen > 0 && (*v == ' ' || *v == '\t')) {
                v++;
                vlen--;
            }
            if (vlen >= len)
                vlen = len - 1;
            memcpy(buf, v, vlen);
            buf[vlen] = '\0';
            return buf;
        }
        line = next;
    }
    return NULL;
}

void hc_free(hc_reply *r)
{
    free(r->raw);
    memset(r, 0, sizeof *r);
}
