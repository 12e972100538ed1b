/* datasets.h: the data sets convnetd can train on, found at start-up, and
 * a cache that loads each one on first use and shares that one copy.
 *
 * Found: Fashion-MNIST wherever nn finds it installed (Debian's
 * dataset-fashion-mnist), plus every subdirectory of --data-dir that holds
 * an MNIST-style IDX pair (train-images-idx3-ubyte + train-labels-idx1-ubyte,
 * optionally gzipped, optional t10k-* test pair) or CIFAR-10 binary batches
 * (data_batch_1.bin ..., test_batch.bin, directly or in
 * cifar-10-batches-bin/), or folders of PNG/JPEG images, one sub-folder per
 * class, optionally split into train/ and test/ (dataset_png.h). A data
 * set's name is its directory's name. Only headers and labels are read at
 * start-up; pixels are loaded when a job first needs them and stay cached
 * for the daemon's life (a later job on the same data set costs nothing).
 * Not here: rescanning while running. */
#ifndef CONVNETD_DATASETS_H
#define CONVNETD_DATASETS_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <nn/data.h>

typedef struct datasets datasets;

/* What validation needs to know about a data set without loading it. */
typedef struct ds_info {
    int c, h, w;            /* one image */
    int num_classes;
    int n_train, n_test;    /* n_test 0: no test part */
    int loaded;             /* the training part is in memory now */
    uint64_t load_bytes;    /* memory loading the training part would take */
} ds_info;

typedef enum ds_part { DS_TRAIN = 0, DS_TEST = 1 } ds_part;

/* Finds the data sets (see above) and returns the registry in *out. A
 * missing or unreadable data_dir, or a broken data set in it, is logged and
 * skipped: the daemon still serves the rest. Never fails otherwise. */
void datasets_scan(datasets **out, const char *data_dir);

/* Frees the registry and every cached data set. No data set may be in use.
 * NULL is a no-op. */
void datasets_free(datasets *r);

/* The number of data sets found. */
int datasets_count(const datasets *r);

/* Fills *info for the data set called name. 0, or -1 when there is none.
 * Thread-safe. */
int datasets_info(datasets *r, const char *name, ds_info *info);

/* The registry as the GET /v1/datasets document:
 * {"datasets":[{"name","format","shape":[c,h,w],"num_classes",
 * "class_names":[...],"sizes":{"train":n,"test":m},"loaded"}]}. Caller owns
 * it. Thread-safe. */
cJSON *datasets_json(datasets *r);

/* Returns in *out the part of data set `name`, loading it on first use;
 * concurrent callers for the same data set wait for one load. The data set
 * stays valid until the matching datasets_release. Returns 0, or -1 with a
 * message in err (unknown name, unreadable or corrupt files, or files that
 * changed shape since start-up). Blocks for the load (seconds): call it from
 * a worker, never from an HTTP thread. */
int datasets_acquire(datasets *r, const char *name, ds_part part, const nn_dataset **out,
                     char *err, size_t errlen);

/* Ends a use begun by a successful datasets_acquire. */
void datasets_release(datasets *r, const char *name);

#endif
