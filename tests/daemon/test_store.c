/* test_store.c: store.c against a real SQLite file in a temporary
 * directory (and :memory: where that is enough), and the migrations: on an
 * empty store, on a store of the previous schema (0001 only, with rows that
 * must survive), and the refusals (a gap in the files, a database newer
 * than the files).
 *
 * argv[1] is the source tree's migrations directory. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sqlite3.h>

#include "check.h"
#include "daemon_proc.h"
#include "store.h"

static const char *migrations;
static char tmpdir[] = "/tmp/convnetd-store-XXXXXX";

typedef struct rows {
    long ids[64];
    long steps[256];
    char keys[256][16];
    int n;
} rows;

static int collect_job(void *user, const store_job *j)
{
    rows *r = user;
    if (r->n < 64)
        r->ids[r->n++] = j->id;
    return 0;
}

static int collect_metric(void *user, const store_metric_row *m)
{
    rows *r = user;
    if (r->n < 256) {
        r->ids[r->n % 64] = m->id;
        r->steps[r->n] = m->step;
        snprintf(r->keys[r->n], sizeof r->keys[r->n], "%s", m->key);
        r->n++;
    }
    return 0;
}

/* Journal mode of the database at path, read by a separate connection. */
static void journal_mode(const char *path, char *out, size_t len)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    snprintf(out, len, "?");
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        snprintf(out, len, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(db);
}

static void test_empty_store_and_jobs(void)
{
    char path[512], err[512], mode[16];
    store *s = NULL;
    store_job j;
    rows r;
    long id1 = 0, id2 = 0, id3 = 0, n = -1;
    int from = -1, to = -1, v = -1;

    snprintf(path, sizeof path, "%s/a.db", tmpdir);
    CHECK(store_open(&s, path, err, sizeof err) == 0);
    if (s == NULL)
        return;
    CHECK(store_user_version(s, &v) == 0 && v == 0);
    CHECKF(store_migrate(s, migrations, 0, &from, &to, err, sizeof err) == 0, "%s", err);
    CHECK(from == 0 && to == STORE_SCHEMA_VERSION);
    CHECK(store_user_version(s, &v) == 0 && v == STORE_SCHEMA_VERSION);
    /* Idempotent: a second run applies nothing. */
    CHECK(store_migrate(s, migrations, 0, &from, &to, err, sizeof err) == 0);
    CHECK(from == STORE_SCHEMA_VERSION && to == STORE_SCHEMA_VERSION);
    journal_mode(path, mode, sizeof mode);
    CHECKF(strcmp(mode, "wal") == 0, "journal mode %s", mode);

    CHECK(store_job_insert(s, "a", "{\"x\":1}", "cpu", NULL, 100.0, &id1) == 0);
    CHECK(store_job_insert(s, "b", "{}", "cpu", "{\"iteration\":0}", 101.0, &id2) == 0);
    CHECK(store_job_insert(s, "c", "{}", "cuda:0", NULL, 102.0, &id3) == 0);
    CHECK(id1 >= 1 && id2 == id1 + 1 && id3 == id2 + 1);

    CHECK(store_job_get(s, id1, &j) == 0);
    CHECK(strcmp(j.name, "a") == 0 && strcmp(j.spec, "{\"x\":1}") == 0);
    CHECK(strcmp(j.status, "queued") == 0 && strcmp(j.progress, "{}") == 0);
    CHECK(j.created_at == 100.0 && j.started_at == 0 && j.finished_at == 0 && j.error == NULL);
    store_job_clear(&j);
    CHECK(store_job_get(s, 9999, &j) == STORE_NOTFOUND);

    /* Newest first, paged with before_id, filtered by status. */
    memset(&r, 0, sizeof r);
    CHECK(store_job_list(s, NULL, 0, 10, collect_job, &r) == 0);
    CHECK(r.n == 3 && r.ids[0] == id3 && r.ids[2] == id1);
    memset(&r, 0, sizeof r);
    CHECK(store_job_list(s, NULL, id3, 1, collect_job, &r) == 0);
    CHECK(r.n == 1 && r.ids[0] == id2);

    /* Guarded transitions and timestamps. */
    CHECK(store_job_transition(s, id1, "running", "succeeded", NULL) == STORE_NOTFOUND);
    CHECK(store_job_transition(s, id1, "queued", "running", NULL) == 0);
    CHECK(store_job_get(s, id1, &j) == 0 && strcmp(j.status, "running") == 0 &&
          j.started_at > 0 && j.finished_at == 0);
    store_job_clear(&j);
    CHECK(store_job_transition(s, id1, "running", "failed", "boom") == 0);
    CHECK(store_job_get(s, id1, &j) == 0 && strcmp(j.status, "failed") == 0 &&
          j.finished_at > 0 && j.error != NULL && strcmp(j.error, "boom") == 0);
    store_job_clear(&j);
    CHECK(store_job_transition(s, id2, NULL, "bogus", NULL) == -1);   /* CHECK constraint */
    memset(&r, 0, sizeof r);
    CHECK(store_job_list(s, "failed", 0, 10, collect_job, &r) == 0 && r.n == 1 &&
          r.ids[0] == id1);
    CHECK(store_job_count(s, "queued", &n) == 0 && n == 2);
    CHECK(store_job_set_progress(s, id2, "{\"iteration\":5}") == 0);
    CHECK(store_job_get(s, id2, &j) == 0 && strcmp(j.progress, "{\"iteration\":5}") == 0);
    store_job_clear(&j);

    /* Active jobs for a restart: running first, then queued by id. */
    CHECK(store_job_transition(s, id3, NULL, "running", NULL) == 0);
    memset(&r, 0, sizeof r);
    CHECK(store_job_list_active(s, collect_job, &r) == 0);
    CHECK(r.n == 2 && r.ids[0] == id3 && r.ids[1] == id2);
    store_close(s);

    /* Ids are never reused, even after the newest row is deleted. */
    CHECK(store_open(&s, path, err, sizeof err) == 0);
    if (s != NULL) {
        sqlite3 *db;
        long id4 = 0;
        CHECK(sqlite3_open(path, &db) == SQLITE_OK);
        CHECK(sqlite3_exec(db, "DELETE FROM jobs WHERE id = (SELECT max(id) FROM jobs)",
                           NULL, NULL, NULL) == SQLITE_OK);
        sqlite3_close(db);
        CHECK(store_job_insert(s, "d", "{}", "cpu", NULL, 103.0, &id4) == 0);
        CHECK(id4 == id3 + 1);
        store_close(s);
    }
}

