/* worker.c: a device's worker thread (see worker.h): the job loop, the
 * solver hooks that run between minibatches, metric batching and
 * checkpoints.
 *
 * Crash safety rests on one ordering: metrics up to iteration k are
 * committed to the store before the checkpoint of iteration k is renamed
 * into place. So the file is never ahead of the metrics, and a restart
 * rewinds the metrics to the iteration stored in the file (store_job_rewind)
 * and continues from there: no gaps, no doubles. The checkpoint file, not
 * its store row, is the truth (the row may be missing after a crash). */
#include "worker.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <nn/backend.h>
#include <nn/checkpoint.h>
#include <nn/solver.h>
#ifdef CONVNETD_HAVE_CUDA
#include <nn_cuda/nn_cuda.h>
#endif

#include "datasets.h"
#include "jobs.h"
#include "jobspec.h"
#include "log.h"
#include "models.h"
#include "serve.h"
#include "store.h"
#include "util.h"

/* Metric rows flushed at least this often (seconds), so live curves move
 * even for slow iterations. */
#define FLUSH_INTERVAL_S 1.0

struct worker {
    app *a;
    int index;
    const device_desc *dev;
    pthread_t thread;
    store *db;                      /* this thread's own connection */
    nn_backend *b;                  /* NULL when the device failed to start */
    char backend_err[NN_ERRLEN];
};

/* One job's run on this worker. */
typedef struct run_ctx {
    worker *w;
    long id;
    jobspec spec;
    const nn_dataset *data;
    int data_held;
    nn_model *model;
    nn_solver *solver;
    char dir[CFG_PATH_MAX + 64];
    char ckpt[CFG_PATH_MAX + 96];
    store_metric *buf;              /* metrics not yet written */
    int nbuf, cap, nloss;
    double last_flush;              /* now_mono() of the last write */
    long last_ckpt;                 /* iteration of the last checkpoint, -1 none */
    job_want want;
    job_progress prog;
    char fatal[2048];               /* why the job fails (a hook or set-up error) */
    char extra[1024];               /* the checkpoint's "extra" JSON */
} run_ctx;

/* Inference requests and evaluations for models on this device (serve.h):
 * called between two minibatches of a training job (idle = 0: one round)
 * and whenever the worker has no job (idle = 1: until nothing is left). */
static void serve_inference(worker *w, int idle)
{
    if (w->a->serve != NULL)
        serve_worker_run(w->a->serve, w->index, w->b, w->db, idle);
}

static void to_progress(job_progress *p, const nn_solver_progress *sp)
{
    job_progress_init(p, sp->num_iterations, sp->num_epochs);
    p->iteration = sp->iteration;
    p->epoch = sp->epoch;
    p->loss = sp->iteration > 0 ? sp->loss : NAN;
    p->learning_rate = sp->learning_rate;
    p->train_acc = sp->train_acc;
    p->val_acc = sp->val_acc;
    p->best_val_acc = sp->best_val_acc;
    p->elapsed_s = sp->elapsed_s;
    p->images_per_s = sp->images_per_s;
    if (sp->iteration > 0 && sp->elapsed_s > 0)
        p->eta_s = (double)(sp->num_iterations - sp->iteration) * sp->elapsed_s /
                   (double)sp->iteration;
}

static void add_metric(run_ctx *c, const char *key, long step, double value)
{
    if (!isfinite(value))
        return;   /* SQLite would store NaN as NULL; the column is NOT NULL */
    if (c->nbuf == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 256;
        c->buf = xrealloc(c->buf, sizeof *c->buf * (size_t)c->cap);
    }
    c->buf[c->nbuf++] = (store_metric){ .key = key, .step = step, .value = value,
                                        .timestamp_ms = (int64_t)(now_wall() * 1000.0) };
}

