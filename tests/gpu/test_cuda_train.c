/* test_cuda_train.c: end to end on both backends: the report's three-layer
 * convnet trains 20 Adam steps on fixed synthetic data (seeded images whose
 * class shifts their brightness pattern) on the CPU and on CUDA from the
 * same initial weights, with random crops and flips; the loss must fall and
 * the two loss curves must agree step by step within 1e-3 relative (float,
 * different summation orders), and so must the validation accuracy after
 * them. CUDA keeps both splits on the device and gathers batches there
 * (nn_backend_gather), the CPU gathers on the host: the same batches only
 * if both draw the augmentation alike. Exits 77 without a CUDA device. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include "nn/solver.h"
#include "nn_cuda/nn_cuda.h"

enum { STEPS = 20, N = 640, K = 10 };

static nn_dataset *synthetic(void)
{
    nn_dataset *d = NULL;
    if (nn_dataset_create(&d, N, 1, 28, 28, K, NULL) != NN_OK)
        return NULL;
    nn_rng r;
    nn_rng_seed(&r, 5);
    for (int i = 0; i < N; i++) {
        int y = (int)nn_rng_below(&r, K);
        d->labels[i] = (uint16_t)y;
        for (int p = 0; p < 784; p++) {
            /* a class-dependent stripe plus noise */
            int stripe = ((p % 28) / 3) % K == y;
            double v = 40 + 150 * stripe + 40 * nn_rng_uniform(&r);
            d->images[(size_t)i * 784 + p] = (uint8_t)v;
        }
    }
    return d;
}

static int losses(nn_backend *b, const nn_dataset *d, double *out, double *val_acc)
{
    char err[NN_ERRLEN];
    nn_split tr, va;
    float mean[1];
    nn_dataset_split(&tr, &va, d, 0.1, 0, err);
    nn_dataset_channel_mean(mean, &tr, err);
    nn_model_config mc = { .channels = 1, .height = 28, .width = 28, .num_classes = K,
                           .max_batch = 64, .seed = 1 };
    nn_model *m = NULL;
    nn_solver *s = NULL;
    nn_solver_config sc = nn_solver_defaults();
    sc.optim.learning_rate = 2e-3;
    sc.num_epochs = 3; /* 9 steps an epoch */
    sc.augment = (nn_augment){ .crop_pad = 2, .hflip = 1 };
    int ok = nn_model_create(&m, b, "{\"preset\":\"three_layer_convnet\",\"hidden_dim\":100,"
                             "\"weight_scale\":0.01,\"reg\":1e-3}", &mc, err) == NN_OK &&
             nn_solver_create(&s, m, &tr, &va, mean, &sc, err) == NN_OK;
    for (int i = 0; ok && i < STEPS; i++)
        ok = nn_solver_step(s, &out[i], err) == NN_OK;
    ok = ok && nn_solver_accuracy(s, val_acc, &va, 0, err) == NN_OK;
    if (!ok)
        fprintf(stderr, "%s: %s\n", nn_backend_name(b), err);
    nn_solver_free(s);
    nn_model_free(m);
    return ok;
}

int main(void)
{
    char err[NN_ERRLEN];
    nn_backend *gpu = NULL, *cpu = NULL;
    if (nn_cuda_backend_create(0, &gpu, err) != NN_OK) {
        printf("no CUDA device: skipped (%s)\n", err);
        return getenv("NN_CUDA_REQUIRE") ? 1 : 77;
    }
    nn_dataset *d = synthetic();
    if (!d || nn_cpu_backend_create(2, &cpu, err) != NN_OK) {
        fprintf(stderr, "setup: %s\n", err);
        return 1;
    }
    double a[STEPS], b[STEPS], acc_a = -1, acc_b = -1;
    int fail = !losses(cpu, d, a, &acc_a) || !losses(gpu, d, b, &acc_b);
    double worst = 0;
    for (int i = 0; !fail && i < STEPS; i++) {
        double rel = fabs(a[i] - b[i]) / fmax(1e-12, fabs(a[i]));
        worst = fmax(worst, rel);
        printf("step %2d: cpu %.6f cuda %.6f rel %.2e\n", i + 1, a[i], b[i], rel);
    }
    if (!fail && worst > 1e-3) {
        printf("FAIL: CPU and CUDA losses differ by %.2e relative (> 1e-3)\n", worst);
        fail = 1;
    }
    /* 64 validation images: one argmax may flip on a near tie */
    printf("validation accuracy: cpu %.4f cuda %.4f\n", acc_a, acc_b);
    if (!fail && !(fabs(acc_a - acc_b) <= 1.5 / 64)) {
        printf("FAIL: validation accuracies differ by more than one image\n");
        fail = 1;
    }
    if (!fail && !(b[STEPS - 1] < b[0] - 0.1)) {
        printf("FAIL: CUDA loss did not fall: %.4f -> %.4f\n", b[0], b[STEPS - 1]);
        fail = 1;
    }
    printf("%s: worst relative difference %.2e\n", fail ? "FAILED" : "ok", worst);
    nn_dataset_free(d);
    nn_backend_free(cpu);
    nn_backend_free(gpu);
    return fail;
}