static void test_metrics_and_checkpoints(const char *path)
{
    char err[512];
    store *s = NULL;
    store_metric m[4];
    store_checkpoint c;
    rows r;
    long job = 0, del = -1, since;

    CHECK(store_open(&s, path, err, sizeof err) == 0);
    if (s == NULL)
        return;
    CHECK(store_migrate(s, migrations, 0, NULL, NULL, err, sizeof err) == 0);
    CHECK(store_job_insert(s, "m", "{}", "cpu", NULL, 1.0, &job) == 0);

    for (int i = 0; i < 3; i++)
        m[i] = (store_metric){ .key = "loss", .step = i + 1, .value = 2.0 - i,
                               .timestamp_ms = 1000 + i };
    m[3] = (store_metric){ .key = "val_acc", .step = 3, .value = 0.5, .timestamp_ms = 1003 };
    CHECK(store_metrics_append(s, job, m, 4, "{\"iteration\":3}") == 0);

    memset(&r, 0, sizeof r);
    CHECK(store_metrics_read(s, job, NULL, 0, 100, collect_metric, &r) == 0);
    CHECK(r.n == 4 && r.steps[0] == 1 && r.steps[2] == 3 && strcmp(r.keys[3], "val_acc") == 0);
    memset(&r, 0, sizeof r);
    CHECK(store_metrics_read(s, job, "loss", 0, 2, collect_metric, &r) == 0);
    CHECK(r.n == 2 && r.steps[1] == 2);
    since = r.ids[1];
    memset(&r, 0, sizeof r);
    CHECK(store_metrics_read(s, job, "loss", since, 100, collect_metric, &r) == 0);
    CHECK(r.n == 1 && r.steps[0] == 3);

    /* A double is refused and the whole batch with it: no partial rows,
     * and the progress of that batch is not written either. */
    m[0] = (store_metric){ .key = "loss", .step = 4, .value = 1, .timestamp_ms = 1 };
    m[1] = (store_metric){ .key = "loss", .step = 3, .value = 1, .timestamp_ms = 1 };
    CHECK(store_metrics_append(s, job, m, 2, "{\"iteration\":99}") == -1);
    memset(&r, 0, sizeof r);
    CHECK(store_metrics_read(s, job, "loss", 0, 100, collect_metric, &r) == 0 && r.n == 3);
    {
        store_job j;
        CHECK(store_job_get(s, job, &j) == 0 && strcmp(j.progress, "{\"iteration\":3}") == 0);
        store_job_clear(&j);
    }

    /* Checkpoints and rewinding to one. */
    CHECK(store_checkpoint_latest(s, job, &c) == STORE_NOTFOUND);
    CHECK(store_checkpoint_add(s, job, 1, 2, "/x/checkpoint.ckpt", "epoch") == 0);
    CHECK(store_checkpoint_add(s, job, 1, 3, "/x/checkpoint.ckpt", "pause") == 0);
    CHECK(store_checkpoint_add(s, job, 1, 3, "/x/checkpoint.ckpt", "bogus") == -1);
    CHECK(store_checkpoint_latest(s, job, &c) == 0 && c.iteration == 3 &&
          strcmp(c.reason, "pause") == 0 && strcmp(c.path, "/x/checkpoint.ckpt") == 0);
    CHECK(store_job_rewind(s, job, 2, &del) == 0 && del == 2);   /* loss 3, val_acc 3 */
    CHECK(store_checkpoint_latest(s, job, &c) == 0 && c.iteration == 2);
    memset(&r, 0, sizeof r);
    CHECK(store_metrics_read(s, job, NULL, 0, 100, collect_metric, &r) == 0 && r.n == 2);
    /* Rewritten steps get new, larger ids (event ids never go back). */
    m[0] = (store_metric){ .key = "loss", .step = 3, .value = 9, .timestamp_ms = 5 };
    CHECK(store_metrics_append(s, job, m, 1, NULL) == 0);
    memset(&r, 0, sizeof r);
    CHECK(store_metrics_read(s, job, "loss", since, 100, collect_metric, &r) == 0);
    CHECK(r.n == 1 && r.steps[0] == 3);
    CHECK(store_job_rewind(s, job, 0, &del) == 0 && del == 3);
    CHECK(store_checkpoint_latest(s, job, &c) == STORE_NOTFOUND);
    store_close(s);
}

