/* store.c: the SQLite store (see store.h): connection set-up, migrations,
 * and one prepared statement per query.
 *
 * Statements are prepared on first use and kept for the connection's life
 * (SQLITE_PREPARE_PERSISTENT); each use binds, steps, and resets. This file
 * holds every line of SQL the daemon runs apart from migrations/. */
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "log.h"
#include "util.h"

/* ---- the statements ---- */

enum {
    Q_BEGIN,
    Q_COMMIT,
    Q_ROLLBACK,
    Q_USER_VERSION,
    Q_JOB_INSERT,
    Q_JOB_GET,
    Q_JOB_LIST,
    Q_JOB_ACTIVE,
    Q_JOB_TRANSITION,
    Q_JOB_PROGRESS,
    Q_JOB_COUNT,
    Q_METRIC_INSERT,
    Q_METRIC_READ,
    Q_METRIC_DELETE_AFTER,
    Q_CKPT_DELETE_AFTER,
    Q_CKPT_INSERT,
    Q_CKPT_LATEST,
    Q_MODEL_LIST,
    Q_EVAL_PUT,
    Q_EVAL_GET,
    Q_COUNT
};

#define JOB_COLUMNS \
    "id, name, spec, device, status, error, progress, created_at, started_at, finished_at"

static const char *const sql[Q_COUNT] = {
    /* IMMEDIATE takes the write lock up front, so a transaction never fails
     * half-way on a lock upgrade; busy_timeout waits for it instead. */
    [Q_BEGIN] = "BEGIN IMMEDIATE",
    [Q_COMMIT] = "COMMIT",
    [Q_ROLLBACK] = "ROLLBACK",
    [Q_USER_VERSION] = "PRAGMA user_version",
    [Q_JOB_INSERT] =
        "INSERT INTO jobs (name, spec, device, status, created_at, progress) "
        "VALUES (?1, ?2, ?3, 'queued', ?4, ?5)",
    [Q_JOB_GET] = "SELECT " JOB_COLUMNS " FROM jobs WHERE id = ?1",
    [Q_JOB_LIST] =
        "SELECT " JOB_COLUMNS " FROM jobs "
        "WHERE (?1 IS NULL OR status = ?1) AND (?2 <= 0 OR id < ?2) "
        "ORDER BY id DESC LIMIT ?3",
    [Q_JOB_ACTIVE] =
        "SELECT " JOB_COLUMNS " FROM jobs WHERE status IN ('running', 'queued') "
        "ORDER BY status = 'queued', coalesce(started_at, 0), id",
    [Q_JOB_TRANSITION] =
        "UPDATE jobs SET status = ?3, error = ?4, "
        "started_at = CASE WHEN ?3 = 'running' THEN coalesce(started_at, ?5) "
        "                  ELSE started_at END, "
        "finished_at = CASE WHEN ?3 IN ('succeeded', 'failed', 'cancelled') THEN ?5 "
        "                   ELSE NULL END "
        "WHERE id = ?1 AND (?2 IS NULL OR status = ?2)",
    [Q_JOB_PROGRESS] = "UPDATE jobs SET progress = ?2 WHERE id = ?1",
    [Q_JOB_COUNT] = "SELECT count(*) FROM jobs WHERE status = ?1",
    [Q_METRIC_INSERT] =
        "INSERT INTO metrics (job_id, key, step, value, timestamp) "
        "VALUES (?1, ?2, ?3, ?4, ?5)",
    [Q_METRIC_READ] =
        "SELECT id, key, step, value, timestamp FROM metrics "
        "WHERE job_id = ?1 AND id > ?2 AND (?3 IS NULL OR key = ?3) "
        "ORDER BY id LIMIT ?4",
    [Q_METRIC_DELETE_AFTER] = "DELETE FROM metrics WHERE job_id = ?1 AND step > ?2",
    [Q_CKPT_DELETE_AFTER] = "DELETE FROM checkpoints WHERE job_id = ?1 AND iteration > ?2",
    [Q_CKPT_INSERT] =
        "INSERT INTO checkpoints (job_id, epoch, iteration, path, reason, created_at) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [Q_CKPT_LATEST] =
        "SELECT id, epoch, iteration, path, reason, created_at FROM checkpoints "
        "WHERE job_id = ?1 ORDER BY id DESC LIMIT 1",
    [Q_MODEL_LIST] =
        "SELECT " JOB_COLUMNS " FROM jobs "
        "WHERE (?1 <= 0 OR id < ?1) AND EXISTS (SELECT 1 FROM checkpoints c "
        "WHERE c.job_id = jobs.id) ORDER BY id DESC LIMIT ?2",
    [Q_EVAL_PUT] =
        "INSERT OR REPLACE INTO evaluations (job_id, iteration, epoch, split, num_samples, "
        "correct, accuracy, result, duration_s, created_at) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    [Q_EVAL_GET] =
        "SELECT job_id, iteration, epoch, split, num_samples, correct, accuracy, result, "
        "duration_s, created_at FROM evaluations WHERE job_id = ?1",
};