/* Writes the buffered metrics and the progress in one transaction. */
static int flush(run_ctx *c)
{
    cJSON *pj = job_progress_json(&c->prog);
    char *ptext = cJSON_PrintUnformatted(pj);
    int rc;

    cJSON_Delete(pj);
    rc = store_metrics_append(c->w->db, c->id, c->buf, c->nbuf, ptext);
    cJSON_free(ptext);
    if (rc != 0) {
        snprintf(c->fatal, sizeof c->fatal, "cannot write metrics to the store (see the log)");
        return -1;
    }
    c->nbuf = c->nloss = 0;
    c->last_flush = now_mono();
    jobs_notify(c->w->a->jobs);
    return 0;
}

/* mkdir that accepts an existing directory. */
static int ensure_dir(const char *path)
{
    return mkdir(path, 0750) == 0 || errno == EEXIST ? 0 : -1;
}

/* Keeps the first conv layer's filters as they are at the end of `epoch`
 * (0: the initial weights) in <dir>/filters/epoch-<N>.ckpt, for GET
 * /v1/jobs/{id}/filters.png?epoch=N. A small file (K*C*R*S floats) in the
 * checkpoint container. Failing to write it loses a picture, not the job:
 * logged only. */
static void snapshot_filters(run_ctx *c, int epoch)
{
    char path[sizeof c->dir + 64], meta[128], err[NN_ERRLEN];
    nn_tensor *wt = nn_model_first_conv_weight(c->model);
    nn_ckpt_tensor t;
    nn_tensor host;
    nn_real *buf;

    if (wt == NULL || wt->ndim != 4)
        return;
    snprintf(path, sizeof path, "%s/filters", c->dir);
    if (ensure_dir(path) != 0) {
        log_warn("job %ld: cannot create %s: %s", c->id, path, strerror(errno));
        return;
    }
    buf = xmalloc(wt->size * sizeof *buf);
    host = nn_tensor_4d(buf, wt->shape[0], wt->shape[1], wt->shape[2], wt->shape[3]);
    if (nn_tensor_copy(c->w->b, &host, wt) != NN_OK) {
        log_warn("job %ld: cannot read the filters: %s", c->id, nn_backend_errmsg(c->w->b));
        free(buf);
        return;
    }
    memset(&t, 0, sizeof t);
    snprintf(t.name, sizeof t.name, "filters");
    t.ndim = 4;
    memcpy(t.shape, wt->shape, sizeof t.shape);
    t.dtype = NN_F32;
    t.data = buf;
    snprintf(meta, sizeof meta, "{\"format\":\"convnetd-filters\",\"epoch\":%d,"
             "\"iteration\":%ld}", epoch, c->prog.iteration);
    models_filters_path(c->w->a, c->id, epoch, path, sizeof path);
    if (nn_ckpt_write(path, meta, &t, 1, err) != NN_OK)
        log_warn("job %ld: cannot keep the filters of epoch %d: %s", c->id, epoch, err);
    free(buf);
}

/* Flushes, then writes the checkpoint file, then records it (see the file
 * comment for why in this order). */
static int checkpoint(run_ctx *c, const char *reason)
{
    char err[NN_ERRLEN];
    const char *const *names = NULL;
    nn_status st;

    if (c->prog.iteration == c->last_ckpt)
        return 0;
    /* Each step below waits for a disk (fsync) for milliseconds; inference
     * requests are answered between them, so that a checkpoint stalls them
     * for one step, not for all of them. */
    if (flush(c) != 0)
        return -1;
    serve_inference(c->w, 0);
    if (c->data->num_classes == c->spec.data.num_classes)
        names = (const char *const *)c->data->class_names;
    st = nn_solver_save(c->solver, c->ckpt, names, c->extra, err);
    if (st != NN_OK) {
        snprintf(c->fatal, sizeof c->fatal, "cannot write the checkpoint: %s", err);
        return -1;
    }
    serve_inference(c->w, 0);
    if (store_checkpoint_add(c->w->db, c->id, c->prog.epoch, c->prog.iteration, c->ckpt,
                             reason) != 0) {
        snprintf(c->fatal, sizeof c->fatal, "cannot record the checkpoint in the store");
        return -1;
    }
    c->last_ckpt = c->prog.iteration;
    /* Only at epoch ends: a pause or a max_iterations stop mid-epoch must
     * not pass for the end of that epoch (the latest checkpoint shows it). */
    if (strcmp(reason, "epoch") == 0) {
        serve_inference(c->w, 0);
        snapshot_filters(c, c->prog.epoch);
    }
    return 0;
}

