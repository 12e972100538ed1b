/* test_model.c: the report's checks of the three-layer convnet, in double:
 * initial loss near log(10) (larger with reg), every parameter's gradient
 * against central differences (max relative error < 1e-5), and the same for
 * a small deep_convnet with batch norm and for a layer list with dropout.
 * Also: presets expand as the issue says; bad specs name their field. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "nn/model.h"
#include "testutil.h"

/* The report's (EECS 498's) relative error of a whole tensor:
 * max|x - y| / max(|x| + |y|). Element-wise relative error (tu_rel_error)
 * is noise for the gradient elements near zero that a ReLU net has. */
static double rel_error(const nn_real *x, const nn_real *y, size_t n)
{
    double top = 0, bot = 1e-10;
    for (size_t i = 0; i < n; i++) {
        top = fmax(top, fabs((double)x[i] - y[i]));
        bot = fmax(bot, fabs((double)x[i]) + fabs((double)y[i]));
    }
    return top / bot;
}

typedef struct gctx {
    nn_model *m;
    nn_tensor *x, *y;
} gctx;

static double loss_of(void *p)
{
    gctx *g = p;
    double loss = 0;
    char err[NN_ERRLEN];
    if (nn_model_loss(g->m, &loss, g->x, g->y, 42, err) != NN_OK) {
        fprintf(stderr, "loss failed: %s\n", err);
        return NAN;
    }
    return loss;
}

/* Builds the model, random inputs (N, C, H, W) and labels; returns 0 on
 * failure. */
static nn_model *build(nn_backend *b, const char *spec, int N, int C, int H, int W,
                       int K, nn_tensor **x, nn_tensor **y, uint64_t seed)
{
    nn_model_config cfg = { .channels = C, .height = H, .width = W, .num_classes = K,
                            .max_batch = N, .seed = seed };
    nn_model *m = NULL;
    char err[NN_ERRLEN] = "";
    nn_status st = nn_model_create(&m, b, spec, &cfg, err);
    CHECK(st == NN_OK, "create %s: %s", spec, err);
    if (st)
        return NULL;
    *x = nn_tensor_create(4, (int[]){ N, C, H, W });
    *y = nn_tensor_create(1, (int[]){ N });
    tu_rng r;
    tu_rng_seed(&r, seed + 1);
    tu_fill_gauss(&r, (*x)->data, (*x)->size, 0, 1);
    for (int i = 0; i < N; i++)
        (*y)->data[i] = tu_rng_int(&r, K);
    return m;
}

/* Max relative error between analytic and numeric gradients per named
 * trainable tensor, each printed; returns the worst. */
static double grad_check(nn_model *m, nn_tensor *x, nn_tensor *y, const char *what)
{
    gctx g = { m, x, y };
    double loss;
    char err[NN_ERRLEN];
    CHECK(nn_model_loss(m, &loss, x, y, 42, err) == NN_OK, "loss: %s", err);
    size_t P = nn_model_num_params(m);
    nn_real *analytic = tu_alloc(P), *numeric = tu_alloc(P);
    memcpy(analytic, nn_model_grads(m)->data, P * sizeof(nn_real));
    tu_numeric_grad(numeric, nn_model_params(m)->data, P, loss_of, &g, TU_GRAD_H);
    double worst = 0;
    for (int i = 0; i < nn_model_num_tensors(m); i++) {
        const char *name;
        int kind;
        nn_tensor *param, *grad;
        nn_model_tensor(m, i, &name, &kind, &param, &grad);
        if (kind == 2)
            continue;
        size_t off = (size_t)(param->data - nn_model_params(m)->data);
        double e = rel_error(analytic + off, numeric + off, param->size);
        printf("  %s %-18s max relative error: %e\n", what, name, e);
        if (e > worst)
            worst = e;
    }
    free(analytic);
    free(numeric);
    return worst;
}