struct store {
    sqlite3 *db;
    pthread_mutex_t mu;
    sqlite3_stmt *st[Q_COUNT];
};

/* Logs the connection's last error for what; returns -1. */
static int fail(store *s, const char *what)
{
    log_err("store: %s: %s (%d)", what, sqlite3_errmsg(s->db), sqlite3_extended_errcode(s->db));
    return -1;
}

/* The prepared statement q, prepared now if this is its first use; NULL
 * (logged) when preparing fails, e.g. against a schema that lacks a table. */
static sqlite3_stmt *stmt(store *s, int q)
{
    if (s->st[q] == NULL &&
        sqlite3_prepare_v3(s->db, sql[q], -1, SQLITE_PREPARE_PERSISTENT, &s->st[q], NULL)
            != SQLITE_OK) {
        fail(s, sql[q]);
        s->st[q] = NULL;
    }
    return s->st[q];
}

/* Resets st for its next use; reset's own status repeats the step's error,
 * which the caller has already handled. */
static void done(sqlite3_stmt *st)
{
    if (st != NULL) {
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
    }
}

/* Runs a statement that returns no rows (BEGIN, COMMIT, ...). 0 or -1. */
static int exec_q(store *s, int q)
{
    sqlite3_stmt *st = stmt(s, q);
    int rc;

    if (st == NULL)
        return -1;
    rc = sqlite3_step(st);
    done(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        return fail(s, sql[q]);
    return 0;
}

static void rollback(store *s)
{
    /* After some errors SQLite has already rolled back; then ROLLBACK fails
     * with "no transaction is active", which is fine. */
    if (!sqlite3_get_autocommit(s->db))
        exec_q(s, Q_ROLLBACK);
}

/* Binds text or NULL. */
static int bind_text(sqlite3_stmt *st, int i, const char *v)
{
    return v != NULL ? sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT)
                     : sqlite3_bind_null(st, i);
}

static char *col_strdup(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return t != NULL ? xstrdup((const char *)t) : NULL;
}

/* ---- opening ---- */

