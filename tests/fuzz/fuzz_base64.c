/* fuzz_base64.c: b64_decode() (util.h), which decodes the image_b64 field
 * of classify requests. The output buffer is exactly the documented worst
 * case (inlen / 4 * 3 + 2) so a write past it is an ASan report; a second
 * call with one byte less room must fail or produce the same bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 16)
        return 0;
    size_t cap = size / 4 * 3 + 2, n = 0, n2 = 0;
    unsigned char *out = malloc(cap), *out2 = malloc(cap);
    char *in = malloc(size ? size : 1);
    if (out == NULL || out2 == NULL || in == NULL)
        goto done;
    if (size)
        memcpy(in, data, size);
    if (b64_decode(out, cap, &n, in, size) == 0) {
        if (n > cap)
            abort();
        if (n > 0) {
            if (b64_decode(out2, n, &n2, in, size) != 0 || n2 != n || memcmp(out, out2, n))
                abort();
            if (b64_decode(out2, n - 1, &n2, in, size) == 0)
                abort();
        }
    }
done:
    free(out);
    free(out2);
    free(in);
    return 0;
}
