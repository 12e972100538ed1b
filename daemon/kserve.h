/* kserve.h: the body of a KServe v2 (Open Inference protocol) inference
 * request, POST /v2/models/{name}/infer, parsed and validated against a
 * model's input shape by one pure function, so that api_kserve.c only looks
 * the model up, runs it and writes the reply, and the parser can be fuzzed
 * on its own (tests/fuzz/fuzz_kserve.c).
 *
 *   {"id": "req-7",
 *    "inputs": [{"name": "input", "shape": [N, C, H, W], "datatype": "UINT8",
 *                "data": [0, 12, ...]}],
 *    "outputs": [{"name": "probabilities"}],
 *    "parameters": {...}}
 *
 * One input, "input", NCHW, datatype FP32 (already normalised) or UINT8
 * (raw pixels 0..255); "data" flat or nested (at most KSERVE_MAX_DEPTH
 * levels), row-major. "outputs", when given, may only name "probabilities".
 * The binary tensor extension (binary_data_output, binary_data,
 * binary_data_size) is refused. */
#ifndef CONVNETD_KSERVE_H
#define CONVNETD_KSERVE_H

#include <stddef.h>

#include <nn/tensor.h>

#define KSERVE_MAX_DEPTH 6   /* nesting of a "data" array ([N][C][H][W] is 4) */

typedef enum kserve_dtype {
    KSERVE_FP32 = 0,   /* values as the model computes on them */
    KSERVE_UINT8 = 1   /* pixels 0..255, to be normalised by the caller */
} kserve_dtype;

/* What a request is checked against: the model's input. */
typedef struct kserve_want {
    int c, h, w;        /* the image shape, each >= 1 */
    int max_batch;      /* the most images one request may hold, >= 1 */
    long model_id;      /* only named in the shape-mismatch message */
} kserve_want;

/* A valid request. Release with kserve_req_free. */
typedef struct kserve_req {
    nn_real *x;         /* len values, (n, c, h, w) row-major, as sent: every
                           one finite as nn_real; with UINT8 an integer 0..255 */
    size_t len;         /* n * c * h * w */
    int n;              /* images, 1..want->max_batch */
    kserve_dtype dtype;
    char *id;           /* the request's "id" (malloc'd), NULL when absent */
} kserve_req;

/* Parses and validates the request body[0..len) (borrowed; need not be
 * NUL-terminated; len 0 is an invalid body) against *want. Checked, in
 * order, each failure with its own message: a JSON object (json_parse_strict)
 * with only id/inputs/outputs/parameters; id a string; no
 * parameters.binary_data_output; outputs an array naming only
 * "probabilities" without parameters.binary_data; inputs an array of exactly
 * one object named "input" without parameters.binary_data_size; shape four
 * integers 1..1e6 equal to [N, c, h, w] with N <= max_batch; datatype FP32 or
 * UINT8; data an array of numbers, exactly N*c*h*w of them, each finite as
 * nn_real (FP32) or an integer 0..255 (UINT8).
 * Returns 0 with *out filled (owned by the caller), or -1 with *out cleared
 * (nothing to free) and a message naming the field at fault in err (errlen
 * bytes; err may be NULL), which the handler sends as a 400. Pure and
 * reentrant; allocation failure aborts (xmalloc). */
int kserve_parse_infer(kserve_req *out, const char *body, size_t len, const kserve_want *want,
                       char *err, size_t errlen);

/* Frees what r owns and clears it. NULL, or a cleared r, is a no-op. */
void kserve_req_free(kserve_req *r);

#endif
