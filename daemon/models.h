/* models.h: the trained models as the HTTP threads see them. Every job
 * that has written a checkpoint is a model, and a model's id is its job's
 * id; its file is <state-dir>/jobs/<id>/checkpoint.ckpt.
 *
 * A registry caches what serving needs from each checkpoint's metadata
 * (input shape, classes, normalisation mean, position), re-reading it when
 * the file changes (a training job rewrites it every epoch), and the first
 * conv layer's filter picture per checkpoint. Reading is of files only:
 * nothing here touches a device (the worker loads models; serve.h). */
#ifndef CONVNETD_MODELS_H
#define CONVNETD_MODELS_H

#include <stddef.h>
#include <stdint.h>

#include <nn/data.h>

#include "app.h"

#define MODELS_CACHE_MAX 256        /* metadata entries kept (LRU) */
#define MODELS_FILTERS_CACHE_MAX 16 /* filter pictures kept (LRU) */
#define MODELS_PATH_MAX (CFG_PATH_MAX + 96)

/* What serving a model needs to know, from its checkpoint's metadata
 * (docs/checkpoint.md, written by nn_solver_save). Immutable once
 * published: readers hold a reference (models_get / models_put). */
typedef struct model_meta {
    long id;                      /* the job's id */
    char path[MODELS_PATH_MAX];   /* the checkpoint file */
    int device;                   /* index of the worker that serves it */
    int c, h, w;                  /* input shape */
    int num_classes;
    char **class_names;           /* num_classes strings */
    float mean[NN_DATASET_MAX_CHANNELS];  /* subtracted from pixel/255 per channel */
    long iteration;               /* the checkpoint's position */
    int epoch;
    double best_val_acc;          /* -1 when unknown */
    char dataset[NN_DATASET_NAME_LEN];   /* "" when the checkpoint does not say */
    unsigned long long file_size;
    double mtime;                 /* Unix seconds */
    /* private to models.c */
    unsigned long long ino_, dev_;
    long long mtime_ns_;
    int refs_;
} model_meta;

typedef struct models models;

/* A registry for a's models (a->cfg->state_dir, a->db for the jobs' devices,
 * a->devices). Never fails. */
models *models_create(app *a);
/* Frees r; no reference may be held. NULL is a no-op. */
void models_free(models *r);

/* The checkpoint file of job id, and the file of its filter snapshot at the
 * end of epoch `epoch` (kept by the worker), into out (len bytes). */
void models_ckpt_path(const app *a, long id, char *out, size_t len);
void models_filters_path(const app *a, long id, int epoch, char *out, size_t len);

typedef enum models_rc {
    MODELS_OK = 0,
    MODELS_NOTFOUND,    /* no such job, or it has no checkpoint (yet) */
    MODELS_ERROR        /* the checkpoint is unreadable or not one of ours (err says) */
} models_rc;

/* A reference to job id's model metadata in *out, read from the
 * checkpoint's header and metadata when the file is new or changed since
 * the last call (a stat per call decides; the tensors are not read).
 * Release with models_put. err (errlen bytes) explains NOTFOUND and ERROR.
 * Thread-safe. */
models_rc models_get(models *r, long id, const model_meta **out, char *err, size_t errlen);
/* Ends a reference from models_get. NULL is a no-op. */
void models_put(models *r, const model_meta *m);

/* The first conv layer's filters of job id as a PNG (pngenc.h's grid): the
 * latest checkpoint's when epoch < 0, else the snapshot kept at the end of
 * that epoch (when there is none, the latest checkpoint if it is of that
 * epoch or earlier). *png (malloc'd, caller frees) of *len bytes, etag
 * (FILTERS_ETAG_LEN bytes), the picture's width and height (may be NULL),
 * and the epoch and iteration the weights are from. Reads the weights
 * from the file (nn_ckpt_read) only when it changed; the picture is
 * cached. MODELS_NOTFOUND (err says: no job, no checkpoint, no such epoch,
 * no conv layer), MODELS_ERROR. Thread-safe. */
models_rc models_filters(models *r, long id, int epoch, uint8_t **png, size_t *len,
                         char *etag, int *width, int *height, int *at_epoch,
                         long *at_iteration, char *err, size_t errlen);

/* Lists the epochs with a filter snapshot for job id: the latest max of
 * them, ascending, into epochs; returns how many there are in all (0 when
 * none), which may exceed max. */
int models_filter_epochs(const app *a, long id, int *epochs, int max);

#endif