int store_open(store **out, const char *path, char *err, size_t errlen)
{
    store *s = xcalloc(1, sizeof *s);
    /* NOMUTEX: our own mutex serialises use of the connection, so SQLite's
     * per-call locking would be paid twice. */
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    int memory = strcmp(path, ":memory:") == 0;
    sqlite3_stmt *st = NULL;
    int rc;

    *out = NULL;
    if (pthread_mutex_init(&s->mu, NULL) != 0) {
        snprintf(err, errlen, "cannot create a mutex");
        free(s);
        return -1;
    }
    rc = sqlite3_open_v2(path, &s->db, flags, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "cannot open %s: %s", path,
                 s->db != NULL ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
        goto fail;
    }
    sqlite3_extended_result_codes(s->db, 1);
    if (sqlite3_busy_timeout(s->db, 5000) != SQLITE_OK ||
        sqlite3_exec(s->db, "PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL",
                     NULL, NULL, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(s->db));
        goto fail;
    }
    if (!memory) {
        const unsigned char *mode;
        if (sqlite3_prepare_v2(s->db, "PRAGMA journal_mode = WAL", -1, &st, NULL) != SQLITE_OK ||
            sqlite3_step(st) != SQLITE_ROW) {
            snprintf(err, errlen, "%s: cannot set WAL mode: %s", path, sqlite3_errmsg(s->db));
            goto fail;
        }
        mode = sqlite3_column_text(st, 0);
        if (mode == NULL || strcmp((const char *)mode, "wal") != 0) {
            snprintf(err, errlen, "%s: journal mode is %s, not wal (a file system "
                     "without shared memory?)", path, mode ? (const char *)mode : "?");
            goto fail;
        }
        sqlite3_finalize(st);
        st = NULL;
    }
    *out = s;
    return 0;
fail:
    sqlite3_finalize(st);
    sqlite3_close(s->db);
    pthread_mutex_destroy(&s->mu);
    free(s);
    return -1;
}

