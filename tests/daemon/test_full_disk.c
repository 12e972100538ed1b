/* test_full_disk.c: a full disk while a job checkpoints. The "disk" is the
 * daemon's RLIMIT_FSIZE (set by daemon_proc before exec, with SIGXFSZ
 * ignored, so write() fails with EFBIG): small enough that a checkpoint of
 * the job's model cannot be written, large enough for the store, its WAL
 * and the log. No mount or root needed, so it runs in CI containers.
 *
 * 1. Without a limit: a job trains, is paused (a checkpoint), the daemon
 *    stops. 2. With the limit: the job is resumed; its next checkpoint
 *    fails. The job must end "failed" with the reason stored on it, and the
 *    daemon must keep serving. 3. After a stop: the store passes
 *    PRAGMA integrity_check, the previous checkpoint is intact and loads
 *    (nn_ckpt_read), no temp file is left, and a restart without the limit
 *    serves the failed job with its error. */
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <nn/checkpoint.h>
#include <sqlite3.h>

#include "check.h"
#include "daemon_proc.h"

#define H 16
#define W 16
#define K 3

/* hidden_dim 1024 on 16x16 with 16 filters: ~1M weights, so a checkpoint
 * (weights and Adam's two moments) is ~12 MB, while the store stays far
 * below the limit. */
static const char job_spec[] =
    "{\"name\":\"big\",\"dataset\":{\"name\":\"synth\",\"val_fraction\":0.2,\"limit\":200},"
    "\"model\":{\"preset\":\"three_layer_convnet\",\"num_filters\":16,\"hidden_dim\":1024},"
    "\"solver\":{\"update_rule\":\"adam\",\"epochs\":1000,\"batch_size\":20},"
    "\"device\":\"" TEST_DEVICE "\"}";

static long long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

/* PRAGMA integrity_check's single row, into out. 0 or -1. */
static int integrity(const char *dbpath, char *out, size_t len)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int rc = -1;

    snprintf(out, len, "(cannot open)");
    if (sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
        snprintf(out, len, "%s", (const char *)sqlite3_column_text(st, 0));
        rc = 0;
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return rc;
}

/* 1 when dir holds a "checkpoint.ckpt.tmp.*" file. */
static int has_temp(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int found = 0;

    if (d == NULL)
        return 0;
    while ((e = readdir(d)) != NULL)
        if (strncmp(e->d_name, "checkpoint.ckpt.tmp", 19) == 0)
            found = 1;
    closedir(d);
    return found;
}

static int ckpt_loads(const char *path)
{
    char err[512];
    char *meta = NULL;
    nn_ckpt_tensor *t = NULL;
    int n = 0;
    nn_status st = nn_ckpt_read(path, &meta, &t, &n, err);

    if (st != NN_OK)
        fprintf(stderr, "nn_ckpt_read %s: %s\n", path, err);
    nn_ckpt_free(meta, t, n);
    return st == NN_OK && n > 0;
}

