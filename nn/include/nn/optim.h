/* optim.h: the update rules (CS231n's definitions), L2 regularisation, and
 * their kernels on flat host arrays. A model keeps every parameter in one
 * contiguous buffer, so one call updates the whole model. */
#ifndef NN_OPTIM_H
#define NN_OPTIM_H

#include "nn/tensor.h"

typedef enum nn_update_rule {
    NN_SGD = 0,
    NN_SGD_MOMENTUM,
    NN_RMSPROP,
    NN_ADAM
} nn_update_rule;

typedef struct nn_optim_params {
    nn_update_rule rule;
    double learning_rate;
    double momentum;    /* sgd_momentum, e.g. 0.9 */
    double decay_rate;  /* rmsprop, e.g. 0.99 */
    double beta1;       /* adam, e.g. 0.9 */
    double beta2;       /* adam, e.g. 0.999 */
    double epsilon;     /* rmsprop and adam, e.g. 1e-8 */
} nn_optim_params;

/* Defaults for a rule: lr 1e-2 (sgd*) or 1e-3 (rmsprop, adam), momentum 0.9,
 * decay_rate 0.99, beta1 0.9, beta2 0.999, epsilon 1e-8. */
nn_optim_params nn_optim_defaults(nn_update_rule rule);

/* "sgd", "sgd_momentum", "rmsprop", "adam" <-> rule; parse returns -1 for
 * an unknown name. */
const char *nn_update_rule_name(nn_update_rule rule);
int nn_update_rule_parse(const char *name);

/* Arrays of optimizer state per parameter: 0 sgd, 1 momentum (velocity),
 * 1 rmsprop (cache), 2 adam (m, v). */
int nn_optim_state_slots(nn_update_rule rule);

/* One step over flat arrays: param and grad have the same size; state holds
 * nn_optim_state_slots() arrays of that size back to back, zero before the
 * first step. t is the 1-based step number (Adam's bias correction).
 *   sgd:          w -= lr * g
 *   sgd_momentum: v = mu * v - lr * g;  w += v
 *   rmsprop:      c = d * c + (1 - d) * g^2;  w -= lr * g / (sqrt(c) + eps)
 *   adam:         m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
 *                 w -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps) */
nn_status nn_optim_step(nn_tensor *param, nn_tensor *state, const nn_tensor *grad,
                        const nn_optim_params *p, long t, char *err);

/* L2 regularisation of one weight tensor: grad += 2 * reg * param and
 * *sumsq = sum of param^2 (the loss adds reg * sumsq). */
nn_status nn_l2_reg(double *sumsq, nn_tensor *grad, const nn_tensor *param,
                    double reg, char *err);

#endif
