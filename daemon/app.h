/* app.h: the state the daemon's threads share.
 *
 * main.c fills one app before the server starts and frees it after the
 * server stops; handlers get it through http_req.app, workers through their
 * worker. Fields set at start-up are read-only afterwards, so they are read
 * without locks; the objects hung here (store, datasets, jobs, http) lock
 * themselves. */
#ifndef CONVNETD_APP_H
#define CONVNETD_APP_H

#include <stdint.h>
#include <time.h>

#include "config.h"

struct store;
struct datasets;
struct jobs;
struct serve;
struct models;

/* A compute device the daemon trains on; each has one worker thread, and
 * app.devices[i] is served by worker i. */
typedef struct device_desc {
    char name[16];        /* "cpu", "cuda:0", ...: what a job's "device" names */
    int cuda;             /* the CUDA device index, -1 for the CPU */
    char info[160];       /* one line for /v1/health */
    uint64_t memory;      /* a GPU's memory in bytes (0: unknown); the CPU's
                             is read live from the host */
} device_desc;

#define APP_MAX_DEVICES 17   /* the CPU and up to 16 GPUs */

typedef struct app {
    const cfg *cfg;        /* validated settings */
    const char *blas;      /* one line describing the BLAS, e.g. nn_blas_info() */
    const char *token;     /* bearer token from token-file, NULL = none */
    int cpu_threads;       /* compute threads actually used on the CPU */
    time_t started;        /* for uptime */
    int ndevices;          /* devices[0..ndevices) have workers; 0 in unit tests */
    device_desc devices[APP_MAX_DEVICES];
    int have_cuda;         /* built with the CUDA backend */
    char db_path[CFG_PATH_MAX + 32];  /* <state-dir>/convnetd.db */
    struct store *db;      /* the connection HTTP threads share (workers own theirs) */
    struct datasets *datasets;
    struct jobs *jobs;
    struct serve *serve;   /* inference queues and evaluations (serve.h); NULL in unit tests */
    struct models *models; /* checkpoint metadata and filter pictures (models.h); likewise */
    char web_dir[CFG_PATH_MAX]; /* the dashboard's directory, resolved; "" = none */
} app;

#endif