int main(int argc, char **argv)
{
    char log2[512], dbpath[600], ckpt[700], jobdir[600];
    char path[96], result[256];
    cJSON *doc = NULL;
    long long size0, size1;
    dp_opts opts = { 0 };
    dproc d;
    long id;
    int st;

    dp_dirs dirs;
    int rc = dp_setup(&dirs, "convnetd-disk", argc, argv);
    if (rc != 0)
        return rc;
    const char *tmp = dirs.tmp, *state = dirs.state, *data = dirs.data, *log1 = dirs.log;
    snprintf(log2, sizeof log2, "%s/convnetd-limited.log", tmp);
    snprintf(dbpath, sizeof dbpath, "%s/convnetd.db", state);
    if (tj_write_synth(data, "synth", 250, H, W, K, 9) != 0) {
        fprintf(stderr, "cannot write the data set\n");
        return 1;
    }

    /* 1. A checkpoint, written with room to spare. */
    if (dp_start(&d, argv[1], state, data, log1, NULL) != 0)
        return 1;
    id = tj_submit(d.port, job_spec);
    CHECK(id > 0);
    CHECK(tj_wait_iteration(d.port, id, 2, 60));
    snprintf(path, sizeof path, "/v1/jobs/%ld/pause", id);
    st = tj_request(d.port, "POST", path, NULL, NULL);
    CHECKF(st == 200 || st == 202, "pause: %d", st);
    CHECK(tj_wait_status(d.port, id, "paused", 60));
    st = dp_stop(&d, SIGTERM, 30);
    CHECKF(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status %d", st);
    snprintf(jobdir, sizeof jobdir, "%s/jobs/%ld", state, id);
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint.ckpt", jobdir);
    size0 = file_size(ckpt);
    CHECKF(size0 > 4 * 1024 * 1024, "checkpoint is %lld bytes", size0);
    CHECK(ckpt_loads(ckpt));

    /* 2. The same job on a "full disk": half the checkpoint's size. */
    opts.fsize_limit = size0 / 2;
    CHECKF(file_size(dbpath) < opts.fsize_limit / 2, "store %lld bytes, limit %lld",
           file_size(dbpath), opts.fsize_limit);
    if (dp_start_ex(&d, argv[1], state, data, log2, NULL, &opts) != 0)
        return 1;
    printf("RLIMIT_FSIZE %lld bytes; checkpoint %lld bytes\n", opts.fsize_limit, size0);
    snprintf(path, sizeof path, "/v1/jobs/%ld/resume", id);
    st = tj_request(d.port, "POST", path, NULL, NULL);
    CHECKF(st == 200 || st == 202, "resume: %d", st);
    CHECK(tj_wait_status(d.port, id, "failed", 60));
    snprintf(path, sizeof path, "/v1/jobs/%ld", id);
    CHECK(tj_request(d.port, "GET", path, NULL, &doc) == 200);
    printf("job %ld: %s: %s\n", id, tj_str(doc, "status"), tj_str(doc, "error"));
    CHECKF(strstr(tj_str(doc, "error"), "checkpoint") != NULL &&
               strstr(tj_str(doc, "error"), "File too large") != NULL,
           "error: %s", tj_str(doc, "error"));
    cJSON_Delete(doc);
    doc = NULL;
    CHECK(tj_request(d.port, "GET", "/v1/health", NULL, NULL) == 200);
    CHECK(tj_request(d.port, "GET", "/v1/jobs", NULL, NULL) == 200);
    st = dp_stop(&d, SIGTERM, 30);
    CHECKF(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status %d (limited)", st);

    /* 3. Consistent afterwards. */
    CHECK(integrity(dbpath, result, sizeof result) == 0);
    printf("integrity_check: %s\n", result);
    CHECKF(strcmp(result, "ok") == 0, "integrity_check: %s", result);
    size1 = file_size(ckpt);
    CHECKF(size1 == size0, "checkpoint %lld -> %lld bytes", size0, size1);
    CHECK(ckpt_loads(ckpt));
    CHECK(!has_temp(jobdir));
    if (dp_start(&d, argv[1], state, data, log1, NULL) != 0)
        return 1;
    CHECK(tj_request(d.port, "GET", "/v1/health", NULL, NULL) == 200);
    CHECK(tj_request(d.port, "GET", path, NULL, &doc) == 200);
    CHECKF(strcmp(tj_str(doc, "status"), "failed") == 0 &&
               strstr(tj_str(doc, "error"), "File too large") != NULL,
           "after restart: %s: %s", tj_str(doc, "status"), tj_str(doc, "error"));
    cJSON_Delete(doc);
    st = dp_stop(&d, SIGTERM, 30);
    CHECKF(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status %d", st);

    dp_cleanup(&dirs, check_failures);
    return check_result("daemon_full_disk");
}