/* Models (jobs with a checkpoint) and evaluations (0003). */
static void test_models_and_evaluations(const char *path)
{
    char err[512];
    store *s = NULL;
    store_evaluation e, got;
    rows r;
    long a = 0, b = 0, c = 0;

    CHECK(store_open(&s, path, err, sizeof err) == 0);
    if (s == NULL)
        return;
    CHECK(store_migrate(s, migrations, 0, NULL, NULL, err, sizeof err) == 0);
    CHECK(store_job_insert(s, "a", "{}", "cpu", NULL, 1.0, &a) == 0);
    CHECK(store_job_insert(s, "b", "{}", "cpu", NULL, 2.0, &b) == 0);
    CHECK(store_job_insert(s, "c", "{}", "cpu", NULL, 3.0, &c) == 0);
    CHECK(store_checkpoint_add(s, a, 1, 10, "/a", "epoch") == 0);
    CHECK(store_checkpoint_add(s, c, 1, 10, "/c", "epoch") == 0);
    CHECK(store_checkpoint_add(s, c, 2, 20, "/c", "final") == 0);
    memset(&r, 0, sizeof r);
    CHECK(store_model_list(s, 0, 10, collect_job, &r) == 0);
    CHECK(r.n == 2 && r.ids[0] == c && r.ids[1] == a);   /* b has no checkpoint */
    memset(&r, 0, sizeof r);
    CHECK(store_model_list(s, c, 10, collect_job, &r) == 0 && r.n == 1 && r.ids[0] == a);
    memset(&r, 0, sizeof r);
    CHECK(store_model_list(s, 0, 1, collect_job, &r) == 0 && r.n == 1 && r.ids[0] == c);

    CHECK(store_evaluation_get(s, a, &got) == STORE_NOTFOUND);
    memset(&e, 0, sizeof e);
    e.job_id = a;
    e.iteration = 10;
    e.epoch = 1;
    snprintf(e.split, sizeof e.split, "test");
    e.num_samples = 4;
    e.correct = 3;
    e.accuracy = 0.75;
    e.result = "{\"confusion_matrix\":[[2,0],[1,1]]}";
    e.duration_s = 0.5;
    CHECK(store_evaluation_put(s, &e) == 0);
    CHECK(store_evaluation_get(s, a, &got) == 0);
    CHECK(got.iteration == 10 && got.epoch == 1 && strcmp(got.split, "test") == 0 &&
          got.num_samples == 4 && got.correct == 3 && got.accuracy == 0.75 &&
          strcmp(got.result, e.result) == 0 && got.created_at > 0);
    store_evaluation_clear(&got);
    /* A newer one replaces it. */
    e.iteration = 20;
    snprintf(e.split, sizeof e.split, "validation");
    CHECK(store_evaluation_put(s, &e) == 0);
    CHECK(store_evaluation_get(s, a, &got) == 0 && got.iteration == 20 &&
          strcmp(got.split, "validation") == 0);
    store_evaluation_clear(&got);
    /* The schema's checks. */
    snprintf(e.split, sizeof e.split, "train");
    CHECK(store_evaluation_put(s, &e) == -1);
    snprintf(e.split, sizeof e.split, "test");
    e.correct = 5;
    CHECK(store_evaluation_put(s, &e) == -1);
    e.correct = 3;
    e.job_id = 999;
    CHECK(store_evaluation_put(s, &e) == -1);   /* no such job */
    store_close(s);
}

