/* fuzz_multipart.c: mp_parse(), the multipart/form-data body parser the
 * classify upload uses, and mp_boundary() on the Content-Type header. The
 * first line of the input (up to LF, at most 200 bytes) is the
 * Content-Type header value; when it holds no "boundary=" the fixed
 * "multipart/form-data; boundary=XyZ" is used and the whole input is the
 * body. Every part the parser returns must point inside the body. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "multipart.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char ctype[256], bnd[MP_BOUNDARY_MAX + 1], err[256];
    mp_part parts[MP_MAX_PARTS];
    const uint8_t *body = data;
    size_t len = size;
    const uint8_t *nl = memchr(data, '\n', size < 200 ? size : 200);
    int n = 0;

    strcpy(ctype, "multipart/form-data; boundary=XyZ");
    if (nl != NULL) {
        size_t l = (size_t)(nl - data);
        if (memchr(data, 0, l) == NULL) {
            memcpy(ctype, data, l);
            ctype[l] = 0;
            if (strstr(ctype, "boundary=") != NULL) {
                body = nl + 1;
                len = size - l - 1;
            } else {
                strcpy(ctype, "multipart/form-data; boundary=XyZ");
            }
        }
    }
    if (mp_boundary(ctype, bnd, sizeof bnd, err, sizeof err) == 0 &&
        strlen(bnd) > MP_BOUNDARY_MAX)
        abort();
    /* A copy of exactly len bytes: an over-read past the body is caught by
     * ASan, and the parser must not need a NUL terminator. */
    uint8_t *copy = malloc(len ? len : 1);
    if (copy == NULL)
        return 0;
    if (len)
        memcpy(copy, body, len);
    if (mp_parse(ctype, copy, len, parts, MP_MAX_PARTS, &n, err, sizeof err) == 0) {
        if (n < 0 || n > MP_MAX_PARTS)
            abort();
        for (int i = 0; i < n; i++) {
            if (parts[i].data < copy || parts[i].data + parts[i].len > copy + len)
                abort();
            if (strlen(parts[i].name) >= MP_NAME_MAX ||
                strlen(parts[i].filename) >= MP_FILENAME_MAX ||
                strlen(parts[i].content_type) >= MP_CTYPE_MAX)
                abort();
        }
    }
    /* A smaller part budget than the body has parts must fail cleanly. */
    (void)mp_parse(ctype, copy, len, parts, 2, &n, err, sizeof err);
    free(copy);
    return 0;
}