/* ---- solver hooks (the worker's thread, between minibatches) ---- */

static int on_iteration(void *user, const nn_solver_progress *sp)
{
    run_ctx *c = user;

    to_progress(&c->prog, sp);
    add_metric(c, "loss", sp->iteration, sp->loss);
    c->nloss++;
    c->want = jobs_report(c->w->a->jobs, c->w->index, &c->prog);
    if (c->nloss >= c->w->a->cfg->metrics_flush ||
        now_mono() - c->last_flush >= FLUSH_INTERVAL_S) {
        if (flush(c) != 0)
            return 1;
    }
    serve_inference(c->w, 0);
    return c->want != JOB_WANT_NONE;
}

/* Inside an accuracy check, between two of its batches. */
static void between_batches(void *user)
{
    run_ctx *c = user;

    serve_inference(c->w, 0);
}

static int on_epoch(void *user, const nn_solver_progress *sp)
{
    run_ctx *c = user;
    long it = sp->iteration;

    to_progress(&c->prog, sp);
    if (sp->train_acc >= 0)
        add_metric(c, "train_acc", it, sp->train_acc);
    if (sp->val_acc >= 0)
        add_metric(c, "val_acc", it, sp->val_acc);
    add_metric(c, "learning_rate", it, sp->learning_rate);
    add_metric(c, "images_per_s", it, sp->images_per_s);
    add_metric(c, "elapsed_s", it, sp->elapsed_s);
    add_metric(c, "epoch", it, sp->epoch);
    if (sp->epoch_end) {
        if (checkpoint(c, "epoch") != 0)
            return 1;
        log_info("job %ld epoch %d/%d: train acc %.4f, val acc %.4f, loss %.4f, "
                 "%.0f images/s; checkpoint at iteration %ld", c->id, sp->epoch,
                 sp->num_epochs, sp->train_acc, sp->val_acc, sp->loss, sp->images_per_s, it);
    }
    c->want = jobs_want(c->w->a->jobs, c->w->index);
    return c->want != JOB_WANT_NONE;
}

/* ---- one job ---- */

/* Removes "checkpoint.ckpt.tmp.<pid>" files a crash mid-write left in dir
 * (nn_ckpt_write renames only complete files into place). */
static void remove_stale_temps(const char *dir)
{
    static const char prefix[] = "checkpoint.ckpt.tmp.";
    char path[CFG_PATH_MAX + 64 + 256 + 2];   /* dir + "/" + a file name */
    struct dirent *e;
    DIR *d = opendir(dir);

    if (d == NULL)
        return;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, prefix, sizeof prefix - 1) != 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (unlink(path) == 0)
            log_info("removed %s, left by an interrupted checkpoint", path);
    }
    closedir(d);
}

