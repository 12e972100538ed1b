/* test_multipart.c: the multipart/form-data parser and the base64 decoder
 * as pure functions: what browsers and curl send parses to the right parts;
 * everything malformed (no boundary, a preamble, a missing close, long or
 * folded headers, too many parts, no Content-Disposition) is refused with
 * a message; every prefix of a valid body and random mutations of it end
 * in a clean result or a clean refusal (run under ASan too). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "multipart.h"
#include "util.h"

#define CT "multipart/form-data; boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW"
#define B "------WebKitFormBoundary7MA4YWxkTrZu0gW"

static uint64_t rng = 0x853c49e6748fea9bULL;

static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 32);
}

static int parse(const char *ct, const void *body, size_t len, mp_part *parts, int *n,
                 char *err)
{
    return mp_parse(ct, body, len, parts, MP_MAX_PARTS, n, err, 256);
}

static void test_boundary(void)
{
    char b[MP_BOUNDARY_MAX + 1], err[256];

    CHECK(mp_boundary(CT, b, sizeof b, err, sizeof err) == 0 &&
          strcmp(b, "----WebKitFormBoundary7MA4YWxkTrZu0gW") == 0);
    CHECK(mp_boundary("Multipart/Form-Data;boundary=\"a b:c\"", b, sizeof b, err, sizeof err)
              == 0 && strcmp(b, "a b:c") == 0);
    CHECK(mp_boundary("multipart/form-data; charset=utf-8; boundary=xyz", b, sizeof b, err,
                      sizeof err) == 0 && strcmp(b, "xyz") == 0);
    CHECK(mp_boundary("multipart/form-data", b, sizeof b, err, sizeof err) != 0);
    CHECKF(strstr(err, "no boundary") != NULL, "%s", err);
    CHECK(mp_boundary("multipart/mixed; boundary=x", b, sizeof b, err, sizeof err) != 0);
    CHECK(mp_boundary("multipart/form-dataX; boundary=x", b, sizeof b, err, sizeof err) != 0);
    CHECK(mp_boundary("application/json", b, sizeof b, err, sizeof err) != 0);
    CHECK(mp_boundary(NULL, b, sizeof b, err, sizeof err) != 0);
    CHECK(mp_boundary("multipart/form-data; boundary=", b, sizeof b, err, sizeof err) != 0);
    CHECK(mp_boundary("multipart/form-data; boundary=\"\"", b, sizeof b, err, sizeof err) != 0);
    CHECK(mp_boundary("multipart/form-data; boundary=\"ends in space \"", b, sizeof b, err,
                      sizeof err) != 0);
    CHECK(mp_boundary("multipart/form-data; boundary=\"bad\x01\"", b, sizeof b, err,
                      sizeof err) != 0);
    CHECK(mp_boundary("multipart/form-data; boundary=a; boundary=b", b, sizeof b, err,
                      sizeof err) != 0);
    CHECK(mp_boundary("multipart/form-data; boundary=\"unterminated", b, sizeof b, err,
                      sizeof err) != 0);
    /* 70 characters is the limit. */
    {
        char ct[160];
        snprintf(ct, sizeof ct, "multipart/form-data; boundary=%070d", 7);
        CHECK(mp_boundary(ct, b, sizeof b, err, sizeof err) == 0 && strlen(b) == 70);
        snprintf(ct, sizeof ct, "multipart/form-data; boundary=%071d", 7);
        CHECK(mp_boundary(ct, b, sizeof b, err, sizeof err) != 0);
    }
}

/* A browser's form: a text field, then a file with binary bytes. */
static const char browser_body[] =
    B "\r\n"
    "Content-Disposition: form-data; name=\"top_k\"\r\n"
    "\r\n"
    "3\r\n"
    B "\r\n"
    "Content-Disposition: form-data; name=\"image\"; filename=\"a \\\"quoted\\\" name.png\"\r\n"
    "Content-Type: image/png\r\n"
    "\r\n"
    "\x89PNG\r\n\x1a\n\0\0\r\n-- not a boundary\r\n"
    B "--\r\n"
    "epilogue, ignored\r\n";