static void test_sanity(nn_backend *b)
{
    /* The report: 2.3025846 without reg, larger (2.71) with it. */
    nn_tensor *x, *y;
    nn_model *m = build(b, "{\"preset\":\"three_layer_convnet\"}", 50, 3, 32, 32, 10,
                        &x, &y, 1);
    if (!m)
        return;
    double loss = 0;
    char err[NN_ERRLEN];
    CHECK(nn_model_loss(m, &loss, x, y, 0, err) == NN_OK, "loss: %s", err);
    printf("initial loss (no regularization): %.10f\n", loss);
    CHECK_LT("|loss - log(10)|", fabs(loss - log(10.0)), 0.01);
    nn_model_free(m);
    nn_tensor_free(x);
    nn_tensor_free(y);

    m = build(b, "{\"preset\":\"three_layer_convnet\",\"reg\":0.5}", 50, 3, 32, 32, 10,
              &x, &y, 1);
    double loss_reg = 0;
    CHECK(nn_model_loss(m, &loss_reg, x, y, 0, err) == NN_OK, "loss: %s", err);
    printf("initial loss (with regularization): %.10f\n", loss_reg);
    CHECK(loss_reg > loss + 1e-4, "reg must raise the loss: %f vs %f", loss_reg, loss);
    nn_model_free(m);
    nn_tensor_free(x);
    nn_tensor_free(y);
}

