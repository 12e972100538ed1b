/* daemon_proc.h: what the end-to-end daemon tests share: running the real
 * convnetd binary on 127.0.0.1 with a fresh port, state and data directory,
 * JSON requests over loopback, waiting for a job's state, a synthetic IDX
 * data set, and temporary directories.
 *
 * The daemon's stderr goes to a log file (no pipe to fill up); its
 * "listening on" line gives the port. Not a framework: each test calls
 * these from main and checks with check.h. */
#ifndef CONVNETD_TEST_DAEMON_PROC_H
#define CONVNETD_TEST_DAEMON_PROC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <cjson/cJSON.h>

/* The device the suite's training jobs ask for: "cpu" unless the build set
 * CONVNET_TEST_DEVICE (tests/daemon/CMakeLists.txt), e.g. "cuda:0". */
#ifndef TEST_DEVICE
#define TEST_DEVICE "cpu"
#endif

typedef struct dproc {
    pid_t pid;
    unsigned port;
    char log[1024];      /* the log file; appended to across restarts */
} dproc;

/* Creates a directory under /tmp from tmpl ("/tmp/x-XXXXXX", modified in
 * place). 0 or -1. */
int dp_mkdtemp(char *tmpl);
/* rm -rf dir. */
void dp_rmrf(const char *dir);

/* Where a test's daemon lives: a fresh directory under /tmp with state/,
 * data/ (created, empty) and the log file convnetd.log. */
typedef struct dp_dirs {
    char tmp[128], state[256], data[256], log[256];
} dp_dirs;

/* The start of every daemon test's main: argv[1] must name the convnetd
 * binary, SIGPIPE is ignored, and *d is made with tmp "/tmp/<name>-XXXXXX".
 * Returns 0, or the exit status to return: 2 for a usage error, 1 when the
 * directories cannot be made (each said on stderr). */
int dp_setup(dp_dirs *d, const char *name, int argc, char **argv);
/* The end of it: removes d->tmp when the test had no failures, else keeps
 * it and says where. */
void dp_cleanup(const dp_dirs *d, int failures);

/* Starts binary with --listen 127.0.0.1:0 --state-dir state --data-dir data
 * --threads 1 and the NULL-terminated extra args (may be NULL), logging to
 * log_path, and waits up to 30 s for its listening line. Returns 0 with d
 * filled, or -1 (the process is killed). */
int dp_start(dproc *d, const char *binary, const char *state, const char *data,
             const char *log_path, const char *const *extra);

/* Options of dp_start_ex; zero-initialise. */
typedef struct dp_opts {
    long long fsize_limit;   /* > 0: RLIMIT_FSIZE of the daemon, bytes, with
                                SIGXFSZ ignored so writes fail with EFBIG */
} dp_opts;

/* dp_start with opts (NULL: as dp_start). The log file is written under the
 * same file-size limit: give a limited run a log of its own. */
int dp_start_ex(dproc *d, const char *binary, const char *state, const char *data,
                const char *log_path, const char *const *extra, const dp_opts *opts);

/* Sends sig and waits up to timeout_s; returns the wait status, or -1 on
 * timeout (the process is then SIGKILLed and reaped). */
int dp_stop(dproc *d, int sig, double timeout_s);

/* 1 when the log file contains needle. */
int dp_log_contains(const dproc *d, const char *needle);

/* Sends a request with an optional JSON body (NULL: none) and returns the
 * HTTP status (0 when the request failed); *out (may be NULL) gets the
 * parsed JSON reply or NULL. */
int tj_request(unsigned port, const char *method, const char *path, const char *body,
               cJSON **out);

/* A member by dotted path ("error.field", "progress.iteration"); NULL when
 * absent. */
const cJSON *tj_get(const cJSON *o, const char *path);
/* Its string value or "" / its number or NAN. */
const char *tj_str(const cJSON *o, const char *path);
double tj_num(const cJSON *o, const char *path);

/* POSTs spec to /v1/jobs; returns the new id, or -1 (with the reply on
 * stderr) when the answer is not 201. */
long tj_submit(unsigned port, const char *spec);

/* Polls GET /v1/jobs/{id} every 10 ms until status equals want; returns 1,
 * or 0 after timeout_s (printing the last status). */
int tj_wait_status(unsigned port, long id, const char *want, double timeout_s);

/* Polls until the job's progress.iteration >= it; 1 or 0 on timeout. */
int tj_wait_iteration(unsigned port, long id, long it, double timeout_s);

/* The steps of job id's rows for key, in row order, via the metrics
 * endpoint; *n gets the count. malloc'd; NULL on failure. */
long *tj_steps(unsigned port, long id, const char *key, int *n);

/* 1 when steps[0..n) is exactly 1..n. */
int tj_steps_exact(const long *steps, int n);

/* Writes an uncompressed IDX pair (train-images/labels) with n images of
 * h x w pixels in `classes` classes under dir/name/: class k is a bright
 * block in a position of its own plus seeded noise, learnable in a few
 * iterations. 0 or -1. */
int tj_write_synth(const char *dir, const char *name, int n, int h, int w, int classes,
                   uint32_t seed);

/* The matching test pair (t10k-images/labels) under dir/name/, n images of
 * the same classes, from its own seed. 0 or -1. */
int tj_write_synth_test(const char *dir, const char *name, int n, int h, int w, int classes,
                        uint32_t seed);

/* One synthetic image of class label (h*w bytes into img), the pattern of
 * tj_write_synth, drawing its noise from *x (a nonzero xorshift state). */
void tj_synth_image(unsigned char *img, int h, int w, int classes, int label, uint32_t *x);

double tj_now(void);

#endif
