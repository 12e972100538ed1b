/* crash_test.c: kill -9 at random moments of a training run, at least
 * KILLS times (default 20), and the job still finishes exactly once:
 *   1. writes a synthetic IDX data set (1500 28x28 images, 10 classes) and
 *      starts convnetd (argv[1], else the one built beside this bench) on
 *      127.0.0.1:0 with a temporary state directory;
 *   2. submits one small job (limit 1200, three_layer_convnet num_filters 4
 *      hidden_dim 16, 40 epochs, batch 32: a few seconds of training, so
 *      that most kills land mid-job);
 *   3. loop: sleep a random 0.2-2 s, SIGKILL, restart on the same state
 *      directory; counts a restart as "resumed" when the job's progress
 *      after it is past zero (it went on from a checkpoint rather than
 *      starting over). When the job ends before KILLS kills, a new
 *      identical job is submitted and the killing goes on with it
 *      (kills_mid_training counts the kills that found a job running with
 *      0 < iteration < num_iterations; with 6 epochs the faster kernels
 *      finished most jobs between kills, and the run stopped at 256 jobs
 *      after 7 kills);
 *   4. lets the last job finish, then checks every job: status succeeded,
 *      its loss steps are exactly 1..N (GET /v1/jobs/{id}/metrics?key=loss
 *      paged through `since`, N = progress.num_iterations), and every
 *      checkpoint file under <state>/jobs/ (any depth) loads with
 *      nn_ckpt_read.
 * Prints `bench=crash kills=K resumed=R steps_ok=0|1 checkpoints_ok=C/T
 * status=...` and exits 0 only when everything held. Only 127.0.0.1; the
 * whole run is bounded by CRASH_DEADLINE_S (default 900 s).
 * Environment: CRASH_KILLS, CRASH_SEED (xorshift seed), CRASH_DEADLINE_S. */
#define _GNU_SOURCE
#include <dirent.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <nn/checkpoint.h>

#include "daemon_proc.h"

#define MAX_JOBS 256

static const char spec[] =
    "{\"name\":\"crash-bench\","
    "\"dataset\":{\"name\":\"synth\",\"val_fraction\":0.2,\"limit\":1200},"
    "\"model\":{\"preset\":\"three_layer_convnet\",\"num_filters\":4,\"hidden_dim\":16},"
    "\"solver\":{\"epochs\":40,\"batch_size\":32},\"device\":\"cpu\"}";

static uint32_t rng_state = 0x9e3779b9u;

static uint32_t xorshift32(void)
{
    uint32_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return rng_state = x;
}

static void sleep_s(double s)
{
    struct timespec ts = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };
    nanosleep(&ts, NULL);
}

static int env_int(const char *name, int def, int lo, int hi)
{
    const char *s = getenv(name);
    char *end;
    long v;
    if (s == NULL || *s == 0)
        return def;
    v = strtol(s, &end, 10);
    if (*end != 0 || v < lo || v > hi) {
        fprintf(stderr, "crash_test: %s must be %d..%d\n", name, lo, hi);
        exit(2);
    }
    return (int)v;
}

/* GET /v1/jobs/{id}: status into st (cap bytes), iteration and total. */
static int job_state(unsigned port, long id, char *st, size_t cap, long *it, long *total)
{
    char path[64];
    cJSON *doc = NULL;
    int ok;
    snprintf(path, sizeof path, "/v1/jobs/%ld", id);
    ok = tj_request(port, "GET", path, NULL, &doc) == 200;
    if (ok) {
        snprintf(st, cap, "%s", tj_str(doc, "status"));
        *it = (long)tj_num(doc, "progress.iteration");
        *total = (long)tj_num(doc, "progress.num_iterations");
    }
    cJSON_Delete(doc);
    return ok ? 0 : -1;
}

/* 1 when job id's loss steps, read 50 rows at a time through ?since=,
 * are exactly 1..n. */
static int steps_exact(unsigned port, long id, long n)
{
    long since = 0, want = 1;
    for (int pages = 0; pages < 100000; pages++) {
        char path[160];
        cJSON *doc = NULL;
        int rows = 0;
        snprintf(path, sizeof path, "/v1/jobs/%ld/metrics?key=loss&since=%ld&limit=50", id,
                 since);
        if (tj_request(port, "GET", path, NULL, &doc) != 200) {
            fprintf(stderr, "crash_test: GET %s failed\n", path);
            cJSON_Delete(doc);
            return 0;
        }
        const cJSON *arr = tj_get(doc, "metrics");
        for (const cJSON *m = arr != NULL ? arr->child : NULL; m != NULL; m = m->next) {
            long step = (long)tj_num(m, "step");
            if (step != want) {
                fprintf(stderr, "crash_test: job %ld: loss row %ld has step %ld\n", id, want,
                        step);
                cJSON_Delete(doc);
                return 0;
            }
            want++;
            rows++;
        }
        double next = tj_num(doc, "next_since");
        cJSON_Delete(doc);
        if (rows == 0)
            break;
        if (!(next > (double)since)) {
            fprintf(stderr, "crash_test: next_since did not advance past %ld\n", since);
            return 0;
        }
        since = (long)next;
    }
    if (want - 1 != n)
        fprintf(stderr, "crash_test: job %ld: %ld loss steps, want %ld\n", id, want - 1, n);
    return want - 1 == n;
}