/* Ends a job in state with error (may be NULL) and logs the event. */
static void finish(run_ctx *c, job_state state, const char *error)
{
    worker *w = c->w;

    if (state != JOB_RUNNING &&
        store_job_transition(w->db, c->id, "running", job_state_name(state), error) != 0)
        log_err("job %ld: cannot record its end (%s)", c->id, job_state_name(state));
    switch (state) {
    case JOB_SUCCEEDED:
        log_info("job %ld succeeded: %ld iterations in %.1f s, best val acc %.4f", c->id,
                 c->prog.iteration, c->prog.elapsed_s, c->prog.best_val_acc);
        break;
    case JOB_FAILED:
        log_err("job %ld failed: %s", c->id, error != NULL ? error : "?");
        break;
    case JOB_CANCELLED:
        log_info("job %ld cancelled at iteration %ld", c->id, c->prog.iteration);
        break;
    case JOB_PAUSED:
        log_info("job %ld paused at iteration %ld (checkpointed)", c->id, c->prog.iteration);
        break;
    case JOB_RUNNING:
        log_info("job %ld stopped for shutdown at iteration %ld; checkpointed, resumes at "
                 "the next start", c->id, c->prog.iteration);
        break;
    default:
        break;
    }
    jobs_finish(w->a->jobs, w->index, c->id, state);
}

/* Builds model and solver and restores the checkpoint if there is one.
 * Returns 0, or -1 with the reason in c->fatal. */
static int prepare(run_ctx *c, const store_job *row)
{
    worker *w = c->w;
    char err[NN_ERRLEN], derr[512];
    jobspec_error je;
    nn_split train, val;
    float mean[NN_DATASET_MAX_CHANNELS] = { 0 };
    nn_model_config mc;
    struct stat st;
    cJSON *doc, *x;
    char *xs;
    long deleted = 0;

    doc = cJSON_Parse(row->spec);
    if (jobspec_parse(&c->spec, doc, w->a, JOBSPEC_PARSE, &je) != 0) {
        cJSON_Delete(doc);
        snprintf(c->fatal, sizeof c->fatal, "the job spec is no longer valid here: %s",
                 je.message);
        return -1;
    }
    cJSON_Delete(doc);
    if (w->b == NULL) {
        snprintf(c->fatal, sizeof c->fatal, "device %s is unusable: %s", w->dev->name,
                 w->backend_err);
        return -1;
    }
    if (datasets_acquire(w->a->datasets, c->spec.dataset, DS_TRAIN, &c->data, derr,
                         sizeof derr) != 0) {
        snprintf(c->fatal, sizeof c->fatal, "%s", derr);
        return -1;
    }
    c->data_held = 1;
    if (nn_dataset_split(&train, &val, c->data, c->spec.val_fraction, c->spec.limit, err)
            != NN_OK ||
        (c->spec.subtract_mean && nn_dataset_channel_mean(mean, &train, err) != NN_OK)) {
        snprintf(c->fatal, sizeof c->fatal, "data set %s: %s", c->spec.dataset, err);
        return -1;
    }
    mc = (nn_model_config){ .channels = c->data->c, .height = c->data->h,
                            .width = c->data->w, .num_classes = c->spec.data.num_classes,
                            .max_batch = c->spec.solver.batch_size,
                            .seed = c->spec.solver.seed };
    if (nn_model_create(&c->model, w->b, c->spec.model_json, &mc, err) != NN_OK ||
        nn_solver_create(&c->solver, c->model, &train, &val, mean, &c->spec.solver, err)
            != NN_OK) {
        snprintf(c->fatal, sizeof c->fatal, "%s", err);
        return -1;
    }

    x = cJSON_CreateObject();
    cJSON_AddNumberToObject(x, "job_id", (double)c->id);
    cJSON_AddStringToObject(x, "job_name", c->spec.name);
    cJSON_AddStringToObject(x, "dataset", c->spec.dataset);
    cJSON_AddNumberToObject(x, "val_fraction", c->spec.val_fraction);
    cJSON_AddNumberToObject(x, "limit", c->spec.limit);
    cJSON_AddBoolToObject(x, "subtract_mean", c->spec.subtract_mean);
    xs = cJSON_PrintUnformatted(x);
    cJSON_Delete(x);
    snprintf(c->extra, sizeof c->extra, "%s", xs != NULL ? xs : "{}");
    cJSON_free(xs);

    snprintf(c->dir, sizeof c->dir, "%s/jobs", w->a->cfg->state_dir);
    if (ensure_dir(c->dir) != 0) {
        snprintf(c->fatal, sizeof c->fatal, "cannot create %s: %s", c->dir, strerror(errno));
        return -1;
    }
    snprintf(c->dir, sizeof c->dir, "%s/jobs/%ld", w->a->cfg->state_dir, c->id);
    snprintf(c->ckpt, sizeof c->ckpt, "%s/checkpoint.ckpt", c->dir);
    if (ensure_dir(c->dir) != 0) {
        snprintf(c->fatal, sizeof c->fatal, "cannot create %s: %s", c->dir, strerror(errno));
        return -1;
    }

    remove_stale_temps(c->dir);
    if (stat(c->ckpt, &st) == 0) {
        nn_solver_progress sp;
        if (nn_solver_restore(c->solver, c->ckpt, err) != NN_OK) {
            snprintf(c->fatal, sizeof c->fatal, "cannot resume from %s: %s", c->ckpt, err);
            return -1;
        }
        nn_solver_progress_get(c->solver, &sp);
        to_progress(&c->prog, &sp);
        c->last_ckpt = sp.iteration;
        if (store_job_rewind(w->db, c->id, sp.iteration, &deleted) != 0) {
            snprintf(c->fatal, sizeof c->fatal, "cannot rewind the job's metrics");
            return -1;
        }
        log_info("job %ld resumes from its checkpoint at iteration %ld/%ld (epoch %d); "
                 "%ld metric rows after it dropped", c->id, sp.iteration, sp.num_iterations,
                 sp.epoch, deleted);
    } else {
        nn_solver_progress sp;
        nn_solver_progress_get(c->solver, &sp);
        to_progress(&c->prog, &sp);
        /* No checkpoint: whatever an earlier attempt wrote is void. */
        if (store_job_rewind(w->db, c->id, 0, &deleted) != 0) {
            snprintf(c->fatal, sizeof c->fatal, "cannot clear the job's metrics");
            return -1;
        }
        log_info("job %ld started on %s: %s, %s, %ld iterations%s", c->id, w->dev->name,
                 c->spec.name, c->spec.dataset, sp.num_iterations,
                 deleted > 0 ? " (from scratch: no checkpoint)" : "");
        snapshot_filters(c, 0);   /* the initial weights, for comparison */
    }
    return 0;
}

