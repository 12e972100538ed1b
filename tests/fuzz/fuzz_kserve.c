/* fuzz_kserve.c: kserve_parse_infer(), the KServe v2 inference request
 * parser behind POST /v2/models/{name}/infer. The first byte picks the
 * model's input shape (byte % 4: 1x28x28, 3x32x32, 1x2x2, 3x1x2, the small
 * ones so that valid requests are within the fuzzer's reach); the rest is
 * the body, copied to a buffer of exactly its length (no NUL after it), so
 * an over-read is an ASan report. On success the result must match the
 * shape and the contract (n in 1..max_batch, len = n*c*h*w, values finite,
 * UINT8 values integers 0..255); on failure the output must be cleared and
 * the message non-empty. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kserve.h"

static const kserve_want shapes[] = {
    { .c = 1, .h = 28, .w = 28, .max_batch = 64, .model_id = 1 },
    { .c = 3, .h = 32, .w = 32, .max_batch = 64, .model_id = 2 },
    { .c = 1, .h = 2, .w = 2, .max_batch = 64, .model_id = 3 },
    { .c = 3, .h = 1, .w = 2, .max_batch = 4, .model_id = 4 },
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kserve_req r;
    char err[512];

    if (size < 1 || size > 1 << 20)
        return 0;
    const kserve_want *want = &shapes[data[0] % (sizeof shapes / sizeof shapes[0])];
    size_t len = size - 1;
    char *body = malloc(len ? len : 1);
    if (body == NULL)
        return 0;
    if (len)
        memcpy(body, data + 1, len);
    err[0] = 0;
    int rc = kserve_parse_infer(&r, body, len, want, err, sizeof err);
    if (rc == 0) {
        size_t per = (size_t)want->c * (size_t)want->h * (size_t)want->w;
        if (r.n < 1 || r.n > want->max_batch || r.len != (size_t)r.n * per || r.x == NULL)
            abort();
        if (r.dtype != KSERVE_FP32 && r.dtype != KSERVE_UINT8)
            abort();
        for (size_t i = 0; i < r.len; i++) {
            double v = r.x[i];
            if (!isfinite(r.x[i]))
                abort();
            if (r.dtype == KSERVE_UINT8 && (v != floor(v) || v < 0 || v > 255))
                abort();
        }
        if (r.id != NULL && strlen(r.id) > len)
            abort();
        kserve_req_free(&r);
        if (r.x != NULL || r.id != NULL)
            abort();
    } else {
        if (r.x != NULL || r.id != NULL || r.n != 0 || r.len != 0 || err[0] == 0)
            abort();
        kserve_req_free(&r);
    }
    /* Without a message buffer (err NULL) the verdict must be the same. */
    if (data[0] & 4) {
        if (kserve_parse_infer(&r, body, len, want, NULL, 0) != rc)
            abort();
        kserve_req_free(&r);
    }
    free(body);
    return 0;
}
