/* fuzz_checkpoint.c: checkpoint files from anywhere (uploads, a damaged
 * disk): the reader must reject what it cannot verify and never read out of
 * bounds or leak. */
#include <stdint.h>
#include "nn/checkpoint.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *meta = NULL;
    nn_ckpt_tensor *t = NULL;
    int n = 0;
    char err[NN_ERRLEN];
    if (nn_ckpt_read_mem(data, size, "fuzz", &meta, &t, &n, err) == NN_OK)
        nn_ckpt_free(meta, t, n);
    return 0;
}
