/* solver_internal.h: what solver_ckpt.c may see of a solver (private). */
#ifndef NN_SOLVER_INTERNAL_H
#define NN_SOLVER_INTERNAL_H

#include "nn/solver.h"

typedef struct solver_view {
    nn_model *model;
    const nn_solver_config *cfg;
    const float *mean;
    int slots;
    nn_tensor *state, *best_params, *best_buffers;
    long *t;
    int *epoch;
    double *lr, *loss, *train_acc, *val_acc, *best_val_acc, *elapsed;
    nn_rng *rng, *rng_epoch;
} solver_view;

void solver_get_view(nn_solver *s, solver_view *v);
long solver_total(const nn_solver *s);
/* Redraws the current epoch's permutation from rng_epoch (after a restore). */
void solver_redraw_epoch(nn_solver *s);

#endif