static void test_valid(void)
{
    mp_part parts[MP_MAX_PARTS];
    char err[256] = "";
    int n = -1;
    static const char png_part[] = "\x89PNG\r\n\x1a\n\0\0\r\n-- not a boundary";

    CHECKF(parse(CT, browser_body, sizeof browser_body - 1, parts, &n, err) == 0, "%s", err);
    CHECK(n == 2);
    CHECK(strcmp(parts[0].name, "top_k") == 0 && !parts[0].has_filename);
    CHECK(parts[0].len == 1 && parts[0].data[0] == '3');
    CHECK(strcmp(parts[1].name, "image") == 0 && parts[1].has_filename);
    CHECKF(strcmp(parts[1].filename, "a \"quoted\" name.png") == 0, "%s", parts[1].filename);
    CHECK(strcmp(parts[1].content_type, "image/png") == 0);
    CHECK(parts[1].len == sizeof png_part - 1 &&
          memcmp(parts[1].data, png_part, sizeof png_part - 1) == 0);

    /* curl -F: no Content-Type on fields, token values, an empty file. */
    {
        static const char body[] =
            "--xyz\r\n"
            "content-disposition: form-data; name=image; filename=empty.png\r\n"
            "Content-Type: application/octet-stream\r\n"
            "X-Other: ignored\r\n"
            "\r\n"
            "\r\n"
            "--xyz--";
        CHECKF(parse("multipart/form-data; boundary=xyz", body, sizeof body - 1, parts, &n,
                     err) == 0, "%s", err);
        CHECK(n == 1 && parts[0].has_filename && parts[0].len == 0);
        CHECK(strcmp(parts[0].filename, "empty.png") == 0);
    }
    /* Transport padding after a delimiter, and filename="" (still a file). */
    {
        static const char body[] =
            "--xyz  \r\n"
            "Content-Disposition: form-data; name=\"f\"; filename=\"\"\r\n"
            "\r\n"
            "data\r\n"
            "--xyz--\r\n";
        CHECKF(parse("multipart/form-data; boundary=xyz", body, sizeof body - 1, parts, &n,
                     err) == 0, "%s", err);
        CHECK(n == 1 && parts[0].has_filename && parts[0].filename[0] == '\0');
        CHECK(parts[0].len == 4 && memcmp(parts[0].data, "data", 4) == 0);
    }
}

static void expect_fail(const char *what, const char *ct, const char *body, size_t len,
                        const char *msg_part)
{
    mp_part parts[MP_MAX_PARTS];
    char err[256] = "";
    int n = -1;
    int rc = parse(ct, body, len, parts, &n, err);
    CHECKF(rc != 0, "%s: accepted", what);
    CHECKF(msg_part == NULL || strstr(err, msg_part) != NULL, "%s: message '%s'", what, err);
    CHECKF(rc != 0 && err[0] != '\0', "%s: no message", what);
}

#define FAIL(what, body, msg) \
    expect_fail(what, "multipart/form-data; boundary=xyz", body, sizeof body - 1, msg)

