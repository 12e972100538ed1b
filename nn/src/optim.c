/* optim.c: the update rules and L2 regularisation on flat host arrays.
 * Every rule is one pass over memory; the model's parameters are one
 * contiguous buffer, so a step is one call. Arithmetic in nn_real, the
 * bias corrections in double. */
#include <math.h>
#include <string.h>
#include "nn/optim.h"
#include "internal.h"

nn_optim_params nn_optim_defaults(nn_update_rule rule)
{
    nn_optim_params p = {
        .rule = rule,
        .learning_rate = rule == NN_SGD || rule == NN_SGD_MOMENTUM ? 1e-2 : 1e-3,
        .momentum = 0.9,
        .decay_rate = 0.99,
        .beta1 = 0.9,
        .beta2 = 0.999,
        .epsilon = 1e-8,
    };
    return p;
}

static const char *const rule_names[] = { "sgd", "sgd_momentum", "rmsprop", "adam" };

const char *nn_update_rule_name(nn_update_rule rule)
{
    return (unsigned)rule < 4 ? rule_names[rule] : "?";
}

int nn_update_rule_parse(const char *name)
{
    for (int i = 0; name && i < 4; i++)
        if (strcmp(name, rule_names[i]) == 0)
            return i;
    return -1;
}

int nn_optim_state_slots(nn_update_rule rule)
{
    switch (rule) {
    case NN_SGD: return 0;
    case NN_SGD_MOMENTUM: return 1;
    case NN_RMSPROP: return 1;
    case NN_ADAM: return 2;
    }
    return 0;
}

nn_status nn_optim_check(const nn_tensor *param, const nn_tensor *state,
                         const nn_tensor *grad, const nn_optim_params *p, long t,
                         char *err)
{
    if (!p)
        return nn_fail(err, NN_ERR_ARG, "optimizer params are NULL");
    if ((unsigned)p->rule > NN_ADAM)
        return nn_fail(err, NN_ERR_ARG, "unknown update rule %d", (int)p->rule);
    if (!(p->learning_rate > 0) || !isfinite(p->learning_rate))
        return nn_fail(err, NN_ERR_ARG, "learning_rate must be > 0, got %g", p->learning_rate);
    if (!param || !grad || !param->data || !grad->data)
        return nn_fail(err, NN_ERR_ARG, "optimizer param or grad is NULL");
    if (param->device != NN_DEVICE_CPU || grad->device != NN_DEVICE_CPU)
        return nn_fail(err, NN_ERR_ARG, "optimizer tensors are not in host memory");
    if (param->size != grad->size)
        return nn_fail(err, NN_ERR_SHAPE, "param has %zu elements, grad %zu",
                       param->size, grad->size);
    const int slots = nn_optim_state_slots(p->rule);
    if (slots) {
        if (!state || !state->data || state->device != NN_DEVICE_CPU)
            return nn_fail(err, NN_ERR_ARG, "%s needs optimizer state",
                           nn_update_rule_name(p->rule));
        if (state->size < (size_t)slots * param->size)
            return nn_fail(err, NN_ERR_SHAPE, "optimizer state has %zu elements, needs %zu",
                           state->size, (size_t)slots * param->size);
    }
    if (p->rule == NN_ADAM && t < 1)
        return nn_fail(err, NN_ERR_ARG, "adam step number must be >= 1, got %ld", t);
    return NN_OK;
}

