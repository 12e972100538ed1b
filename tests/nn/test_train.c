/* test_train.c: training in float on the CPU backend: each update rule
 * against steps computed by hand, the report's overfit check (100
 * Fashion-MNIST samples reach >= 0.99 train accuracy while validation stays
 * low), a checkpoint round trip that resumes step for step, and loading a
 * checkpoint as a model for serving. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "nn/solver.h"
#include "testcore.h"

static nn_backend *backend;

/* ---- update rules against hand-computed values -------------------------- */

static void test_rules(void)
{
    /* One parameter w = 1, gradient g = 0.5, two steps with the same g. */
    const double w0 = 1.0, g = 0.5, lr = 0.1;
    double want[4][2];
    { /* sgd */
        want[0][0] = w0 - lr * g;
        want[0][1] = want[0][0] - lr * g;
    }
    { /* momentum 0.9: v1 = -lr g, w1 = w0 + v1; v2 = 0.9 v1 - lr g */
        double v1 = -lr * g, v2 = 0.9 * v1 - lr * g;
        want[1][0] = w0 + v1;
        want[1][1] = w0 + v1 + v2;
    }
    { /* rmsprop 0.99, eps 1e-8 */
        double c1 = 0.01 * g * g, w1 = w0 - lr * g / (sqrt(c1) + 1e-8);
        double c2 = 0.99 * c1 + 0.01 * g * g;
        want[2][0] = w1;
        want[2][1] = w1 - lr * g / (sqrt(c2) + 1e-8);
    }
    { /* adam 0.9, 0.999, 1e-8 with bias correction: the first step moves
       * by ~lr whatever g is */
        double m1 = 0.1 * g, v1 = 0.001 * g * g;
        double w1 = w0 - lr * (m1 / 0.1) / (sqrt(v1 / 0.001) + 1e-8);
        double m2 = 0.9 * m1 + 0.1 * g, v2 = 0.999 * v1 + 0.001 * g * g;
        double w2 = w1 - lr * (m2 / (1 - 0.81)) / (sqrt(v2 / (1 - 0.999 * 0.999)) + 1e-8);
        want[3][0] = w1;
        want[3][1] = w2;
    }
    for (int r = 0; r < 4; r++) {
        float w = 1, gr = 0.5f, st[2] = { 0, 0 };
        nn_tensor tw = nn_tensor_1d(&w, 1), tg = nn_tensor_1d(&gr, 1), ts = nn_tensor_1d(st, 2);
        nn_optim_params p = nn_optim_defaults((nn_update_rule)r);
        p.learning_rate = lr;
        char err[NN_ERRLEN];
        for (int t = 1; t <= 2; t++) {
            CHECK(nn_optim_step(&tw, &ts, &tg, &p, t, err) == NN_OK, "%s", err);
            /* float: 0.9f and 0.999f are not exact, so ~1e-6 relative */
            CHECK(fabs(w - want[r][t - 1]) < 1e-5, "%s step %d: w = %.8f, want %.8f",
                  nn_update_rule_name((nn_update_rule)r), t, w, want[r][t - 1]);
        }
    }
    /* L2: grad += 2 reg w, sumsq = sum w^2 */
    float w[3] = { 1, -2, 3 }, gr[3] = { 0.5f, 0.5f, 0.5f };
    nn_tensor tw = nn_tensor_1d(w, 3), tg = nn_tensor_1d(gr, 3);
    double ss = 0;
    CHECK(nn_l2_reg(&ss, &tg, &tw, 0.1, NULL) == NN_OK, "l2");
    CHECK(ss == 14 && fabs(gr[1] - (0.5 - 0.4)) < 1e-7, "l2: sumsq %g grad %g", ss, gr[1]);
    nn_optim_params bad = nn_optim_defaults(NN_SGD);
    bad.learning_rate = -1;
    char err[NN_ERRLEN] = "";
    CHECK(nn_optim_step(&tw, NULL, &tg, &bad, 1, err) == NN_ERR_ARG &&
          strstr(err, "learning_rate"), "negative lr rejected: %s", err);
}