/* A store of the previous schema (0001 only) with rows, opened by this
 * code: migrated to the current version, rows intact. */
static void test_upgrade_from_0001(void)
{
    char path[512], err[512];
    store *s = NULL;
    store_metric m[2] = {
        { .key = "loss", .step = 1, .value = 2.5, .timestamp_ms = 10 },
        { .key = "loss", .step = 2, .value = 2.0, .timestamp_ms = 20 },
    };
    store_checkpoint c;
    store_job j;
    rows r;
    long job = 0;
    int from = -1, to = -1, v = -1;

    snprintf(path, sizeof path, "%s/old.db", tmpdir);
    CHECK(store_open(&s, path, err, sizeof err) == 0);
    if (s == NULL)
        return;
    CHECK(store_migrate(s, migrations, 1, &from, &to, err, sizeof err) == 0);
    CHECK(from == 0 && to == 1);
    CHECK(store_user_version(s, &v) == 0 && v == 1);
    CHECK(store_job_insert(s, "old job", "{\"a\":1}", "cpu", NULL, 5.0, &job) == 0);
    CHECK(store_metrics_append(s, job, m, 2, "{\"iteration\":2}") == 0);
    /* The 0002 table does not exist yet. */
    CHECK(store_checkpoint_add(s, job, 0, 2, "/p", "epoch") == -1);
    store_close(s);

    s = NULL;
    CHECK(store_open(&s, path, err, sizeof err) == 0);
    if (s == NULL)
        return;
    CHECKF(store_migrate(s, migrations, 0, &from, &to, err, sizeof err) == 0, "%s", err);
    CHECK(from == 1 && to == STORE_SCHEMA_VERSION);
    CHECK(store_user_version(s, &v) == 0 && v == STORE_SCHEMA_VERSION);
    CHECK(store_job_get(s, job, &j) == 0);
    CHECK(strcmp(j.name, "old job") == 0 && strcmp(j.spec, "{\"a\":1}") == 0 &&
          strcmp(j.progress, "{\"iteration\":2}") == 0 && j.created_at == 5.0);
    store_job_clear(&j);
    memset(&r, 0, sizeof r);
    CHECK(store_metrics_read(s, job, "loss", 0, 10, collect_metric, &r) == 0);
    CHECK(r.n == 2 && r.steps[0] == 1 && r.steps[1] == 2);
    CHECK(store_checkpoint_add(s, job, 0, 2, "/p", "epoch") == 0);
    CHECK(store_checkpoint_latest(s, job, &c) == 0 && c.iteration == 2);
    store_close(s);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (f != NULL) {
        fputs(text, f);
        fclose(f);
    }
}

