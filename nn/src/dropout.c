/* dropout.c: inverted dropout with a stateless hashed mask (rng.h), so the
 * CPU and CUDA backends draw the same mask for the same seed. */
#include "nn/layers.h"
#include "nn/rng.h"
#include "internal.h"

static nn_status same(const nn_tensor *a, const char *an, const nn_tensor *b,
                      const char *bn, char *err)
{
    if (!a || !a->data || a->device != NN_DEVICE_CPU)
        return nn_fail(err, NN_ERR_ARG, "%s is NULL or not in host memory", an);
    if (!b || !b->data || b->device != NN_DEVICE_CPU)
        return nn_fail(err, NN_ERR_ARG, "%s is NULL or not in host memory", bn);
    if (a->size != b->size || a->size == 0)
        return nn_fail(err, NN_ERR_SHAPE, "%s has %zu elements, %s %zu", an, a->size,
                       bn, b->size);
    return NN_OK;
}

nn_status nn_dropout_forward(nn_tensor *out, nn_tensor *mask,
                             const nn_tensor *inp, double p, uint64_t seed,
                             char *err)
{
    if (!(p >= 0 && p < 1))
        return nn_fail(err, NN_ERR_ARG, "dropout p must be in [0, 1), got %g", p);
    NN_TRY(same(out, "dropout output", inp, "dropout input", err));
    NN_TRY(same(mask, "dropout mask", inp, "dropout input", err));
    nn_dropout_range(out->data, mask->data, inp->data, 0, inp->size, p, seed);
    return NN_OK;
}

void nn_dropout_range(nn_real *out, nn_real *mask, const nn_real *inp, size_t i0,
                      size_t i1, double p, uint64_t seed)
{
    const nn_real keep = (nn_real)(1.0 / (1.0 - p));
    for (size_t i = i0; i < i1; i++) {
        mask[i] = nn_hash_uniform(seed, i) >= p ? keep : 0;
        out[i] = inp[i] * mask[i];
    }
}

nn_status nn_dropout_backward(nn_tensor *dinp, const nn_tensor *dout,
                              const nn_tensor *mask, char *err)
{
    NN_TRY(same(dinp, "dropout dinp", dout, "dropout dout", err));
    NN_TRY(same(dinp, "dropout dinp", mask, "dropout mask", err));
    for (size_t i = 0; i < dinp->size; i++)
        dinp->data[i] += dout->data[i] * mask->data[i];
    return NN_OK;
}
