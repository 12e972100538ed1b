/* multipart.h: a small, strict, bounded parser for multipart/form-data
 * request bodies (RFC 7578 over RFC 2046), the way a browser's FormData or
 * `curl -F` uploads a file.
 *
 * It is a pure function over a body already in memory: parts point into
 * the body, nothing is copied or allocated, and every length is bounded.
 * Not here: streaming, nested multipart/mixed, Content-Transfer-Encoding
 * other than 7bit/8bit/binary (refused), RFC 5987 filename* parameters
 * (ignored), preambles (refused: browsers and curl never send one). */
#ifndef CONVNETD_MULTIPART_H
#define CONVNETD_MULTIPART_H

#include <stddef.h>
#include <stdint.h>

#define MP_BOUNDARY_MAX 70        /* RFC 2046 */
#define MP_MAX_PARTS 16           /* a form with more parts is refused */
#define MP_MAX_HEADER_BYTES 8192  /* one part's header block, CRLFCRLF included */
#define MP_NAME_MAX 64            /* field names, NUL included */
#define MP_FILENAME_MAX 256       /* file names, NUL included */
#define MP_CTYPE_MAX 128          /* a part's Content-Type, NUL included */

/* One part of a form. data points into the body given to mp_parse. */
typedef struct mp_part {
    char name[MP_NAME_MAX];           /* the form field's name ("" when absent) */
    char filename[MP_FILENAME_MAX];   /* the upload's file name; see has_filename */
    int has_filename;                 /* 1 when the part is a file (filename= given) */
    char content_type[MP_CTYPE_MAX];  /* the part's Content-Type, "" when absent */
    const uint8_t *data;
    size_t len;
} mp_part;

/* Extracts the boundary from a Content-Type value such as
 * "multipart/form-data; boundary=----x" (the type case-insensitive, the
 * boundary token or quoted-string, 1..70 characters of RFC 2046's bchars,
 * not ending in a space) into out (outlen >= MP_BOUNDARY_MAX + 1). Returns
 * 0, or -1 with a message in err (errlen bytes, err may be NULL) when the
 * type is not multipart/form-data or the boundary is missing or invalid. */
int mp_boundary(const char *content_type, char *out, size_t outlen, char *err, size_t errlen);

/* Parses body (len bytes, borrowed; need not be NUL-terminated) sent with
 * content_type into parts[0..*nparts) (at most max, max <= MP_MAX_PARTS).
 * The body must start with the first delimiter ("--" boundary CRLF) and end
 * with the close delimiter ("--" boundary "--"; anything after it is
 * ignored). Each part needs a Content-Disposition: form-data header; its
 * name and filename parameters (token or quoted-string with backslash
 * escapes) are copied out, over-long ones refused. Header blocks are at
 * most MP_MAX_HEADER_BYTES, lines end in CRLF, header folding is refused.
 * Returns 0, or -1 with a message in err naming the problem (and parts[]
 * partly written). Pure and reentrant. */
int mp_parse(const char *content_type, const uint8_t *body, size_t len, mp_part *parts,
             int max, int *nparts, char *err, size_t errlen);

#endif