static void test_refusals(void)
{
    char dir[512], path[600], err[512];
    store *s = NULL;
    int v = -1, to = -1;

    /* A gap: 0001 and 0003. */
    snprintf(dir, sizeof dir, "%s/gap", tmpdir);
    CHECK(mkdir(dir, 0755) == 0);
    snprintf(path, sizeof path, "%s/0001_a.sql", dir);
    write_file(path, "CREATE TABLE t (x);");
    snprintf(path, sizeof path, "%s/0003_c.sql", dir);
    write_file(path, "CREATE TABLE u (x);");
    snprintf(path, sizeof path, "%s/README", dir);
    write_file(path, "not a migration");
    CHECK(store_open(&s, ":memory:", err, sizeof err) == 0);
    if (s == NULL)
        return;
    CHECK(store_migrate(s, dir, 0, NULL, NULL, err, sizeof err) == -1);
    CHECKF(strstr(err, "0002 is missing") != NULL, "%s", err);
    CHECK(store_user_version(s, &v) == 0 && v == 0);

    /* A failing migration rolls back and leaves the version. */
    snprintf(path, sizeof path, "%s/0003_c.sql", dir);
    remove(path);
    snprintf(path, sizeof path, "%s/0002_b.sql", dir);
    write_file(path, "CREATE TABLE v (x); THIS IS NOT SQL;");
    CHECK(store_migrate(s, dir, 0, NULL, &to, err, sizeof err) == -1);
    CHECK(to == 1);
    CHECK(store_user_version(s, &v) == 0 && v == 1);
    store_close(s);

    /* A database newer than the files. */
    s = NULL;
    CHECK(store_open(&s, ":memory:", err, sizeof err) == 0);
    if (s == NULL)
        return;
    CHECK(store_migrate(s, migrations, 0, NULL, NULL, err, sizeof err) == 0);
    snprintf(dir, sizeof dir, "%s/only1", tmpdir);
    CHECK(mkdir(dir, 0755) == 0);
    snprintf(path, sizeof path, "%s/0001_init.sql", dir);
    write_file(path, "CREATE TABLE jobs2 (x);");
    CHECK(store_migrate(s, dir, 0, NULL, NULL, err, sizeof err) == -1);
    CHECKF(strstr(err, "newer") != NULL, "%s", err);
    CHECK(store_migrate(s, "/nonexistent/dir", 0, NULL, NULL, err, sizeof err) == -1);
    store_close(s);
}

int main(int argc, char **argv)
{
    char path[512];

    if (argc != 2) {
        fprintf(stderr, "usage: %s MIGRATIONS-DIR\n", argv[0]);
        return 2;
    }
    migrations = argv[1];
    if (dp_mkdtemp(tmpdir) != 0) {
        perror("mkdtemp");
        return 1;
    }
    test_empty_store_and_jobs();
    snprintf(path, sizeof path, "%s/m.db", tmpdir);
    test_metrics_and_checkpoints(path);
    test_metrics_and_checkpoints(":memory:");
    test_models_and_evaluations(":memory:");
    test_upgrade_from_0001();
    test_refusals();
    dp_rmrf(tmpdir);
    return check_result("daemon_store");
}
