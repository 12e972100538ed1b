/* app.h: the state the daemon's HTTP handlers share.
 *
 * main.c fills one app before the server starts and frees it after the
 * server stops; handlers get it through http_req.app. Fields set at
 * start-up are read-only afterwards, so handlers read them without locks.
 * Later modules (store, job queue, workers) hang their handles here. */
#ifndef CONVNETD_APP_H
#define CONVNETD_APP_H

#include <time.h>

#include "config.h"

typedef struct app {
    const cfg *cfg;        /* validated settings */
    const char *blas;      /* one line describing the BLAS, e.g. nn_blas_info() */
    const char *token;     /* bearer token from token-file, NULL = none */
    int cpu_threads;       /* compute threads actually used on the CPU */
    time_t started;        /* for uptime */
} app;

#endif