/* Loads every regular file under dir (recursively) whose name ends in
 * ".ckpt" with nn_ckpt_read; counts into *total and *ok. */
static void check_ckpts(const char *dir, int *total, int *ok)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    if (d == NULL)
        return;
    while ((e = readdir(d)) != NULL) {
        char p[PATH_MAX];
        struct stat st;
        size_t l = strlen(e->d_name);
        if (e->d_name[0] == '.')
            continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (lstat(p, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            check_ckpts(p, total, ok);
        } else if (S_ISREG(st.st_mode) && l > 5 && strcmp(e->d_name + l - 5, ".ckpt") == 0) {
            char *meta = NULL, err[NN_ERRLEN];
            nn_ckpt_tensor *t = NULL;
            int n = 0;
            (*total)++;
            if (nn_ckpt_read(p, &meta, &t, &n, err) == NN_OK)
                (*ok)++;
            else
                fprintf(stderr, "crash_test: %s does not load: %s\n", p, err);
            nn_ckpt_free(meta, t, n);
        }
    }
    closedir(d);
}

int main(int argc, char **argv)
{
    const char *binary = argc > 1 ? argv[1] : BENCH_CONVNETD;
    int want_kills = env_int("CRASH_KILLS", 20, 1, 10000);
    double deadline = tj_now() + env_int("CRASH_DEADLINE_S", 900, 10, 86400);
    char tmp[] = "/tmp/convnet-crash-XXXXXX", state[600], logpath[600], jobsdir[700];
    char st[32] = "";
    long ids[MAX_JOBS], it = 0, total = 0;
    int njobs = 0, kills = 0, mid_training = 0, resumed = 0, steps_ok = 1;
    int ck_total = 0, ck_ok = 0, all_ok = 1;
    dproc d;

    rng_state ^= (uint32_t)env_int("CRASH_SEED", 1, 1, INT_MAX);
    signal(SIGPIPE, SIG_IGN);
    if (dp_mkdtemp(tmp) != 0 || tj_write_synth(tmp, "synth", 1500, 28, 28, 10, 11) != 0) {
        perror("crash_test: set-up");
        return 1;
    }
    snprintf(state, sizeof state, "%s/state", tmp);
    snprintf(logpath, sizeof logpath, "%s/convnetd.log", tmp);
    snprintf(jobsdir, sizeof jobsdir, "%s/jobs", state);
    if (dp_start(&d, binary, state, tmp, logpath, NULL) != 0 ||
        (ids[njobs++] = tj_submit(d.port, spec)) < 0) {
        fprintf(stderr, "crash_test: convnetd did not start or refused the job (log %s)\n",
                logpath);
        return 1;
    }

    while (kills < want_kills && tj_now() < deadline) {
        long cur = ids[njobs - 1];
        sleep_s(0.2 + 1.8 * (double)(xorshift32() % 10001) / 10000.0);
        int known = job_state(d.port, cur, st, sizeof st, &it, &total) == 0;
        if (known && strcmp(st, "succeeded") == 0) {
            /* Finished between kills: keep killing on a fresh job. Never
             * kill an idle daemon: that tests nothing. */
            if (njobs == MAX_JOBS || (ids[njobs] = tj_submit(d.port, spec)) < 0)
                break;
            njobs++;
            continue;
        }
        dp_stop(&d, SIGKILL, 10);
        kills++;
        if (known && strcmp(st, "running") == 0 && it > 0 && it < total)
            mid_training++;
        if (dp_start(&d, binary, state, tmp, logpath, NULL) != 0) {
            fprintf(stderr, "crash_test: restart %d failed (log %s)\n", kills, logpath);
            all_ok = 0;
            break;
        }
        /* Resumed: the job's progress survives the restart. */
        if (job_state(d.port, cur, st, sizeof st, &it, &total) == 0 && it > 0)
            resumed++;
    }

    for (int j = 0; j < njobs && all_ok; j++) {
        double left = deadline - tj_now();
        if (left < 30)
            left = 30;
        if (!tj_wait_status(d.port, ids[j], "succeeded", left)) {
            all_ok = 0;
            break;
        }
        if (job_state(d.port, ids[j], st, sizeof st, &it, &total) != 0 ||
            !steps_exact(d.port, ids[j], total))
            steps_ok = 0;
    }
    check_ckpts(jobsdir, &ck_total, &ck_ok);
    dp_stop(&d, SIGTERM, 30);

    printf("bench=crash kills=%d resumed=%d steps_ok=%d checkpoints_ok=%d/%d status=%s "
           "jobs=%d kills_mid_training=%d\n", kills, resumed, steps_ok, ck_ok, ck_total,
           all_ok ? "succeeded" : (st[0] ? st : "unknown"), njobs, mid_training);
    all_ok = all_ok && steps_ok && kills >= want_kills && ck_ok == ck_total && ck_total > 0;
    if (all_ok)
        dp_rmrf(tmp);
    else
        fprintf(stderr, "crash_test: state and log kept in %s\n", tmp);
    return all_ok ? 0 : 1;
}