static void run_job(worker *w, long id)
{
    run_ctx c;
    store_job row;
    char err[NN_ERRLEN] = "";
    nn_solver_hooks hooks;
    nn_status st;
    int rc;

    memset(&c, 0, sizeof c);
    c.w = w;
    c.id = id;
    c.last_ckpt = -1;
    c.last_flush = now_mono();
    job_progress_init(&c.prog, 0, 0);

    rc = store_job_get(w->db, id, &row);
    if (rc != 0) {
        log_err("job %ld: cannot read it from the store", id);
        jobs_finish(w->a->jobs, w->index, id, JOB_FAILED);
        return;
    }
    if (store_job_transition(w->db, id, NULL, "running", NULL) != 0) {
        log_err("job %ld: cannot mark it running", id);
        store_job_clear(&row);
        jobs_finish(w->a->jobs, w->index, id, JOB_FAILED);
        return;
    }
    jobs_notify(w->a->jobs);
    rc = prepare(&c, &row);
    store_job_clear(&row);
    if (rc != 0) {
        finish(&c, JOB_FAILED, c.fatal);
        goto out;
    }

    /* A request that came while the job was being prepared. */
    c.want = jobs_want(w->a->jobs, w->index);
    if (c.want == JOB_WANT_NONE) {
        hooks = (nn_solver_hooks){ .user = &c, .on_iteration = on_iteration,
                                   .on_epoch = on_epoch, .between_batches = between_batches };
        st = nn_solver_run(c.solver, &hooks, err);
        if (c.fatal[0] == '\0' && st != NN_OK)
            snprintf(c.fatal, sizeof c.fatal, "%s", err);
    }
    if (c.fatal[0] != '\0') {
        if (c.nbuf > 0)
            flush(&c);   /* keep what was measured; a failure here changes nothing */
        finish(&c, JOB_FAILED, c.fatal);
    } else if (nn_solver_done(c.solver)) {
        if (checkpoint(&c, "final") != 0 || flush(&c) != 0) {
            finish(&c, JOB_FAILED, c.fatal);
        } else {
            finish(&c, JOB_SUCCEEDED, NULL);
            /* The model's test-set evaluation, in the background: the
             * worker runs it a slice at a time between other work. */
            if (w->a->serve != NULL) {
                serve_eval_status es;
                serve_evaluate(w->a->serve, w->index, id, c.ckpt, &es);
            }
        }
    } else if (c.want == JOB_WANT_CANCEL) {
        if (flush(&c) != 0)
            finish(&c, JOB_FAILED, c.fatal);
        else
            finish(&c, JOB_CANCELLED, NULL);
    } else {
        int pause = c.want == JOB_WANT_PAUSE;
        /* Before the first iteration there is nothing new to save. */
        if ((c.prog.iteration > 0 && checkpoint(&c, pause ? "pause" : "shutdown") != 0) ||
            flush(&c) != 0)
            finish(&c, JOB_FAILED, c.fatal);
        else
            finish(&c, pause ? JOB_PAUSED : JOB_RUNNING, NULL);
    }
out:
    nn_solver_free(c.solver);
    nn_model_free(c.model);
    if (c.data_held)
        datasets_release(w->a->datasets, c.spec.dataset);
    jobspec_clear(&c.spec);
    free(c.buf);
}

