/* solver.h: training a model on a data split (the report's Solver): shuffled
 * minibatches from a seed, epochs, an update rule with learning-rate decay,
 * accuracy checks, the best-validation parameters kept, the report's log
 * lines, hooks between minibatches, and checkpoints that resume exactly.
 *
 * The solver owns no thread: nn_solver_run() trains on the caller's thread
 * until done or until a hook asks it to stop; calling it again continues.
 * Checkpoints hold everything needed to continue step for step: params,
 * buffers, optimizer state, best params, RNG states and the position. */
#ifndef NN_SOLVER_H
#define NN_SOLVER_H

#include "nn/data.h"
#include "nn/model.h"
#include "nn/optim.h"

typedef struct nn_solver nn_solver;

typedef struct nn_solver_config {
    nn_optim_params optim;
    double lr_decay;         /* learning rate *= lr_decay after every epoch; (0, 1] */
    int batch_size;          /* 1..4096 */
    int num_epochs;          /* 1..10000 */
    long max_iterations;     /* stop after this many (0: all epochs) */
    uint64_t seed;           /* weights, shuffling, augmentation, dropout */
    int print_every;         /* log every k iterations (0: never) */
    int num_train_samples;   /* fixed subset for train accuracy (0: 1000) */
    int num_val_samples;     /* 0: the whole validation split */
    nn_augment augment;
} nn_solver_config;

/* Defaults: adam at 1e-3, lr_decay 1, batch 64, 1 epoch, seed 0,
 * print_every 50, 1000 train samples, whole validation split, no
 * augmentation. */
nn_solver_config nn_solver_defaults(void);

/* Fills cfg from the "solver" JSON object (fields: update_rule,
 * learning_rate, momentum, decay_rate, beta1, beta2, epsilon, lr_decay,
 * batch_size, epochs, max_iterations, seed, print_every, num_train_samples,
 * num_val_samples, augment {crop_pad, hflip}); missing fields keep cfg's
 * values, unknown fields and bad values are errors whose message starts
 * with the field's path ("solver.learning_rate: must be > 0, got -1"). */
nn_status nn_solver_config_parse(nn_solver_config *cfg, const char *json, char *err);
/* The config as a JSON object (malloc'd; free()). NULL on OOM. */
char *nn_solver_config_json(const nn_solver_config *cfg);

typedef struct nn_solver_progress {
    long iteration;          /* iterations done, 1-based after the first */
    long num_iterations;
    int epoch;               /* epochs completed */
    int num_epochs;
    double loss;             /* of the last iteration */
    double learning_rate;    /* in force for the next iteration */
    double train_acc, val_acc;  /* from the last accuracy check (-1: none yet) */
    double best_val_acc;
    double elapsed_s;        /* training time, accuracy checks excluded */
    double images_per_s;     /* over the training time so far */
    int epoch_end;           /* set in on_epoch when an epoch just ended */
} nn_solver_progress;

/* Hooks run on the training thread between minibatches; any may be NULL.
 * Returning non-zero from on_iteration or on_epoch stops nn_solver_run()
 * after that point (a pause or cancel); state stays consistent and a later
 * nn_solver_run() continues. log receives each report line, without a
 * newline: "(Time 0.09 sec; Iteration 1 / 625) loss: 2.306690" and
 * "(Epoch 0 / 1) train acc: 0.091000; val_acc: 0.102500". between_batches
 * runs after each batch of an accuracy check inside nn_solver_run (a check
 * of 13,000 samples is hundreds of forward passes: the daemon answers
 * inference requests there); it may use the backend but not the solver or
 * its model. */
typedef struct nn_solver_hooks {
    void *user;
    int (*on_iteration)(void *user, const nn_solver_progress *p);
    int (*on_epoch)(void *user, const nn_solver_progress *p);
    void (*log)(void *user, const char *line);
    void (*between_batches)(void *user);
} nn_solver_hooks;

/* Creates a solver for model m (borrowed) on train/val (borrowed; val may
 * have count 0), normalising with mean (c floats, copied). The model's
 * max_batch must be >= cfg->batch_size. */
nn_status nn_solver_create(nn_solver **out, nn_model *m, const nn_split *train,
                           const nn_split *val, const float *mean,
                           const nn_solver_config *cfg, char *err);
void nn_solver_free(nn_solver *s);

/* Trains until all iterations are done (returns NN_OK, nn_solver_done() is
 * 1) or a hook stops it (NN_OK, done 0), or an error. */
nn_status nn_solver_run(nn_solver *s, const nn_solver_hooks *hooks, char *err);
/* One iteration without hooks or checks: *loss of that minibatch. */
nn_status nn_solver_step(nn_solver *s, double *loss, char *err);
int nn_solver_done(const nn_solver *s);
void nn_solver_progress_get(const nn_solver *s, nn_solver_progress *p);

/* Classification accuracy of the model on up to num_samples samples of
 * split (0: all), in order, in batches, inference mode. */
nn_status nn_solver_accuracy(nn_solver *s, double *acc, const nn_split *split,
                             int num_samples, char *err);
/* Copies the best-validation parameters into the model (after training). */
nn_status nn_solver_use_best(nn_solver *s, char *err);

/* Writes a checkpoint (checkpoint.h; docs/checkpoint.md) of the model and
 * the solver's position to path, atomically. class_names (num_classes
 * strings; NULL: "0".."k-1") and extra_json (a JSON object stored under
 * "extra"; NULL: none) go into the metadata. */
nn_status nn_solver_save(nn_solver *s, const char *path,
                         const char *const *class_names, const char *extra_json,
                         char *err);
/* Restores params, buffers, optimizer state, best params and position from
 * a checkpoint written by nn_solver_save for the same model spec and
 * solver config; training then continues exactly where it stopped. */
nn_status nn_solver_restore(nn_solver *s, const char *path, char *err);

/* What a checkpoint says about its model, for serving it. */
typedef struct nn_model_info {
    char *meta_json;         /* the whole metadata document */
    nn_model_config cfg;     /* input shape, classes (max_batch from the caller) */
    char **class_names;      /* cfg.num_classes strings */
    float mean[4];           /* per input channel */
    long iteration;
    int epoch;
    double best_val_acc;     /* -1 when unknown */
} nn_model_info;

/* Builds the model a checkpoint describes on b with room for max_batch
 * images and loads its best-validation parameters (use_best, when stored)
 * or its latest ones. *info (may be NULL) receives the metadata; release it
 * with nn_model_info_free. */
nn_status nn_model_load(nn_model **out, nn_model_info *info, nn_backend *b,
                        const char *path, int max_batch, int use_best, char *err);
void nn_model_info_free(nn_model_info *info);

#endif