void store_close(store *s)
{
    if (s == NULL)
        return;
    for (int i = 0; i < Q_COUNT; i++)
        sqlite3_finalize(s->st[i]);
    if (sqlite3_close(s->db) != SQLITE_OK)
        log_warn("store: close: %s", sqlite3_errmsg(s->db));
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static int user_version_locked(store *s, int *v)
{
    sqlite3_stmt *st = stmt(s, Q_USER_VERSION);
    int rc;

    if (st == NULL)
        return -1;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *v = sqlite3_column_int(st, 0);
    done(st);
    return rc == SQLITE_ROW ? 0 : fail(s, "PRAGMA user_version");
}

int store_user_version(store *s, int *v)
{
    int rc;
    pthread_mutex_lock(&s->mu);
    rc = user_version_locked(s, v);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* ---- migrations ---- */

#define MIGRATIONS_MAX 999
#define MIGRATION_MAX_BYTES (1 << 20)

/* Reads a whole (small) file into a malloc'd string. NULL + err on failure. */
static char *read_small_file(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t n;

    if (f == NULL) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    buf = xmalloc(MIGRATION_MAX_BYTES + 1);
    n = fread(buf, 1, MIGRATION_MAX_BYTES + 1, f);
    if (ferror(f) || n > MIGRATION_MAX_BYTES) {
        snprintf(err, errlen, "%s: %s", path, ferror(f) ? "read error" : "larger than 1 MiB");
        fclose(f);
        free(buf);
        return NULL;
    }
    fclose(f);
    buf[n] = '\0';
    return buf;
}

/* The migration number of a file name "NNNN_x.sql", or 0 when it is not
 * one (other files in the directory are ignored). */
static int migration_number(const char *name)
{
    size_t len = strlen(name);
    int v = 0;

    if (len < 10 || strcmp(name + len - 4, ".sql") != 0 || name[4] != '_')
        return 0;
    for (int i = 0; i < 4; i++) {
        if (name[i] < '0' || name[i] > '9')
            return 0;
        v = v * 10 + (name[i] - '0');
    }
    return v;
}

/* Applies one migration file as version v in its own transaction. */
static int apply_migration(store *s, const char *path, int v, char *err, size_t errlen)
{
    char pragma[64], *msg = NULL;
    char *text = read_small_file(path, err, errlen);

    if (text == NULL)
        return -1;
    if (exec_q(s, Q_BEGIN) != 0) {
        snprintf(err, errlen, "%s: cannot begin a transaction: %s", path, sqlite3_errmsg(s->db));
        free(text);
        return -1;
    }
    /* The file is ours, not a client's, and PRAGMA takes no parameters: the
     * two places where SQL is not a bound prepared statement. */
    snprintf(pragma, sizeof pragma, "PRAGMA user_version = %d", v);
    if (sqlite3_exec(s->db, text, NULL, NULL, &msg) != SQLITE_OK ||
        sqlite3_exec(s->db, pragma, NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(err, errlen, "%s: %s", path, msg != NULL ? msg : sqlite3_errmsg(s->db));
        sqlite3_free(msg);
        rollback(s);
        free(text);
        return -1;
    }
    free(text);
    if (exec_q(s, Q_COMMIT) != 0) {
        snprintf(err, errlen, "%s: commit failed: %s", path, sqlite3_errmsg(s->db));
        rollback(s);
        return -1;
    }
    return 0;
}

int store_migrate(store *s, const char *dir, int target, int *from, int *to,
                  char *err, size_t errlen)
{
    /* names[v] is the file of version v; a fixed table keeps this free of
     * sorting and of allocation per entry. */
    static const size_t name_max = 256;
    char *names = xcalloc(MIGRATIONS_MAX + 1, name_max);
    char path[2048];
    int cur = 0, max = 0, rc = -1;
    struct dirent *e;
    DIR *d;

    pthread_mutex_lock(&s->mu);
    if (user_version_locked(s, &cur) != 0) {
        snprintf(err, errlen, "cannot read the schema version: %s", sqlite3_errmsg(s->db));
        goto out;
    }
    if (from != NULL)
        *from = cur;
    d = opendir(dir);
    if (d == NULL) {
        snprintf(err, errlen, "migrations directory %s: %s", dir, strerror(errno));
        goto out;
    }
    while ((e = readdir(d)) != NULL) {
        int v = migration_number(e->d_name);
        if (v == 0)
            continue;
        if (v > MIGRATIONS_MAX || strlen(e->d_name) >= name_max) {
            snprintf(err, errlen, "%s/%s: bad migration name", dir, e->d_name);
            closedir(d);
            goto out;
        }
        if (names[(size_t)v * name_max] != '\0') {
            snprintf(err, errlen, "%s: two migrations numbered %04d (%s, %s)", dir, v,
                     &names[(size_t)v * name_max], e->d_name);
            closedir(d);
            goto out;
        }
        strcpy(&names[(size_t)v * name_max], e->d_name);
        if (v > max)
            max = v;
    }
    closedir(d);
    for (int v = 1; v <= max; v++) {
        if (names[(size_t)v * name_max] == '\0') {
            snprintf(err, errlen, "%s: migration %04d is missing (found up to %04d)", dir, v, max);
            goto out;
        }
    }
    if (cur > max) {
        snprintf(err, errlen, "the database is at schema version %d, newer than the "
                 "migrations in %s (up to %d): written by a newer convnetd?", cur, dir, max);
        goto out;
    }
    if (target <= 0 || target > max)
        target = max;
    for (int v = cur + 1; v <= target; v++) {
        snprintf(path, sizeof path, "%s/%s", dir, &names[(size_t)v * name_max]);
        if (apply_migration(s, path, v, err, errlen) != 0)
            goto out;
        log_info("store: applied migration %s", &names[(size_t)v * name_max]);
        cur = v;
    }
    rc = 0;
out:
    if (to != NULL)
        *to = cur;
    pthread_mutex_unlock(&s->mu);
    free(names);
    return rc;
}

/* ---- jobs ---- */

void store_job_clear(store_job *j)
{
    free(j->name);
    free(j->spec);
    free(j->device);
    free(j->status);
    free(j->error);
    free(j->progress);
    memset(j, 0, sizeof *j);
}

/* Fills j (a store_job) from a row of JOB_COLUMNS. */
static void read_job(sqlite3_stmt *st, void *row)
{
    store_job *j = row;

    memset(j, 0, sizeof *j);
    j->id = (long)sqlite3_column_int64(st, 0);
    j->name = col_strdup(st, 1);
    j->spec = col_strdup(st, 2);
    j->device = col_strdup(st, 3);
    j->status = col_strdup(st, 4);
    j->error = col_strdup(st, 5);
    j->progress = col_strdup(st, 6);
    j->created_at = sqlite3_column_double(st, 7);
    j->started_at = sqlite3_column_double(st, 8);
    j->finished_at = sqlite3_column_double(st, 9);
    /* NOT NULL columns, but a hand-edited database should not crash us. */
    if (j->name == NULL) j->name = xstrdup("");
    if (j->spec == NULL) j->spec = xstrdup("{}");
    if (j->device == NULL) j->device = xstrdup("cpu");
    if (j->status == NULL) j->status = xstrdup("failed");
    if (j->progress == NULL) j->progress = xstrdup("{}");
}

int store_job_insert(store *s, const char *name, const char *spec, const char *device,
                     const char *progress, double created_at, long *id)
{
    sqlite3_stmt *st;
    int rc = -1;

    pthread_mutex_lock(&s->mu);
    st = stmt(s, Q_JOB_INSERT);
    if (st == NULL)
        goto out;
    if (bind_text(st, 1, name) != SQLITE_OK || bind_text(st, 2, spec) != SQLITE_OK ||
        bind_text(st, 3, device) != SQLITE_OK ||
        sqlite3_bind_double(st, 4, created_at) != SQLITE_OK ||
        bind_text(st, 5, progress != NULL ? progress : "{}") != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_DONE) {
        rc = fail(s, "insert job");
        goto out;
    }
    *id = (long)sqlite3_last_insert_rowid(s->db);
    rc = 0;
out:
    done(st);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* Reads one row of a statement whose only parameter is an id (a job's or
 * a row's) into out with read(): 0, STORE_NOTFOUND without a row, or -1.
 * out is cleared first, so a miss leaves it zeroed. */
typedef void (*row_fn)(sqlite3_stmt *st, void *out);

static int get_one(store *s, int q, long id, row_fn read, void *out, size_t size,
                   const char *what)
{
    sqlite3_stmt *st;
    int rc = -1, step;

    memset(out, 0, size);
    pthread_mutex_lock(&s->mu);
    st = stmt(s, q);
    if (st == NULL)
        goto out;
    if (sqlite3_bind_int64(st, 1, id) != SQLITE_OK) {
        rc = fail(s, what);
        goto out;
    }
    step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        read(st, out);
        rc = 0;
    } else if (step == SQLITE_DONE) {
        rc = STORE_NOTFOUND;
    } else {
        rc = fail(s, what);
    }
out:
    done(st);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int store_job_get(store *s, long id, store_job *out)
{
    return get_one(s, Q_JOB_GET, id, read_job, out, sizeof *out, "get job");
}

/* Steps st, handing each job row to fn. 0 or -1. */
static int each_job(store *s, sqlite3_stmt *st, store_job_fn fn, void *user, const char *what)
{
    store_job j;
    int step;

    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        int stop;
        read_job(st, &j);
        stop = fn(user, &j);
        store_job_clear(&j);
        if (stop)
            return 0;
    }
    return step == SQLITE_DONE ? 0 : fail(s, what);
}

int store_job_list(store *s, const char *status, long before_id, int limit,
                   store_job_fn fn, void *user)
{
    sqlite3_stmt *st;
    int rc = -1;

    pthread_mutex_lock(&s->mu);
    st = stmt(s, Q_JOB_LIST);
    if (st == NULL)
        goto out;
    if (bind_text(st, 1, status) != SQLITE_OK ||
        sqlite3_bind_int64(st, 2, before_id) != SQLITE_OK ||
        sqlite3_bind_int(st, 3, limit) != SQLITE_OK) {
        rc = fail(s, "list jobs");
        goto out;
    }
    rc = each_job(s, st, fn, user, "list jobs");
out:
    done(st);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int store_model_list(store *s, long before_id, int limit, store_job_fn fn, void *user)
{
    sqlite3_stmt *st;
    int rc = -1;

    pthread_mutex_lock(&s->mu);
    st = stmt(s, Q_MODEL_LIST);
    if (st == NULL)
        goto out;
    if (sqlite3_bind_int64(st, 1, before_id) != SQLITE_OK ||
        sqlite3_bind_int(st, 2, limit) != SQLITE_OK) {
        rc = fail(s, "list models");
        goto out;
    }
    rc = each_job(s, st, fn, user, "list models");
out:
    done(st);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int store_job_list_active(store *s, store_job_fn fn, void *user)
{
    sqlite3_stmt *st;
    int rc = -1;

    pthread_mutex_lock(&s->mu);
    st = stmt(s, Q_JOB_ACTIVE);
    if (st != NULL)
        rc = each_job(s, st, fn, user, "list active jobs");
    done(st);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int store_job_transition(store *s, long id, const char *from, const char *to,
                         const char *error)
{
    sqlite3_stmt *st;
    int rc = -1;

    pthread_mutex_lock(&s->mu);
    st = stmt(s, Q_JOB_TRANSITION);
    if (st == NULL)
        goto out;
    if (sqlite3_bind_int64(st, 1, id) != SQLITE_OK || bind_text(st, 2, from) != SQLITE_OK ||
        bind_text(st, 3, to) != SQLITE_OK || bind_text(st, 4, error) != SQLITE_OK ||
        sqlite3_bind_double(st, 5, now_wall()) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_DONE) {
        rc = fail(s, "update job status");
        goto out;
    }
    rc = sqlite3_changes(s->db) > 0 ? 0 : STORE_NOTFOUND;
out:
    done(st);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int store_job_set_progress(store *s, long id, const char *progress)
{
    sqlite3_stmt *st;
    int rc = -1;

    pthread_mutex_lock(&s->mu);
    st = stmt(s, Q_JOB_PROGRESS);
    if (st == NULL)
        goto out;
    if (sqlite3_bind_int64(st, 1, id) != SQLITE_OK || bind_text(st, 2, progress) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_DONE) {
        rc = fail(s, "update job progress");
        goto out;
    }
    rc = sqlite3_changes(s->db) > 0 ? 0 : STORE_NOTFOUND;
out:
    done(st);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int store_job_count(store *s, const char *status, long *n)
{
    sqlite3_stmt *st;
    int rc = -1;

    pthread_mutex_lock(&s->mu);
    st = stmt(s, Q_JOB_COUNT);
    if (st == NULL)
        goto out;
    if (bind_text(st, 1, status) != SQLITE_OK || sqlite3_step(st) != SQLITE_ROW) {
        rc = fail(s, "count jobs");
        goto out;
    }
    *n = (long)sqlite3_column_int64(st, 0);
    rc = 0;
out:
    done(st);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* ---- metrics ---- */

int store_metrics_append(store *s, long job, const store_metric *m, int n,
                         const char *progress)
{
    sqlite3_stmt *ins, *prog = NULL;
    int rc = -1;

    pthread_mutex_lock(&s->mu);
    ins = stmt(s, Q_METRIC_INSERT);
    if (progress != NULL)
        prog = stmt(s, Q_JOB_PROGRESS);
    if (ins == NULL || (progress != NULL && prog == NULL))
        goto out;
    if (exec_q(s, Q_BEGIN) != 0)
        goto out;
    for (int i = 0; i < n; i++) {
        if (sqlite3_bind_int64(ins, 1, job) != SQLITE_OK ||
            bind_text(ins, 2, m[i].key) != SQLITE_OK ||
            sqlite3_bind_int64(ins, 3, m[i].step) != SQLITE_OK ||
            sqlite3_bind_double(ins, 4, m[i].value) != SQLITE_OK ||
            sqlite3_bind_int64(ins, 5, m[i].timestamp_ms) != SQLITE_OK ||
            sqlite3_step(ins) != SQLITE_DONE) {
            char what[128];
            snprintf(what, sizeof what, "insert metric %s step %ld of job %ld",
                     m[i].key, m[i].step, job);
            fail(s, what);
            done(ins);
            rollback(s);
            goto out;
        }
        done(ins);
    }
    if (prog != NULL) {
        if (sqlite3_bind_int64(prog, 1, job) != SQLITE_OK ||
            bind_text(prog, 2, progress) != SQLITE_OK || sqlite3_step(prog) != SQLITE_DONE) {
            fail(s, "update job progress");
            done(prog);
            rollback(s);
            goto out;
        }
        done(prog);
    }
    if (exec_q(s, Q_COMMIT) != 0) {
        rollback(s);
        goto out;
    }
    rc = 0;
out:
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int store_metrics_read(store *s, long job, const char *key, long since_id, int limit,
                       store_metric_fn fn, void *user)
{
    sqlite3_stmt *st;
    store_metric_row r;
    int rc = -1, step;

    pthread_mutex_lock(&s->mu);
    st = stmt(s, Q_METRIC_READ);
    if (st == NULL)
        goto out;
    if (sqlite3_bind_int64(st, 1, job) != SQLITE_OK ||
        sqlite3_bind_int64(st, 2, since_id) != SQLITE_OK || bind_text(st, 3, key) != SQLITE_OK ||
        sqlite3_bind_int(st, 4, limit) != SQLITE_OK) {
        rc = fail(s, "read metrics");
        goto out;
    }
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        const unsigned char *k = sqlite3_column_text(st, 1);
        r.id = (long)sqlite3_column_int64(st, 0);
        r.key = k != NULL ? (const char *)k : "";
        r.step = (long)sqlite3_column_int64(st, 2);
        r.value = sqlite3_column_double(st, 3);
        r.timestamp_ms = sqlite3_column_int64(st, 4);
        if (fn(user, &r))
            break;
    }
    rc = step == SQLITE_ROW || step == SQLITE_DONE ? 0 : fail(s, "read metrics");
out:
    done(st);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int store_job_rewind(store *s, long job, long step, long *deleted)
{
    sqlite3_stmt *dm, *dc;
    int rc = -1;

    pthread_mutex_lock(&s->mu);
    dm = stmt(s, Q_METRIC_DELETE_AFTER);
    dc = stmt(s, Q_CKPT_DELETE_AFTER);
    if (dm == NULL || dc == NULL || exec_q(s, Q_BEGIN) != 0)
        goto out;
    if (sqlite3_bind_int64(dm, 1, job) != SQLITE_OK ||
        sqlite3_bind_int64(dm, 2, step) != SQLITE_OK || sqlite3_step(dm) != SQLITE_DONE) {
        fail(s, "delete metrics");
        done(dm);
        rollback(s);
        goto out;
    }
    done(dm);
    if (deleted != NULL)
        *deleted = (long)sqlite3_changes(s->db);
    if (sqlite3_bind_int64(dc, 1, job) != SQLITE_OK ||
        sqlite3_bind_int64(dc, 2, step) != SQLITE_OK || sqlite3_step(dc) != SQLITE_DONE) {
        fail(s, "delete checkpoints");
        done(dc);
        rollback(s);
        goto out;
    }
    done(dc);
    if (exec_q(s, Q_COMMIT) != 0) {
        rollback(s);
        goto out;
    }
    rc = 0;
out:
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* ---- checkpoints ---- */

int store_checkpoint_add(store *s, long job, int epoch, long iteration, const char *path,
                         const char *reason)
{
    sqlite3_stmt *st;
    int rc = -1;

    pthread_mutex_lock(&s->mu);
    st = stmt(s, Q_CKPT_INSERT);
    if (st == NULL)
        goto out;
    if (sqlite3_bind_int64(st, 1, job) != SQLITE_OK || sqlite3_bind_int(st, 2, epoch) != SQLITE_OK ||
        sqlite3_bind_int64(st, 3, iteration) != SQLITE_OK || bind_text(st, 4, path) != SQLITE_OK ||
        bind_text(st, 5, reason) != SQLITE_OK ||
        sqlite3_bind_double(st, 6, now_wall()) != SQLITE_OK || sqlite3_step(st) != SQLITE_DONE) {
        rc = fail(s, "insert checkpoint");
        goto out;
    }
    rc = 0;
out:
    done(st);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static void read_checkpoint(sqlite3_stmt *st, void *row)
{
    store_checkpoint *out = row;
    const unsigned char *p = sqlite3_column_text(st, 3);
    const unsigned char *r = sqlite3_column_text(st, 4);

    out->id = (long)sqlite3_column_int64(st, 0);
    out->epoch = sqlite3_column_int(st, 1);
    out->iteration = (long)sqlite3_column_int64(st, 2);
    snprintf(out->path, sizeof out->path, "%s", p != NULL ? (const char *)p : "");
    snprintf(out->reason, sizeof out->reason, "%s", r != NULL ? (const char *)r : "");
    out->created_at = sqlite3_column_double(st, 5);
}

int store_checkpoint_latest(store *s, long job, store_checkpoint *out)
{
    return get_one(s, Q_CKPT_LATEST, job, read_checkpoint, out, sizeof *out,
                   "latest checkpoint");
}

/* ---- evaluations ---- */

void store_evaluation_clear(store_evaluation *e)
{
    if (e == NULL)
        return;
    free(e->result);
    memset(e, 0, sizeof *e);
}

int store_evaluation_put(store *s, const store_evaluation *e)
{
    sqlite3_stmt *st;
    int rc = -1;

    pthread_mutex_lock(&s->mu);
    st = stmt(s, Q_EVAL_PUT);
    if (st == NULL)
        goto out;
    if (sqlite3_bind_int64(st, 1, e->job_id) != SQLITE_OK ||
        sqlite3_bind_int64(st, 2, e->iteration) != SQLITE_OK ||
        sqlite3_bind_int(st, 3, e->epoch) != SQLITE_OK ||
        bind_text(st, 4, e->split) != SQLITE_OK ||
        sqlite3_bind_int64(st, 5, e->num_samples) != SQLITE_OK ||
        sqlite3_bind_int64(st, 6, e->correct) != SQLITE_OK ||
        sqlite3_bind_double(st, 7, e->accuracy) != SQLITE_OK ||
        bind_text(st, 8, e->result != NULL ? e->result : "{}") != SQLITE_OK ||
        sqlite3_bind_double(st, 9, e->duration_s) != SQLITE_OK ||
        sqlite3_bind_double(st, 10, now_wall()) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_DONE) {
        rc = fail(s, "store evaluation");
        goto out;
    }
    rc = 0;
out:
    done(st);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static void read_evaluation(sqlite3_stmt *st, void *row)
{
    store_evaluation *out = row;
    const unsigned char *sp = sqlite3_column_text(st, 3);

    out->job_id = (long)sqlite3_column_int64(st, 0);
    out->iteration = (long)sqlite3_column_int64(st, 1);
    out->epoch = sqlite3_column_int(st, 2);
    snprintf(out->split, sizeof out->split, "%s", sp != NULL ? (const char *)sp : "");
    out->num_samples = (long)sqlite3_column_int64(st, 4);
    out->correct = (long)sqlite3_column_int64(st, 5);
    out->accuracy = sqlite3_column_double(st, 6);
    out->result = col_strdup(st, 7);
    out->duration_s = sqlite3_column_double(st, 8);
    out->created_at = sqlite3_column_double(st, 9);
}

int store_evaluation_get(store *s, long job, store_evaluation *out)
{
    return get_one(s, Q_EVAL_GET, job, read_evaluation, out, sizeof *out, "get evaluation");
}