/* ---- the thread ---- */

static void *worker_main(void *arg)
{
    worker *w = arg;
    char err[512];
    nn_status st;
    long id;

    if (store_open(&w->db, w->a->db_path, err, sizeof err) != 0) {
        /* Without a store nothing can be recorded; the device stays idle
         * and its queue waits for the next start. */
        log_err("worker %s: %s", w->dev->name, err);
        return NULL;
    }
    if (w->dev->cuda < 0) {
        st = nn_cpu_backend_create(w->a->cpu_threads, &w->b, w->backend_err);
    } else {
#ifdef CONVNETD_HAVE_CUDA
        st = nn_cuda_backend_create(w->dev->cuda, &w->b, w->backend_err);
#else
        snprintf(w->backend_err, sizeof w->backend_err, "built without CUDA");
        st = NN_ERR_UNSUPPORTED;
#endif
    }
    if (st != NN_OK) {
        w->b = NULL;
        log_err("worker %s: cannot start the device: %s", w->dev->name, w->backend_err);
    } else {
        log_info("worker %s: ready (%s)", w->dev->name, nn_backend_name(w->b));
    }
    serve_inference(w, 1);
    while ((id = jobs_next(w->a->jobs, w->index)) != 0) {
        if (id > 0)
            run_job(w, id);
        serve_inference(w, 1);   /* id -1: woken for requests */
    }
    /* Cached models live on the device: free them before the backend. */
    if (w->a->serve != NULL)
        serve_worker_stop(w->a->serve, w->index);
    nn_backend_free(w->b);
    store_close(w->db);
    return NULL;
}

int worker_start(worker **out, app *a, int index, char *err, size_t errlen)
{
    worker *w = xcalloc(1, sizeof *w);
    int rc;

    w->a = a;
    w->index = index;
    w->dev = &a->devices[index];
    rc = pthread_create(&w->thread, NULL, worker_main, w);
    if (rc != 0) {
        snprintf(err, errlen, "cannot start the worker of %s: %s", w->dev->name, strerror(rc));
        free(w);
        return -1;
    }
    *out = w;
    return 0;
}

void worker_join(worker *w)
{
    if (w == NULL)
        return;
    pthread_join(w->thread, NULL);
    free(w);
}
