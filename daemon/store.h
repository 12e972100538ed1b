/* store.h: convnetd's SQLite store: jobs, their metrics and checkpoints,
 * and the schema migrations that create them.
 *
 * A store is one SQLite connection in WAL mode with its prepared statements
 * and a mutex; every function below takes the mutex, so a store may be
 * shared by threads, and threads that each own a store (the device workers)
 * never wait for one another except on SQLite's own write lock (WAL lets
 * readers run beside the writer; busy_timeout absorbs writer contention).
 * Every query is a prepared statement with bound parameters; the only SQL
 * text executed directly is the migration files. Errors are logged here,
 * with the statement that failed, and returned as -1: callers only decide
 * what to answer. Nothing here knows about HTTP, devices or job logic. */
#ifndef CONVNETD_STORE_H
#define CONVNETD_STORE_H

#include <stddef.h>
#include <stdint.h>

/* The schema version this code reads and writes: the highest migration. */
#define STORE_SCHEMA_VERSION 3

#define STORE_NOTFOUND 1   /* a return value: no such row */

typedef struct store store;

/* Opens (creating if needed) the database at path, or a private in-memory
 * one for ":memory:". Sets WAL journal mode (files only), synchronous=FULL
 * (a commit is on disk before it returns: metrics committed before a
 * checkpoint file is renamed stay committed across a power cut),
 * busy_timeout 5 s and foreign keys. Does not migrate. Returns 0 and *out,
 * or -1 with a message in err. */
int store_open(store **out, const char *path, char *err, size_t errlen);

/* Closes s and finalises its statements. NULL is a no-op. */
void store_close(store *s);

/* Applies the migrations in dir that are newer than the database, in order,
 * each in its own transaction that also sets PRAGMA user_version to its
 * number. Files are NNNN_name.sql (NNNN = 0001, 0002, ...; numbers must run
 * 1..n without gaps or repeats) and must not contain BEGIN/COMMIT. target
 * > 0 stops after that version (tests build old schemas this way); 0 applies
 * all. *from and *to (may be NULL) receive the versions before and after.
 * Fails, changing nothing further, when the database is newer than the
 * files, or when a migration fails (that migration is rolled back). Returns
 * 0 or -1 with a message in err. */
int store_migrate(store *s, const char *dir, int target, int *from, int *to,
                  char *err, size_t errlen);

/* PRAGMA user_version into *v. 0 or -1. */
int store_user_version(store *s, int *v);

/* ---- jobs ---- */

/* A jobs row. Strings are malloc'd and owned by the struct (error may be
 * NULL); times are Unix seconds, 0 for NULL. Release with store_job_clear. */
typedef struct store_job {
    long id;
    char *name, *spec, *device, *status, *error, *progress;
    double created_at, started_at, finished_at;
} store_job;

void store_job_clear(store_job *j);

/* Inserts a queued job; *id receives its new id. 0 or -1. */
int store_job_insert(store *s, const char *name, const char *spec, const char *device,
                     const char *progress, double created_at, long *id);

/* Reads job id into *out (cleared first). 0, STORE_NOTFOUND or -1. */
int store_job_get(store *s, long id, store_job *out);

/* Called once per row; the row is valid only during the call, which runs
 * with the store locked (do not call back into s). Return non-zero to stop. */
typedef int (*store_job_fn)(void *user, const store_job *j);

/* Jobs newest first (descending id): only those with id < before_id when
 * before_id > 0, only those with that status when status != NULL, at most
 * limit. 0 or -1. */
int store_job_list(store *s, const char *status, long before_id, int limit,
                   store_job_fn fn, void *user);

/* Jobs that have written at least one checkpoint (models), newest first,
 * only those with id < before_id when before_id > 0, at most limit. Same
 * callback rules as store_job_list. 0 or -1. */
int store_model_list(store *s, long before_id, int limit, store_job_fn fn, void *user);

/* The jobs a restarted daemon must pick up again: status running (oldest
 * start first), then queued (oldest first). 0 or -1. */
int store_job_list_active(store *s, store_job_fn fn, void *user);

/* Moves job id to status `to` if its status is `from` (NULL: any). Running
 * sets started_at the first time and clears error and finished_at;
 * succeeded, failed and cancelled set finished_at; error (may be NULL) is
 * stored with every status. 0 when the row changed, STORE_NOTFOUND when no
 * row had that id and status, -1 on error. */
int store_job_transition(store *s, long id, const char *from, const char *to,
                         const char *error);

/* Replaces job id's progress JSON. 0, STORE_NOTFOUND or -1. */
int store_job_set_progress(store *s, long id, const char *progress);

/* The number of jobs with status into *n. 0 or -1. */
int store_job_count(store *s, const char *status, long *n);

/* ---- metrics ---- */

/* One metric point to write; key is borrowed. */
typedef struct store_metric {
    const char *key;
    long step;
    double value;
    int64_t timestamp_ms;
} store_metric;

/* Inserts m[0..n) for job and, when progress != NULL, replaces the job's
 * progress, all in one transaction: either everything is stored or nothing.
 * A point whose (job, key, step) exists already fails the whole call (the
 * UNIQUE constraint: doubles are bugs, not data). 0 or -1. */
int store_metrics_append(store *s, long job, const store_metric *m, int n,
                         const char *progress);

/* A metrics row as read; key is valid only during the callback. */
typedef struct store_metric_row {
    long id;
    const char *key;
    long step;
    double value;
    int64_t timestamp_ms;
} store_metric_row;

typedef int (*store_metric_fn)(void *user, const store_metric_row *r);

/* Job's rows with id > since_id in id order (which is step order per key),
 * only key's when key != NULL, at most limit. Same callback rules as
 * store_job_fn. 0 or -1. */
int store_metrics_read(store *s, long job, const char *key, long since_id, int limit,
                       store_metric_fn fn, void *user);

/* Rewinds job to iteration `step`: deletes its metrics with step > step and
 * its checkpoint rows with iteration > step, in one transaction (step 0:
 * everything). *deleted (may be NULL) gets the metric rows removed. 0 or -1. */
int store_job_rewind(store *s, long job, long step, long *deleted);

/* ---- checkpoints ---- */

typedef struct store_checkpoint {
    long id;
    int epoch;
    long iteration;
    char path[1024];
    char reason[16];   /* epoch, pause, shutdown, final */
    double created_at;
} store_checkpoint;

/* Records a checkpoint write. 0 or -1. */
int store_checkpoint_add(store *s, long job, int epoch, long iteration, const char *path,
                         const char *reason);

/* The job's most recent checkpoint row into *out. 0, STORE_NOTFOUND or -1. */
int store_checkpoint_latest(store *s, long job, store_checkpoint *out);

/* ---- evaluations ---- */

/* A model's evaluation (migrations/0003_evaluations.sql). result is the
 * JSON text {"class_names","per_class_accuracy","confusion_matrix"};
 * malloc'd and owned by the struct when read (store_evaluation_clear). */
typedef struct store_evaluation {
    long job_id;
    long iteration;
    int epoch;
    char split[16];          /* "test" or "validation" */
    long num_samples, correct;
    double accuracy;
    char *result;
    double duration_s;
    double created_at;
} store_evaluation;

void store_evaluation_clear(store_evaluation *e);

/* Stores e (result borrowed; created_at is set to now), replacing the job's
 * earlier evaluation. 0 or -1. */
int store_evaluation_put(store *s, const store_evaluation *e);

/* Job's evaluation into *out (cleared first). 0, STORE_NOTFOUND or -1. */
int store_evaluation_get(store *s, long job, store_evaluation *out);

#endif
