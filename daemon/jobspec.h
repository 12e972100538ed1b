/* jobspec.h: the training job spec a client POSTs to /v1/jobs, validated
 * completely before a job is queued, and parsed again by the worker that
 * runs it.
 *
 *   {"name":"fmnist-3layer",
 *    "dataset":{"name":"fashion-mnist","val_fraction":0.2,"limit":2000,
 *               "subtract_mean":true},
 *    "model":{...model.h's JSON...}, "solver":{...solver.h's JSON...},
 *    "device":"auto"}
 *
 * Checked: types, ranges and unknown fields at every level (nn checks model
 * and solver), that the data set exists and the split leaves both parts
 * non-empty, that the layers fit the data set's image shape and class count
 * (nn_model_estimate), that the device exists, and that the memory the job
 * needs fits what the device has. Pure apart from reading the host's free
 * memory: no device is touched, so HTTP threads may call it. */
#ifndef CONVNETD_JOBSPEC_H
#define CONVNETD_JOBSPEC_H

#include <stdint.h>

#include <cjson/cJSON.h>
#include <nn/solver.h>

#include "app.h"
#include "datasets.h"

#define JOBSPEC_NAME_CHARS 100
#define JOBSPEC_NAME_BYTES (JOBSPEC_NAME_CHARS * 4 + 1)   /* UTF-8 */

typedef struct jobspec {
    char name[JOBSPEC_NAME_BYTES];
    char dataset[NN_DATASET_NAME_LEN];
    double val_fraction;           /* [0, 1); default 0.2 */
    int limit;                     /* first `limit` images only; 0 = all */
    int subtract_mean;             /* default true */
    char *model_json;              /* malloc'd */
    nn_solver_config solver;       /* nn_solver_defaults() + "solver" */
    char device[32];               /* as asked: "auto", "cpu", "cuda:N" */
    /* derived */
    int device_index;              /* into app.devices, -1 when unresolved */
    ds_info data;
    int n_train, n_val;            /* the split's sizes */
    long num_iterations;
    uint64_t bytes;                /* memory the job needs on its device */
} jobspec;

/* A validation failure: the request field at fault ("solver.learning_rate",
 * "dataset.name"; "" when none) and a message that names it. */
typedef struct jobspec_error {
    char field[128];
    char message[512];
} jobspec_error;

/* What a check covers; the worker re-parses with JOBSPEC_PARSE only. */
typedef enum jobspec_mode {
    JOBSPEC_PARSE = 0,      /* structure, data set, split, model shapes */
    JOBSPEC_ADMIT = 1       /* also the device and its memory */
} jobspec_mode;

/* Validates doc (the parsed request body) against a's data sets and
 * devices and fills *out. Returns 0, or -1 with *e filled and *out cleared
 * (nothing to free). On success release *out with jobspec_clear. */
int jobspec_parse(jobspec *out, const cJSON *doc, app *a, jobspec_mode mode,
                  jobspec_error *e);

void jobspec_clear(jobspec *s);

/* Resolves a device string against a's devices: "auto" is the first GPU,
 * else the CPU. Returns the index or -1 with a message in e. */
int jobspec_resolve_device(const app *a, const char *device, jobspec_error *e);

#endif