static void test_invalid(void)
{
    static const char ok_head[] = "Content-Disposition: form-data; name=\"f\"; filename=\"x\"\r\n";
    char big[MP_MAX_HEADER_BYTES + 200];
    size_t n;

    FAIL("empty", "", "does not start");
    FAIL("preamble", "preamble\r\n--xyz\r\nContent-Disposition: form-data; name=a\r\n\r\nv\r\n"
         "--xyz--", "does not start");
    FAIL("no close", "--xyz\r\nContent-Disposition: form-data; name=a\r\n\r\nvalue", "ends inside");
    FAIL("only a delimiter", "--xyz\r\n", NULL);
    FAIL("no parts", "--xyz--", "no parts");
    FAIL("garbage after delimiter", "--xyzGARBAGE\r\n", "malformed delimiter");
    FAIL("no disposition", "--xyz\r\nContent-Type: text/plain\r\n\r\nv\r\n--xyz--",
         "no Content-Disposition");
    FAIL("no headers", "--xyz\r\n\r\nv\r\n--xyz--", "no headers");
    FAIL("not form-data", "--xyz\r\nContent-Disposition: attachment; name=a\r\n\r\nv\r\n--xyz--",
         "not form-data");
    FAIL("folded", "--xyz\r\nContent-Disposition: form-data;\r\n name=a\r\n\r\nv\r\n--xyz--",
         "folded");
    FAIL("no colon", "--xyz\r\nContent-Disposition form-data\r\n\r\nv\r\n--xyz--", "malformed");
    FAIL("two dispositions", "--xyz\r\nContent-Disposition: form-data; name=a\r\n"
         "Content-Disposition: form-data; name=b\r\n\r\nv\r\n--xyz--", "two");
    FAIL("duplicate name", "--xyz\r\nContent-Disposition: form-data; name=a; name=b\r\n\r\nv\r\n"
         "--xyz--", NULL);
    FAIL("unterminated quote", "--xyz\r\nContent-Disposition: form-data; name=\"a\r\n\r\nv\r\n"
         "--xyz--", NULL);
    FAIL("base64 transfer", "--xyz\r\nContent-Disposition: form-data; name=a\r\n"
         "Content-Transfer-Encoding: base64\r\n\r\ndg==\r\n--xyz--", "not supported");
    FAIL("control char", "--xyz\r\nContent-Disposition: form-data; name=a\r\nX: a\x01\r\n\r\n"
         "v\r\n--xyz--", "control");

    /* A name longer than MP_NAME_MAX - 1. */
    n = (size_t)snprintf(big, sizeof big, "--xyz\r\nContent-Disposition: form-data; name=\"");
    memset(big + n, 'n', MP_NAME_MAX);
    n += MP_NAME_MAX;
    n += (size_t)snprintf(big + n, sizeof big - n, "\"\r\n\r\nv\r\n--xyz--");
    expect_fail("long name", "multipart/form-data; boundary=xyz", big, n, "over-long");

    /* A header block over MP_MAX_HEADER_BYTES. */
    n = (size_t)snprintf(big, sizeof big, "--xyz\r\n%sX-Pad: ", ok_head);
    memset(big + n, 'p', MP_MAX_HEADER_BYTES);
    n += MP_MAX_HEADER_BYTES;
    n += (size_t)snprintf(big + n, sizeof big - n, "\r\n\r\nv\r\n--xyz--");
    expect_fail("long headers", "multipart/form-data; boundary=xyz", big, n, "longer than");

    /* More parts than the caller has room for. */
    {
        char body[4096];
        mp_part parts[3];
        char err[256];
        int np = 0;
        n = 0;
        for (int i = 0; i < 4; i++)
            n += (size_t)snprintf(body + n, sizeof body - n,
                                  "--xyz\r\nContent-Disposition: form-data; name=p%d\r\n\r\nv\r\n",
                                  i);
        n += (size_t)snprintf(body + n, sizeof body - n, "--xyz--");
        CHECK(mp_parse("multipart/form-data; boundary=xyz", (const uint8_t *)body, n, parts, 3,
                       &np, err, sizeof err) != 0);
        CHECKF(strstr(err, "more than 3 parts") != NULL, "%s", err);
        CHECK(mp_parse("multipart/form-data; boundary=xyz", (const uint8_t *)body, n, parts, 0,
                       &np, err, sizeof err) != 0);
        CHECK(mp_parse("multipart/form-data; boundary=xyz", NULL, 5, parts, 3, &np, err,
                       sizeof err) != 0);
    }
    /* A bad Content-Type fails before the body is looked at. */
    expect_fail("no boundary", "multipart/form-data", browser_body, sizeof browser_body - 1,
                "boundary");
}

/* Every prefix of a valid body but the whole (and the whole minus its
 * epilogue) is refused; random byte flips never crash. */