/* ---- training ----------------------------------------------------------- */

static nn_dataset *fmnist;

static void log_line(void *user, const char *line)
{
    (void)user;
    printf("%s\n", line);
}

static void count_call(void *user) { ++*(int *)user; }

typedef struct run {
    nn_model *m;
    nn_solver *s;
    nn_split train, val;
    float mean[1];
} run;

static int start(run *r, const char *model, const char *solver, int limit, double val)
{
    char err[NN_ERRLEN];
    memset(r, 0, sizeof *r);
    nn_solver_config sc = nn_solver_defaults();
    if (!CHECK(nn_solver_config_parse(&sc, solver, err) == NN_OK, "solver: %s", err) ||
        !CHECK(nn_dataset_split(&r->train, &r->val, fmnist, val, limit, err) == NN_OK,
               "split: %s", err) ||
        !CHECK(nn_dataset_channel_mean(r->mean, &r->train, err) == NN_OK, "mean: %s", err))
        return 0;
    nn_model_config mc = { .channels = 1, .height = 28, .width = 28, .num_classes = 10,
                           .max_batch = sc.batch_size, .seed = sc.seed };
    if (!CHECK(nn_model_create(&r->m, backend, model, &mc, err) == NN_OK, "model: %s", err))
        return 0;
    return CHECK(nn_solver_create(&r->s, r->m, &r->train, &r->val, r->mean, &sc, err) == NN_OK,
                 "solver: %s", err);
}

static void stop(run *r)
{
    nn_solver_free(r->s);
    nn_model_free(r->m);
}

static void test_overfit(void)
{
    run r;
    /* The report: a few training samples, train accuracy near 100%, val low. */
    if (!start(&r, "{\"preset\":\"three_layer_convnet\",\"weight_scale\":0.01}",
               "{\"update_rule\":\"adam\",\"learning_rate\":2e-3,\"batch_size\":20,"
               "\"epochs\":25,\"print_every\":25}", 125, 0.2))
        return;
    CHECK(r.train.count == 100, "train split of 100, got %d", r.train.count);
    int between = 0;
    nn_solver_hooks h = { .user = &between, .log = log_line, .between_batches = count_call };
    char err[NN_ERRLEN];
    CHECK(nn_solver_run(r.s, &h, err) == NN_OK, "run: %s", err);
    /* Accuracy checks after iteration 1 and each of the 25 epochs, each of
     * ceil(100/20) train + ceil(25/20) val batches; a check outside the run
     * calls no hook. */
    CHECK(between == 26 * (5 + 2), "between_batches ran %d times, want %d", between, 26 * 7);
    double acc;
    CHECK(nn_solver_accuracy(r.s, &acc, &r.val, 0, err) == NN_OK, "accuracy: %s", err);
    CHECK(between == 26 * 7, "between_batches ran outside nn_solver_run");
    nn_solver_progress p;
    nn_solver_progress_get(r.s, &p);
    CHECK(p.train_acc >= 0.99, "overfit: train acc %.3f, want >= 0.99", p.train_acc);
    CHECK(p.val_acc < p.train_acc - 0.1, "overfit: val acc %.3f should stay well below",
          p.val_acc);
    stop(&r);
}

/* Losses of `steps` iterations from the solver's current position. */
static int losses(run *r, double *out, int steps)
{
    char err[NN_ERRLEN];
    for (int i = 0; i < steps; i++)
        if (!CHECK(nn_solver_step(r->s, &out[i], err) == NN_OK, "step: %s", err))
            return 0;
    return 1;
}