NN_SIMD
void nn_optim_range(nn_real *restrict w, const nn_real *restrict g,
                    nn_real *restrict state, size_t n, size_t i0, size_t i1,
                    const nn_optim_params *p, long t)
{
    const nn_real lr = (nn_real)p->learning_rate;
    switch (p->rule) {
    case NN_SGD:
        for (size_t i = i0; i < i1; i++)
            w[i] -= lr * g[i];
        break;
    case NN_SGD_MOMENTUM: {
        nn_real *restrict v = state;
        const nn_real mu = (nn_real)p->momentum;
        for (size_t i = i0; i < i1; i++) {
            v[i] = mu * v[i] - lr * g[i];
            w[i] += v[i];
        }
        break;
    }
    case NN_RMSPROP: {
        nn_real *restrict c = state;
        const nn_real d = (nn_real)p->decay_rate, eps = (nn_real)p->epsilon;
        for (size_t i = i0; i < i1; i++) {
            c[i] = d * c[i] + (1 - d) * g[i] * g[i];
            w[i] -= lr * g[i] / (nn_sqrt(c[i]) + eps);
        }
        break;
    }
    case NN_ADAM: {
        nn_real *restrict m = state, *restrict v = state + n;
        const nn_real b1 = (nn_real)p->beta1, b2 = (nn_real)p->beta2;
        /* lr * m_hat / (sqrt(v_hat) + eps) with the corrections folded in:
         * step = lr/(1-b1^t) * m / (sqrt(v) * 1/sqrt(1-b2^t) + eps). */
        const nn_real step = (nn_real)(p->learning_rate / (1 - pow(p->beta1, (double)t)));
        const nn_real vscale = (nn_real)(1 / sqrt(1 - pow(p->beta2, (double)t)));
        const nn_real eps = (nn_real)p->epsilon;
        for (size_t i = i0; i < i1; i++) {
            m[i] = b1 * m[i] + (1 - b1) * g[i];
            v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
            w[i] -= step * m[i] / (nn_sqrt(v[i]) * vscale + eps);
        }
        break;
    }
    }
}

nn_status nn_optim_step(nn_tensor *param, nn_tensor *state, const nn_tensor *grad,
                        const nn_optim_params *p, long t, char *err)
{
    NN_TRY(nn_optim_check(param, state, grad, p, t, err));
    nn_optim_range(param->data, grad->data, state ? state->data : NULL, param->size, 0,
                   param->size, p, t);
    return NN_OK;
}

NN_SIMD
double nn_l2_range(nn_real *restrict g, const nn_real *restrict w, size_t i0, size_t i1,
                   double reg)
{
    /* 16 nn_real partial sums per block of 1024, then double: independent
     * lanes vectorise (one accumulator would be a chain of dependent adds),
     * and short blocks keep float rounding far below what the loss shows. */
    enum { LANES = 16, BLOCK = 1024 };
    double s = 0;
    const nn_real two_reg = (nn_real)(2 * reg);
    for (size_t b = i0; b < i1; b += BLOCK) {
        size_t e = b + BLOCK < i1 ? b + BLOCK : i1, i = b;
        nn_real part[LANES] = { 0 };
        for (; i + LANES <= e; i += LANES)
            for (int j = 0; j < LANES; j++) {
                part[j] += w[i + j] * w[i + j];
                g[i + j] += two_reg * w[i + j];
            }
        for (; i < e; i++) {
            part[0] += w[i] * w[i];
            g[i] += two_reg * w[i];
        }
        for (int j = 0; j < LANES; j++)
            s += part[j];
    }
    return s;
}

nn_status nn_l2_reg(double *sumsq, nn_tensor *grad, const nn_tensor *param,
                    double reg, char *err)
{
    if (!sumsq || !grad || !param || !grad->data || !param->data)
        return nn_fail(err, NN_ERR_ARG, "l2 reg: NULL argument");
    if (grad->device != NN_DEVICE_CPU || param->device != NN_DEVICE_CPU)
        return nn_fail(err, NN_ERR_ARG, "l2 reg tensors are not in host memory");
    if (grad->size != param->size)
        return nn_fail(err, NN_ERR_SHAPE, "param has %zu elements, grad %zu",
                       param->size, grad->size);
    if (!(reg >= 0))
        return nn_fail(err, NN_ERR_ARG, "reg must be >= 0, got %g", reg);
    *sumsq = nn_l2_range(grad->data, param->data, 0, param->size, reg);
    return NN_OK;
}