static void test_prefixes_and_mutations(void)
{
    const size_t len = sizeof browser_body - 1;
    static const char close[] = B "--";
    size_t min_ok = 0;
    mp_part parts[MP_MAX_PARTS];
    char err[256];
    uint8_t *buf = malloc(len);
    int n;

    /* The body holds NULs (the PNG bytes): find the close by hand. */
    for (size_t i = 0; i + sizeof close - 1 <= len && min_ok == 0; i++)
        if (memcmp(browser_body + i, close, sizeof close - 1) == 0)
            min_ok = i + sizeof close - 1;
    CHECK(min_ok > 0);
    for (size_t cut = 0; cut <= len; cut++) {
        /* Exact-size copies, so ASan sees any read past the end. */
        uint8_t *p = malloc(cut ? cut : 1);
        int rc;
        memcpy(p, browser_body, cut);
        rc = mp_parse(CT, p, cut, parts, MP_MAX_PARTS, &n, err, sizeof err);
        CHECKF((rc == 0) == (cut >= min_ok), "cut at %zu: rc %d (%s)", cut, rc, err);
        free(p);
    }
    for (int round = 0; round < 20000; round++) {
        memcpy(buf, browser_body, len);
        for (int k = 1 + (int)(rnd() % 4); k > 0; k--)
            buf[rnd() % len] = (uint8_t)rnd();
        if (mp_parse(CT, buf, len, parts, MP_MAX_PARTS, &n, err, sizeof err) == 0) {
            CHECK(n >= 1 && n <= MP_MAX_PARTS);
            for (int i = 0; i < n; i++)
                CHECK(parts[i].data >= buf && parts[i].data + parts[i].len <= buf + len);
        }
    }
    free(buf);
}

static void test_base64(void)
{
    unsigned char out[64];
    size_t n = 99;

    CHECK(b64_decode(out, sizeof out, &n, "", 0) == 0 && n == 0);
    CHECK(b64_decode(out, sizeof out, &n, "TWFu", 4) == 0 && n == 3 && memcmp(out, "Man", 3) == 0);
    CHECK(b64_decode(out, sizeof out, &n, "TWE=", 4) == 0 && n == 2 && memcmp(out, "Ma", 2) == 0);
    CHECK(b64_decode(out, sizeof out, &n, "TWE", 3) == 0 && n == 2);         /* no padding */
    CHECK(b64_decode(out, sizeof out, &n, "TQ==", 4) == 0 && n == 1 && out[0] == 'M');
    CHECK(b64_decode(out, sizeof out, &n, "TQ", 2) == 0 && n == 1);
    CHECK(b64_decode(out, sizeof out, &n, "TW\r\nFu", 6) == 0 && n == 3);   /* wrapped */
    CHECK(b64_decode(out, sizeof out, &n, "-_-_", 4) == 0 && n == 3 &&    /* URL-safe */
          out[0] == 0xfb && out[1] == 0xff && out[2] == 0xbf);
    CHECK(b64_decode(out, sizeof out, &n, "+/+/", 4) == 0 && out[0] == 0xfb);
    CHECK(b64_decode(out, sizeof out, &n, "T", 1) != 0);                   /* lone char */
    CHECK(b64_decode(out, sizeof out, &n, "TWFuT", 5) != 0);
    CHECK(b64_decode(out, sizeof out, &n, "TW=u", 4) != 0);                /* data after = */
    CHECK(b64_decode(out, sizeof out, &n, "TQ===", 5) != 0);
    CHECK(b64_decode(out, sizeof out, &n, "TWE==", 5) != 0);               /* bad padding */
    CHECK(b64_decode(out, sizeof out, &n, "TW*u", 4) != 0);
    CHECK(b64_decode(out, sizeof out, &n, "TWFu\0", 5) != 0);
    CHECK(b64_decode(out, 2, &n, "TWFu", 4) != 0);                         /* no room */
    /* Round trip of every byte value. */
    {
        static const char abc[] =
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        unsigned char src[256], dec[256];
        char enc[400];
        size_t e = 0, m;
        for (int i = 0; i < 256; i++)
            src[i] = (unsigned char)i;
        for (int i = 0; i < 256; i += 3) {
            uint32_t v = (uint32_t)src[i] << 16 | (i + 1 < 256 ? (uint32_t)src[i + 1] << 8 : 0) |
                         (i + 2 < 256 ? src[i + 2] : 0);
            enc[e++] = abc[v >> 18 & 63];
            enc[e++] = abc[v >> 12 & 63];
            enc[e++] = i + 1 < 256 ? abc[v >> 6 & 63] : '=';
            enc[e++] = i + 2 < 256 ? abc[v & 63] : '=';
        }
        CHECK(b64_decode(dec, sizeof dec, &m, enc, e) == 0 && m == 256 &&
              memcmp(dec, src, 256) == 0);
    }
}

int main(void)
{
    test_boundary();
    test_valid();
    test_invalid();
    test_prefixes_and_mutations();
    test_base64();
    return check_result("daemon_multipart");
}