static void test_grads(nn_backend *b)
{
    static const struct {
        const char *what, *spec;
        int N, C, H, W, K;
    } cases[] = {
        /* The report's gradient check: input (3,16,16), 3 filters 3x3,
         * hidden 7; weight_scale 1e-2 and reg as in the assignment. */
        { "three_layer", "{\"preset\":\"three_layer_convnet\",\"num_filters\":3,"
          "\"filter_size\":3,\"hidden_dim\":7,\"weight_scale\":0.01,\"reg\":0.05}",
          2, 3, 16, 16, 10 },
        { "deep_bn", "{\"preset\":\"deep_convnet\",\"num_filters\":[4,4],"
          "\"max_pools\":[0,1],\"batchnorm\":true,\"weight_initializer\":\"kaiming\","
          "\"reg\":0.01}", 4, 3, 8, 8, 5 },
        { "layers_dropout", "{\"layers\":[{\"type\":\"conv\",\"filters\":3,\"size\":3,"
          "\"pad\":1,\"stride\":2},{\"type\":\"relu\"},{\"type\":\"linear\",\"units\":6},"
          "{\"type\":\"batchnorm\"},{\"type\":\"relu\"},{\"type\":\"dropout\",\"p\":0.3},"
          "{\"type\":\"linear\"}],\"weight_initializer\":\"kaiming\",\"reg\":0.01}",
          5, 2, 7, 6, 4 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        nn_tensor *x, *y;
        nn_model *m = build(b, cases[i].spec, cases[i].N, cases[i].C, cases[i].H,
                            cases[i].W, cases[i].K, &x, &y, 7 + i);
        if (!m)
            continue;
        double worst = grad_check(m, x, y, cases[i].what);
        CHECK_LT(cases[i].what, worst, 1e-5);
        nn_model_free(m);
        nn_tensor_free(x);
        nn_tensor_free(y);
    }
}

static void test_presets(nn_backend *b)
{
    nn_model_config cfg = { .channels = 1, .height = 28, .width = 28, .num_classes = 10,
                            .max_batch = 4, .seed = 0 };
    nn_model *m = NULL;
    char err[NN_ERRLEN];
    CHECK(nn_model_create(&m, b, "{\"preset\":\"three_layer_convnet\",\"hidden_dim\":500}",
                          &cfg, err) == NN_OK, "%s", err);
    if (m) {
        /* conv 32x1x7x7 + 32, linear 6272x500 + 500, linear 500x10 + 10 */
        size_t want = 32 * 49 + 32 + 6272 * 500 + 500 + 500 * 10 + 10;
        CHECK(nn_model_num_params(m) == want, "three_layer params %zu, want %zu",
              nn_model_num_params(m), want);
        const char *json = nn_model_json(m);
        CHECK(strstr(json, "\"pad\":3") != NULL, "filter 7 gets pad 3: %s", json);
        /* The canonical JSON builds the same model. */
        nn_model *m2 = NULL;
        CHECK(nn_model_create(&m2, b, json, &cfg, err) == NN_OK, "canonical: %s", err);
        if (m2) {
            CHECK(strcmp(nn_model_json(m2), json) == 0, "canonical JSON is a fixed point");
            nn_model_free(m2);
        }
        /* Gaussian init with weight_scale 1e-3: std of conv1.weight. */
        nn_tensor *w;
        nn_model_tensor(m, 0, NULL, NULL, &w, NULL);
        double ss = 0;
        for (size_t i = 0; i < w->size; i++)
            ss += w->data[i] * w->data[i];
        double sd = sqrt(ss / (double)w->size);
        CHECK(sd > 0.8e-3 && sd < 1.2e-3, "conv1 weight std %g, want ~1e-3", sd);
        nn_tensor *bias;
        nn_model_tensor(m, 1, NULL, NULL, &bias, NULL);
        CHECK(tu_max_abs(bias->data, bias->size) == 0, "biases start at zero");
        nn_model_free(m);
    }
    /* Kaiming: std sqrt(2/fan_in) for a 3x3 conv over 8 channels (fan 72). */
    CHECK(nn_model_create(&m, b, "{\"preset\":\"deep_convnet\",\"num_filters\":[8,16],"
                          "\"max_pools\":[1]}", &cfg, err) == NN_OK, "%s", err);
    if (m) {
        nn_tensor *w;
        const char *name;
        nn_model_tensor(m, 2, &name, NULL, &w, NULL);
        double ss = 0;
        for (size_t i = 0; i < w->size; i++)
            ss += w->data[i] * w->data[i];
        double sd = sqrt(ss / (double)w->size), want = sqrt(2.0 / 72);
        CHECK(fabs(sd - want) < 0.1 * want, "%s std %g, kaiming wants %g", name, sd, want);
        nn_model_free(m);
    }
    /* Errors name the field. */
    static const struct { const char *spec, *field; } bad[] = {
        { "{\"preset\":\"three_layer_convnet\",\"hidden_dim\":0}", "model.hidden_dim" },
        { "{\"preset\":\"nope\"}", "model.preset" },
        { "{\"preset\":\"three_layer_convnet\",\"fliters\":3}", "model.fliters" },
        { "{\"layers\":[{\"type\":\"conv\",\"filters\":0}]}", "model.layers[0].filters" },
        { "{\"layers\":[{\"type\":\"conv\",\"filters\":2,\"size\":40},{\"type\":\"linear\"}]}",
          "model.layers[0]" },
        { "{\"layers\":[{\"type\":\"linear\",\"units\":5}]}", "model.layers" },
        { "{\"preset\":\"deep_convnet\",\"max_pools\":[5]}", "model.max_pools[0]" },
        { "[1,2]", "model" },
        { "{\"layers\":[{\"type\":\"maxpool\",\"size\":29},{\"type\":\"linear\"}]}",
          "model.layers[0]" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = 0;
        nn_status st = nn_model_create(&m, b, bad[i].spec, &cfg, err);
        CHECK(st != NN_OK && m == NULL, "bad spec %zu accepted", i);
        CHECK(strncmp(err, bad[i].field, strlen(bad[i].field)) == 0,
              "bad spec %zu: message '%s' should start with '%s'", i, err, bad[i].field);
    }
}

int main(void)
{
    nn_backend *b = NULL;
    char err[NN_ERRLEN];
    if (nn_cpu_backend_create(1, &b, err) != NN_OK) {
        fprintf(stderr, "backend: %s\n", err);
        return 1;
    }
    test_sanity(b);
    test_grads(b);
    test_presets(b);
    nn_backend_free(b);
    return tu_finish("nn_model");
}
