/* fuzz_model_spec.c: model and solver JSON as a client sends them: any bytes
 * must parse to a model or to an error naming a field, never crash, leak or
 * allocate without bound (estimate does not allocate the model). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "nn/solver.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 16)
        return 0;
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = 0;
    char err[NN_ERRLEN];
    size_t bytes;
    static const nn_model_config cfgs[] = {
        { .channels = 1, .height = 28, .width = 28, .num_classes = 10, .max_batch = 64 },
        { .channels = 3, .height = 32, .width = 32, .num_classes = 10, .max_batch = 8 },
    };
    for (size_t i = 0; i < sizeof cfgs / sizeof cfgs[0]; i++)
        (void)nn_model_estimate(&bytes, s, &cfgs[i], 2, err);
    nn_solver_config sc = nn_solver_defaults();
    (void)nn_solver_config_parse(&sc, s, err);
    free(s);
    return 0;
}