static void test_resume(void)
{
    /* Batch norm, dropout, augmentation and momentum state all have to come
     * back for the losses to match bit for bit. 8 steps an epoch: the stop
     * at step 5 is mid-epoch. */
    const char *model = "{\"layers\":[{\"type\":\"conv\",\"filters\":4,\"size\":3,\"pad\":1},"
                        "{\"type\":\"batchnorm\"},{\"type\":\"relu\"},{\"type\":\"maxpool\"},"
                        "{\"type\":\"linear\",\"units\":16},{\"type\":\"dropout\",\"p\":0.2},"
                        "{\"type\":\"relu\"},{\"type\":\"linear\"}],"
                        "\"weight_initializer\":\"kaiming\",\"reg\":1e-3}";
    const char *solver = "{\"update_rule\":\"sgd_momentum\",\"learning_rate\":0.02,"
                         "\"batch_size\":16,\"epochs\":2,\"seed\":3,\"lr_decay\":0.5,"
                         "\"augment\":{\"crop_pad\":2,\"hflip\":true}}";
    enum { N = 5, M = 7 };
    double a[N + M], b[N + M];
    run r1, r2;
    if (!start(&r1, model, solver, 160, 0.2) || !losses(&r1, a, N + M))
        return;
    stop(&r1);

    char path[] = "/tmp/nn_test_resume_XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    char err[NN_ERRLEN];
    if (!start(&r1, model, solver, 160, 0.2) || !losses(&r1, b, N))
        return;
    CHECK(nn_solver_save(r1.s, path, NULL, "{\"job\":1}", err) == NN_OK, "save: %s", err);
    stop(&r1);
    if (!start(&r2, model, solver, 160, 0.2))
        return;
    CHECK(nn_solver_restore(r2.s, path, err) == NN_OK, "restore: %s", err);
    if (!losses(&r2, b + N, M))
        return;
    int same = 1;
    for (int i = 0; i < N + M; i++) {
        printf("step %2d: uninterrupted %.9f resumed %.9f\n", i + 1, a[i], b[i]);
        same &= a[i] == b[i];
    }
    CHECK(same, "resumed losses equal the uninterrupted run's, step for step");
    CHECK(a[0] != a[N + M - 1], "losses change over training");

    /* A checkpoint of another model is refused. */
    run r3;
    if (start(&r3, "{\"preset\":\"three_layer_convnet\",\"num_filters\":2,\"hidden_dim\":8}",
              solver, 160, 0.2)) {
        err[0] = 0;
        CHECK(nn_solver_restore(r3.s, path, err) != NN_OK && strstr(err, "different model"),
              "restore into another model: %s", err);
        stop(&r3);
    }

    /* Serving: the checkpoint loads as a model with its metadata. */
    nn_model *m = NULL;
    nn_model_info info;
    CHECK(nn_model_load(&m, &info, backend, path, 4, 1, err) == NN_OK, "load: %s", err);
    if (m) {
        CHECK(info.cfg.num_classes == 10 && info.cfg.height == 28 && info.iteration == N,
              "info: %d classes, h %d, iteration %ld", info.cfg.num_classes,
              info.cfg.height, info.iteration);
        CHECK(fabs(info.mean[0] - r2.mean[0]) < 1e-6, "mean stored");
        CHECK(strstr(info.meta_json, "\"extra\":{\"job\":1}") != NULL, "extra stored");
        float x[4 * 784] = { 0 }, sc[40];
        nn_tensor tx = nn_tensor_4d(x, 4, 1, 28, 28), ts = nn_tensor_2d(sc, 4, 10);
        CHECK(nn_model_predict(m, &ts, &tx, err) == NN_OK, "predict: %s", err);
        nn_model_info_free(&info);
        nn_model_free(m);
    }
    stop(&r2);
    unlink(path);
}

int main(void)
{
    char err[NN_ERRLEN];
    if (nn_cpu_backend_create(2, &backend, err) != NN_OK) {
        fprintf(stderr, "backend: %s\n", err);
        return 1;
    }
    test_rules();
    if (nn_dataset_load_fashion_mnist(&fmnist, NULL, NULL, err) != NN_OK) {
        fprintf(stderr, "Fashion-MNIST is needed (scripts/deps.sh installs it): %s\n", err);
        return 1;
    }
    test_resume();
    test_overfit();
    nn_dataset_free(fmnist);
    nn_backend_free(backend);
    return tu_finish("nn_train");
}
