/* test_cuda_ops.c: every op of the CUDA backend against the CPU backend on
 * the same seeded inputs (nn_rng). A pair passes when every element has
 * |gpu - cpu| <= atol + rtol*|cpu|; each check prints the first 5 pairs, the
 * max abs diff and its index (llm.c's check_tensor). Gradients start from
 * random values on both sides, so the accumulate (+=) rule is tested too.
 *
 * Exit 0: all passed; 1: a failure; 77: no CUDA device (ctest's skip), unless
 * NN_CUDA_REQUIRE=1 (the GPU machine's check.sh sets it) makes that a
 * failure. Without OpenBLAS the CPU backend cannot start; the CPU side then
 * runs the reference kernels (and a double-precision loop for linear). */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "nn/backend.h"
#include "nn/data.h"
#include "nn/rng.h"
#include "nn_cuda/nn_cuda.h"

#define RTOL 1e-4  /* float */
#define ELEM 1e-6  /* atol, relative to the tensor's largest |value|: elementwise ops */
#define GEMM 1e-4  /* the same for sums over many terms (GEMM, reductions) */

static nn_backend *cpu; /* NULL: no BLAS, reference kernels instead */
static nn_rng rng;
static int failures;

/* ---- helpers ---------------------------------------------------------- */

static void die(const char *what, nn_backend *b, nn_status s)
{
    printf("FATAL %s: %s: %s\n", what, nn_status_str(s), b ? nn_backend_errmsg(b) : "");
    exit(1);
}

/* A tensor on both sides: the CPU's operand h (host) and its twin d on the
 * GPU backend it was made with. */
typedef struct pair {
    nn_tensor *h;
    nn_tensor d;
} pair;

static void fill(nn_tensor *t, double lo, double hi)
{
    for (size_t i = 0; i < t->size; i++)
        t->data[i] = (nn_real)(lo + (hi - lo) * nn_rng_uniform(&rng));
}

static void upload(nn_backend *g, pair *p)
{
    nn_status s = nn_tensor_copy(g, &p->d, p->h);
    if (s != NN_OK)
        die("upload", g, s);
}

/* Uniform in [lo, hi); lo == hi gives that constant. */
static pair make(nn_backend *g, int ndim, const int *shape, double lo, double hi)
{
    pair p;
    p.h = nn_tensor_create(ndim, shape);
    if (!p.h)
        die("nn_tensor_create", NULL, NN_ERR_NOMEM);
    fill(p.h, lo, hi);
    memset(&p.d, 0, sizeof p.d);
    p.d.ndim = ndim;
    memcpy(p.d.shape, shape, sizeof(int) * (size_t)ndim);
    nn_status s = nn_backend_alloc(g, &p.d);
    if (s != NN_OK)
        die("nn_backend_alloc", g, s);
    upload(g, &p);
    return p;
}

#define MAKE(g, lo, hi, ...) \
    make(g, (int)(sizeof((int[]){ __VA_ARGS__ }) / sizeof(int)), (int[]){ __VA_ARGS__ }, lo, hi)

static void drop(nn_backend *g, pair *p)
{
    nn_backend_release(g, &p->d);
    nn_tensor_free(p->h);
}

static double maxabs(const nn_tensor *t)
{
    double m = 0;
    for (size_t i = 0; i < t->size; i++)
        m = fabs((double)t->data[i]) > m ? fabs((double)t->data[i]) : m;
    return m;
}

/* Compares p's GPU side with its CPU side. atol_rel scales with the CPU
 * tensor's largest |value| (a sum of many terms errs in proportion to its
 * terms, not to its result). */
static void check(nn_backend *g, const char *name, const pair *p, double atol_rel,
                  double rtol)
{
    nn_tensor *got = nn_tensor_create(p->h->ndim, p->h->shape);
    if (!got)
        die("nn_tensor_create", NULL, NN_ERR_NOMEM);
    nn_status s = nn_tensor_copy(g, got, &p->d);
    if (s != NN_OK)
        die("download", g, s);
    const double atol = atol_rel * (maxabs(p->h) > 1 ? maxabs(p->h) : 1);
    double worst = -1;
    size_t worst_i = 0, bad = 0, first_bad = 0;
    printf("%s (%zu elements)\n", name, p->h->size);
    for (size_t i = 0; i < p->h->size; i++) {
        const double a = got->data[i], b = p->h->data[i], diff = fabs(a - b);
        if (i < 5)
            printf("  [%zu] gpu %+.8e cpu %+.8e\n", i, a, b);
        if (!(diff <= atol + rtol * fabs(b)) && bad++ == 0) /* NaN fails */
            first_bad = i;
        if (!(diff <= worst)) { /* NaN is the worst */
            worst = diff;
            worst_i = i;
        }
    }
    printf("  max abs diff %.3e at [%zu] (gpu %+.8e cpu %+.8e), atol %.1e rtol %.0e: %s\n",
           worst, worst_i, (double)got->data[worst_i], (double)p->h->data[worst_i], atol,
           rtol, bad ? "FAIL" : "OK");
    if (bad) {
        printf("  %zu elements out of tolerance, the first at [%zu] (gpu %+.8e cpu %+.8e)\n",
               bad, first_bad, (double)got->data[first_bad], (double)p->h->data[first_bad]);
        failures++;
    }
    nn_tensor_free(got);
}

static void check_scalar(const char *name, double gpu, double ref, double rtol)
{
    const double diff = fabs(gpu - ref);
    const int ok = diff <= rtol * fabs(ref) + 1e-12;
    printf("%s: gpu %.12g cpu %.12g diff %.3e: %s\n", name, gpu, ref, diff,
           ok ? "OK" : "FAIL");
    failures += !ok;
}

static void expect(nn_backend *b, const char *what, nn_status got, nn_status want)
{
    const int ok = got == want;
    printf("%s: %s (%s)%s\n", what, nn_status_str(got), b ? nn_backend_errmsg(b) : "",
           ok ? "" : " FAIL");
    if (!ok) {
        printf("  expected %s\n", nn_status_str(want));
        failures++;
    }
}

#define GPU(g, call)                                                           \
    do {                                                                       \
        nn_status s_ = (call);                                                 \
        if (s_ != NN_OK)                                                       \
            die(#call, g, s_);                                                 \
    } while (0)
#define REF(call)                                                              \
    do {                                                                       \
        nn_status s_ = (call);                                                 \
        if (s_ != NN_OK)                                                       \
            die(#call, cpu, s_);                                               \
    } while (0)

/* ---- the CPU side: the CPU backend, or without BLAS the reference ------ */

static nn_status ref_conv_fwd(nn_tensor *out, const nn_tensor *inp, const nn_tensor *w,
                              const nn_tensor *b, const nn_conv2d_params *p, nn_tensor *ws)
{
    if (cpu)
        return nn_backend_conv2d_forward(cpu, out, inp, w, b, p, ws);
    return nn_conv2d_forward_ref(out, inp, w, b, p, NULL, NULL);
}

static nn_status ref_conv_bwd(nn_tensor *dinp, nn_tensor *dw, nn_tensor *db,
                              const nn_tensor *dout, const nn_tensor *inp,
                              const nn_tensor *w, const nn_conv2d_params *p, nn_tensor *ws)
{
    if (cpu)
        return nn_backend_conv2d_backward(cpu, dinp, dw, db, dout, inp, w, p, ws);
    return nn_conv2d_backward_ref(dinp, dw, db, dout, inp, w, p, NULL, NULL);
}

static nn_status ref_linear_fwd(nn_tensor *out, const nn_tensor *inp, const nn_tensor *w,
                                const nn_tensor *b)
{
    if (cpu)
        return nn_backend_linear_forward(cpu, out, inp, w, b);
    const int N = inp->shape[0], D = (int)(inp->size / (size_t)N), M = w->shape[1];
    for (int n = 0; n < N; n++)
        for (int m = 0; m < M; m++) {
            double s = b->data[m];
            for (int d = 0; d < D; d++)
                s += (double)inp->data[(size_t)n * D + d] * w->data[(size_t)d * M + m];
            out->data[(size_t)n * M + m] = (nn_real)s;
        }
    return NN_OK;
}

static nn_status ref_linear_bwd(nn_tensor *dinp, nn_tensor *dw, nn_tensor *db,
                                const nn_tensor *dout, const nn_tensor *inp,
                                const nn_tensor *w)
{
    if (cpu)
        return nn_backend_linear_backward(cpu, dinp, dw, db, dout, inp, w);
    const int N = inp->shape[0], D = (int)(inp->size / (size_t)N), M = w->shape[1];
    const nn_real *x = inp->data, *dy = dout->data;
    for (int m = 0; m < M; m++) {
        double s = 0;
        for (int n = 0; n < N; n++)
            s += dy[(size_t)n * M + m];
        db->data[m] += (nn_real)s;
    }
    for (int d = 0; d < D; d++)
        for (int m = 0; m < M; m++) {
            double s = 0;
            for (int n = 0; n < N; n++)
                s += (double)x[(size_t)n * D + d] * dy[(size_t)n * M + m];
            dw->data[(size_t)d * M + m] += (nn_real)s;
        }
    if (dinp)
        for (int n = 0; n < N; n++)
            for (int d = 0; d < D; d++) {
                double s = 0;
                for (int m = 0; m < M; m++)
                    s += (double)dy[(size_t)n * M + m] * w->data[(size_t)d * M + m];
                dinp->data[(size_t)n * D + d] += (nn_real)s;
            }
    return NN_OK;
}

static nn_status ref_softmax(double *loss, nn_tensor *dscores, const nn_tensor *scores,
                             const nn_tensor *labels)
{
    if (cpu)
        return nn_backend_softmax_loss(cpu, loss, dscores, scores, labels);
    int *lab = malloc(sizeof(int) * labels->size);
    if (!lab)
        return NN_ERR_NOMEM;
    for (size_t i = 0; i < labels->size; i++)
        lab[i] = (int)labels->data[i];
    nn_status s = nn_softmax_loss(loss, dscores, scores, lab, NULL);
    free(lab);
    return s;
}

/* ---- the tests -------------------------------------------------------- */

static void test_conv(nn_backend *g, const char *tag, int N, int C, int H, int W, int K,
                      int R, int S, int stride, int pad)
{
    char name[128];
    const nn_conv2d_params p = { .stride = stride, .pad = pad };
    const int P = nn_conv2d_out_dim(H, R, stride, pad), Q = nn_conv2d_out_dim(W, S, stride, pad);
    printf("\n== conv %s: inp (%d,%d,%d,%d) w (%d,%d,%d,%d) stride %d pad %d -> (%d,%d,%d,%d)\n",
           tag, N, C, H, W, K, C, R, S, stride, pad, N, K, P, Q);
    pair inp = MAKE(g, -1, 1, N, C, H, W);
    pair w = MAKE(g, -1, 1, K, C, R, S);
    pair b = MAKE(g, -1, 1, K);
    pair out = MAKE(g, 0, 0, N, K, P, Q);
    pair dout = MAKE(g, -1, 1, N, K, P, Q);
    pair dinp = MAKE(g, -1, 1, N, C, H, W);
    pair dw = MAKE(g, -1, 1, K, C, R, S);
    pair db = MAKE(g, -1, 1, K);
    /* Exactly one image's columns, the CPU's contract. */
    const int wsn = (int)nn_conv2d_workspace_size(inp.h, w.h, &p);
    pair ws = MAKE(g, 0, 0, wsn);

    REF(ref_conv_fwd(out.h, inp.h, w.h, b.h, &p, ws.h));
    GPU(g, nn_backend_conv2d_forward(g, &out.d, &inp.d, &w.d, &b.d, &p, &ws.d));
    snprintf(name, sizeof name, "conv %s forward out", tag);
    check(g, name, &out, GEMM, RTOL);

    REF(ref_conv_bwd(dinp.h, dw.h, db.h, dout.h, inp.h, w.h, &p, ws.h));
    GPU(g, nn_backend_conv2d_backward(g, &dinp.d, &dw.d, &db.d, &dout.d, &inp.d, &w.d, &p,
                                      &ws.d));
    snprintf(name, sizeof name, "conv %s backward dinp", tag);
    check(g, name, &dinp, GEMM, RTOL);
    snprintf(name, sizeof name, "conv %s backward dweight", tag);
    check(g, name, &dw, GEMM, RTOL);
    snprintf(name, sizeof name, "conv %s backward dbias", tag);
    check(g, name, &db, GEMM, RTOL);

    /* dinp NULL (a first layer): dweight and dbias accumulate again. */
    REF(ref_conv_bwd(NULL, dw.h, db.h, dout.h, inp.h, w.h, &p, ws.h));
    GPU(g, nn_backend_conv2d_backward(g, NULL, &dw.d, &db.d, &dout.d, &inp.d, &w.d, &p,
                                      &ws.d));
    snprintf(name, sizeof name, "conv %s backward (no dinp) dweight", tag);
    check(g, name, &dw, GEMM, RTOL);
    snprintf(name, sizeof name, "conv %s backward (no dinp) dbias", tag);
    check(g, name, &db, GEMM, RTOL);

    pair *all[] = { &inp, &w, &b, &out, &dout, &dinp, &dw, &db, &ws };
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        drop(g, all[i]);
}

/* ties: inputs on a coarse grid, so windows hold equal maxima and the
 * first-maximum rule decides where backward routes dout. */
static void test_pool(nn_backend *g, int N, int C, int H, int W, int k, int stride,
                      int ties)
{
    char name[128];
    const nn_pool_params p = { .pool_h = k, .pool_w = k, .stride = stride };
    const int P = 1 + (H - k) / stride, Q = 1 + (W - k) / stride;
    printf("\n== maxpool %dx%d/%d on (%d,%d,%d,%d)%s\n", k, k, stride, N, C, H, W,
           ties ? ", with ties" : "");
    pair inp = MAKE(g, -1, 1, N, C, H, W);
    if (ties) {
        for (size_t i = 0; i < inp.h->size; i++)
            inp.h->data[i] = (nn_real)(floor(inp.h->data[i] * 2) / 2);
        upload(g, &inp);
    }
    pair out = MAKE(g, 0, 0, N, C, P, Q);
    pair dout = MAKE(g, -1, 1, N, C, P, Q);
    pair dinp = MAKE(g, -1, 1, N, C, H, W);
    REF(nn_maxpool_forward_fast(out.h, inp.h, &p, NULL));
    GPU(g, nn_backend_maxpool_forward(g, &out.d, &inp.d, &p));
    snprintf(name, sizeof name, "maxpool %dx%d/%d%s forward", k, k, stride, ties ? " ties" : "");
    check(g, name, &out, 0, 0);
    REF(nn_maxpool_backward_fast(dinp.h, dout.h, inp.h, &p, NULL));
    GPU(g, nn_backend_maxpool_backward(g, &dinp.d, &dout.d, &inp.d, &p));
    snprintf(name, sizeof name, "maxpool %dx%d/%d%s backward dinp", k, k, stride,
             ties ? " ties" : "");
    check(g, name, &dinp, 0, 0); /* same additions in the same order */
    drop(g, &inp);
    drop(g, &out);
    drop(g, &dout);
    drop(g, &dinp);
}

static void test_relu(nn_backend *g)
{
    printf("\n== relu on (64,1000)\n");
    pair inp = MAKE(g, -1, 1, 64, 1000);
    pair out = MAKE(g, 0, 0, 64, 1000);
    pair dout = MAKE(g, -1, 1, 64, 1000);
    pair dinp = MAKE(g, -1, 1, 64, 1000);
    REF(nn_relu_forward(out.h, inp.h, NULL));
    GPU(g, nn_backend_relu_forward(g, &out.d, &inp.d));
    check(g, "relu forward", &out, 0, 0);
    REF(nn_relu_backward(dinp.h, dout.h, out.h, NULL));
    GPU(g, nn_backend_relu_backward(g, &dinp.d, &dout.d, &out.d));
    check(g, "relu backward dinp", &dinp, 0, 0);
    drop(g, &inp);
    drop(g, &out);
    drop(g, &dout);
    drop(g, &dinp);
}

/* inp is 4-d when C > 0 (read as (N, C*H*W)), else (N, D). */
static void test_linear(nn_backend *g, int N, int C, int H, int W, int D, int M)
{
    char name[128];
    if (C > 0)
        D = C * H * W;
    printf("\n== linear (%d,%d) x (%d,%d)%s\n", N, D, D, M, C > 0 ? ", 4-d input" : "");
    pair inp = C > 0 ? MAKE(g, -1, 1, N, C, H, W) : MAKE(g, -1, 1, N, D);
    pair dinp = C > 0 ? MAKE(g, -1, 1, N, C, H, W) : MAKE(g, -1, 1, N, D);
    pair w = MAKE(g, -0.05, 0.05, D, M);
    pair b = MAKE(g, -1, 1, M);
    pair out = MAKE(g, 0, 0, N, M);
    pair dout = MAKE(g, -1, 1, N, M);
    pair dw = MAKE(g, -1, 1, D, M);
    pair db = MAKE(g, -1, 1, M);
    REF(ref_linear_fwd(out.h, inp.h, w.h, b.h));
    GPU(g, nn_backend_linear_forward(g, &out.d, &inp.d, &w.d, &b.d));
    snprintf(name, sizeof name, "linear %dx%dx%d forward out", N, D, M);
    check(g, name, &out, GEMM, RTOL);
    REF(ref_linear_bwd(dinp.h, dw.h, db.h, dout.h, inp.h, w.h));
    GPU(g, nn_backend_linear_backward(g, &dinp.d, &dw.d, &db.d, &dout.d, &inp.d, &w.d));
    snprintf(name, sizeof name, "linear %dx%dx%d backward dinp", N, D, M);
    check(g, name, &dinp, GEMM, RTOL);
    snprintf(name, sizeof name, "linear %dx%dx%d backward dweight", N, D, M);
    check(g, name, &dw, GEMM, RTOL);
    snprintf(name, sizeof name, "linear %dx%dx%d backward dbias", N, D, M);
    check(g, name, &db, GEMM, RTOL);
    pair *all[] = { &inp, &dinp, &w, &b, &out, &dout, &dw, &db };
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        drop(g, all[i]);
}

/* spatial when H > 0: (N,C,H,W); else 1-d (N,C). */
static void test_batchnorm(nn_backend *g, int N, int C, int H, int W)
{
    char name[160];
    const char *kind = H > 0 ? "spatial" : "1-d";
    printf("\n== batchnorm %s on (%d,%d%s)\n", kind, N, C, H > 0 ? ",H,W" : "");
    nn_batchnorm_params p = { .eps = 1e-5, .momentum = 0.9, .training = 1 };
    pair inp = H > 0 ? MAKE(g, -1.5, 2.5, N, C, H, W) : MAKE(g, -1.5, 2.5, N, C);
    pair out = H > 0 ? MAKE(g, 0, 0, N, C, H, W) : MAKE(g, 0, 0, N, C);
    pair dout = H > 0 ? MAKE(g, -1, 1, N, C, H, W) : MAKE(g, -1, 1, N, C);
    pair dinp = H > 0 ? MAKE(g, -1, 1, N, C, H, W) : MAKE(g, -1, 1, N, C);
    pair gamma = MAKE(g, 0.5, 1.5, C), beta = MAKE(g, -0.5, 0.5, C);
    pair rmean = MAKE(g, -0.1, 0.1, C), rvar = MAKE(g, 0.9, 1.1, C);
    pair smean = MAKE(g, 0, 0, C), sinv = MAKE(g, 0, 0, C);
    pair dgamma = MAKE(g, -1, 1, C), dbeta = MAKE(g, -1, 1, C);

    REF(nn_batchnorm_forward(out.h, smean.h, sinv.h, rmean.h, rvar.h, inp.h, gamma.h, beta.h,
                             &p, NULL));
    GPU(g, nn_backend_batchnorm_forward(g, &out.d, &smean.d, &sinv.d, &rmean.d, &rvar.d,
                                        &inp.d, &gamma.d, &beta.d, &p));
    const struct { const char *what; pair *t; double atol; } fw[] = {
        { "out", &out, GEMM }, { "save_mean", &smean, GEMM }, { "save_invstd", &sinv, GEMM },
        { "running_mean", &rmean, GEMM }, { "running_var", &rvar, GEMM },
    };
    for (size_t i = 0; i < sizeof fw / sizeof *fw; i++) {
        snprintf(name, sizeof name, "batchnorm %s train forward %s", kind, fw[i].what);
        check(g, name, fw[i].t, fw[i].atol, RTOL);
    }
    REF(nn_batchnorm_backward(dinp.h, dgamma.h, dbeta.h, dout.h, inp.h, gamma.h, smean.h,
                              sinv.h, NULL));
    GPU(g, nn_backend_batchnorm_backward(g, &dinp.d, &dgamma.d, &dbeta.d, &dout.d, &inp.d,
                                         &gamma.d, &smean.d, &sinv.d));
    snprintf(name, sizeof name, "batchnorm %s backward dinp", kind);
    check(g, name, &dinp, GEMM, RTOL);
    snprintf(name, sizeof name, "batchnorm %s backward dgamma", kind);
    check(g, name, &dgamma, GEMM, RTOL);
    snprintf(name, sizeof name, "batchnorm %s backward dbeta", kind);
    check(g, name, &dbeta, GEMM, RTOL);
    /* without dinp */
    REF(nn_batchnorm_backward(NULL, dgamma.h, dbeta.h, dout.h, inp.h, gamma.h, smean.h,
                              sinv.h, NULL));
    GPU(g, nn_backend_batchnorm_backward(g, NULL, &dgamma.d, &dbeta.d, &dout.d, &inp.d,
                                         &gamma.d, &smean.d, &sinv.d));
    snprintf(name, sizeof name, "batchnorm %s backward (no dinp) dgamma", kind);
    check(g, name, &dgamma, GEMM, RTOL);

    /* Test mode uses the running statistics both sides now hold; to keep
     * them identical, give both the CPU's. */
    p.training = 0;
    upload(g, &rmean);
    upload(g, &rvar);
    REF(nn_batchnorm_forward(out.h, NULL, NULL, rmean.h, rvar.h, inp.h, gamma.h, beta.h, &p,
                             NULL));
    GPU(g, nn_backend_batchnorm_forward(g, &out.d, NULL, NULL, &rmean.d, &rvar.d, &inp.d,
                                        &gamma.d, &beta.d, &p));
    snprintf(name, sizeof name, "batchnorm %s test forward out", kind);
    check(g, name, &out, ELEM, RTOL);

    pair *all[] = { &inp, &out, &dout, &dinp, &gamma, &beta, &rmean, &rvar, &smean, &sinv,
                    &dgamma, &dbeta };
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        drop(g, all[i]);
}

static void test_dropout(nn_backend *g, double p, uint64_t seed)
{
    char name[96];
    printf("\n== dropout p=%g seed %llu on (64,500)\n", p, (unsigned long long)seed);
    pair inp = MAKE(g, -1, 1, 64, 500);
    pair out = MAKE(g, 0, 0, 64, 500), mask = MAKE(g, 0, 0, 64, 500);
    pair dout = MAKE(g, -1, 1, 64, 500), dinp = MAKE(g, -1, 1, 64, 500);
    REF(nn_dropout_forward(out.h, mask.h, inp.h, p, seed, NULL));
    GPU(g, nn_backend_dropout_forward(g, &out.d, &mask.d, &inp.d, p, seed));
    /* The mask is the same hash on both sides: exact. */
    snprintf(name, sizeof name, "dropout p=%g mask", p);
    check(g, name, &mask, 0, 0);
    snprintf(name, sizeof name, "dropout p=%g forward out", p);
    check(g, name, &out, 0, 0);
    REF(nn_dropout_backward(dinp.h, dout.h, mask.h, NULL));
    GPU(g, nn_backend_dropout_backward(g, &dinp.d, &dout.d, &mask.d));
    snprintf(name, sizeof name, "dropout p=%g backward dinp", p);
    check(g, name, &dinp, ELEM, RTOL); /* the GPU may fuse the multiply-add */
    drop(g, &inp);
    drop(g, &out);
    drop(g, &mask);
    drop(g, &dout);
    drop(g, &dinp);
}

static void test_softmax(nn_backend *g, int N, int M)
{
    char name[96];
    printf("\n== softmax loss on (%d,%d)\n", N, M);
    pair scores = MAKE(g, -3, 3, N, M);
    pair dscores = MAKE(g, 0, 0, N, M);
    pair labels = MAKE(g, 0, 0, N);
    for (int n = 0; n < N; n++)
        labels.h->data[n] = (nn_real)nn_rng_below(&rng, (uint32_t)M);
    upload(g, &labels);
    double lc = 0, lg = 0;
    REF(ref_softmax(&lc, dscores.h, scores.h, labels.h));
    GPU(g, nn_backend_softmax_loss(g, &lg, &dscores.d, &scores.d, &labels.d));
    GPU(g, nn_backend_synchronize(g)); /* the loss lands here */
    snprintf(name, sizeof name, "softmax (%d,%d) loss", N, M);
    check_scalar(name, lg, lc, 1e-9);
    snprintf(name, sizeof name, "softmax (%d,%d) dscores", N, M);
    check(g, name, &dscores, ELEM, RTOL);
    /* loss only */
    lg = 0;
    GPU(g, nn_backend_softmax_loss(g, &lg, NULL, &scores.d, &labels.d));
    GPU(g, nn_backend_synchronize(g));
    snprintf(name, sizeof name, "softmax (%d,%d) loss without dscores", N, M);
    check_scalar(name, lg, lc, 1e-9);
    /* A bad label is an argument error, reported by the synchronize that
     * would have delivered the loss; results queued beside it still land,
     * and the backend works on after it. */
    labels.h->data[N / 2] = (nn_real)M;
    upload(g, &labels);
    double before = -1, after = -1;
    GPU(g, nn_backend_softmax_loss(g, &before, NULL, &scores.d, &labels.d));
    lg = -1;
    GPU(g, nn_backend_softmax_loss(g, &lg, &dscores.d, &scores.d, &labels.d));
    GPU(g, nn_backend_l2_reg(g, &after, &dscores.d, &scores.d, 0));
    expect(g, "softmax with label == M", nn_backend_synchronize(g), NN_ERR_ARG);
    const int want = before == -1 && lg == -1 && after > 0;
    printf("results beside the bad labels: loss %g, loss %g, sum of squares %g: %s\n", before,
           lg, after, want ? "OK" : "FAIL");
    failures += !want;
    labels.h->data[N / 2] = (nn_real)0.5;
    upload(g, &labels);
    GPU(g, nn_backend_softmax_loss(g, &lg, NULL, &scores.d, &labels.d));
    expect(g, "softmax with label 0.5", nn_backend_synchronize(g), NN_ERR_ARG);
    labels.h->data[N / 2] = 0;
    upload(g, &labels);
    GPU(g, nn_backend_softmax_loss(g, &lg, NULL, &scores.d, &labels.d));
    GPU(g, nn_backend_synchronize(g));
    drop(g, &scores);
    drop(g, &dscores);
    drop(g, &labels);
}

static void test_optim(nn_backend *g, nn_update_rule rule)
{
    char name[96];
    const int n = 10007, slots = nn_optim_state_slots(rule);
    const nn_optim_params p = nn_optim_defaults(rule);
    printf("\n== optimizer %s, 3 steps on %d parameters\n", nn_update_rule_name(rule), n);
    pair w = MAKE(g, -1, 1, n);
    pair grad = MAKE(g, 0, 0, n);
    pair state = MAKE(g, 0, 0, slots ? slots * n : 1);
    for (long t = 1; t <= 3; t++) {
        fill(grad.h, -1, 1);
        upload(g, &grad);
        REF(nn_optim_step(w.h, slots ? state.h : NULL, grad.h, &p, t, NULL));
        GPU(g, nn_backend_optim_step(g, &w.d, slots ? &state.d : NULL, &grad.d, &p, t));
    }
    snprintf(name, sizeof name, "%s param after 3 steps", nn_update_rule_name(rule));
    check(g, name, &w, ELEM, RTOL);
    if (slots) {
        snprintf(name, sizeof name, "%s state after 3 steps", nn_update_rule_name(rule));
        check(g, name, &state, ELEM, RTOL);
    }
    drop(g, &w);
    drop(g, &grad);
    drop(g, &state);
}

static void test_l2(nn_backend *g)
{
    printf("\n== l2 regularisation on 100003 parameters\n");
    pair w = MAKE(g, -1, 1, 100003), grad = MAKE(g, -1, 1, 100003);
    double sc = 0, sg = 0;
    REF(nn_l2_reg(&sc, grad.h, w.h, 1e-3, NULL));
    GPU(g, nn_backend_l2_reg(g, &sg, &grad.d, &w.d, 1e-3));
    GPU(g, nn_backend_synchronize(g));
    /* The CPU adds squares in nn_real partial sums of 64 (nn_l2_range), the
     * GPU in double: in float the two differ by a few 1e-9 relative. */
    check_scalar("l2 sum of squares", sg, sc, sizeof(nn_real) == 4 ? 1e-7 : 1e-12);
    check(g, "l2 grad", &grad, ELEM, RTOL);
    drop(g, &w);
    drop(g, &grad);

    /* More results queued than the backend has slots for (64): it waits
     * for the device once they are taken, and every one still lands. */
    enum { PENDING = 150 };
    pair v = MAKE(g, -1, 1, PENDING), dv = MAKE(g, 0, 0, PENDING);
    double got[PENDING];
    for (int i = 0; i < PENDING; i++) {
        nn_tensor one = v.d, done = dv.d;
        one.data += i;
        done.data += i;
        one.shape[0] = done.shape[0] = 1;
        one.size = done.size = 1;
        got[i] = -1;
        GPU(g, nn_backend_l2_reg(g, &got[i], &done, &one, 0));
    }
    GPU(g, nn_backend_synchronize(g));
    int wrong = 0;
    for (int i = 0; i < PENDING; i++)
        wrong += got[i] != (double)v.h->data[i] * v.h->data[i];
    printf("%d queued sums of squares, %d wrong: %s\n", PENDING, wrong, wrong ? "FAIL" : "OK");
    failures += wrong > 0;
    drop(g, &v);
    drop(g, &dv);
}

/* nn_backend_gather from a split kept on the device against
 * nn_dataset_gather on the host, with crop and flip drawn from the same
 * rng state: the batches must be equal bit for bit. */
static void test_gather(nn_backend *g)
{
    enum { TOTAL = 40, BEGIN = 5, COUNT = 30, C = 3, H = 9, W = 7, K = 4, N = 23 };
    printf("\n== gather (%d of %d images %dx%dx%d, crop 2, flip)\n", N, COUNT, C, H, W);
    char err[NN_ERRLEN];
    nn_dataset *d = NULL;
    if (nn_dataset_create(&d, TOTAL, C, H, W, K, err) != NN_OK)
        die(err, NULL, NN_ERR_NOMEM);
    for (size_t i = 0; i < (size_t)TOTAL * C * H * W; i++)
        d->images[i] = (uint8_t)nn_rng_below(&rng, 256);
    for (int i = 0; i < TOTAL; i++)
        d->labels[i] = (uint16_t)nn_rng_below(&rng, K);
    const nn_split split = { d, BEGIN, COUNT };
    const float mean[C] = { 0.25f, 0.5f, 0.125f };
    const nn_augment aug = { .crop_pad = 2, .hflip = 1 };
    int all[COUNT], idx[N];
    for (int i = 0; i < COUNT; i++)
        all[i] = i;
    for (int j = 0; j < N; j++)
        idx[j] = (int)nn_rng_below(&rng, COUNT);

    /* the split on the device, normalised, as the solver keeps it */
    pair images = MAKE(g, 0, 0, COUNT, C, H, W), labels = MAKE(g, 0, 0, COUNT);
    if (nn_dataset_gather(images.h->data, labels.h->data, &split, all, COUNT, mean, NULL,
                          NULL, err) != NN_OK)
        die(err, NULL, NN_ERR_ARG);
    upload(g, &images);
    upload(g, &labels);

    /* the reference batch, and the plan from the same rng state */
    pair x = MAKE(g, 0, 0, N, C, H, W), y = MAKE(g, 0, 0, N), plan = MAKE(g, 0, 0, N, 4);
    nn_rng r1 = rng, r2 = rng;
    if (nn_dataset_gather(x.h->data, y.h->data, &split, idx, N, mean, &aug, &r1, err) !=
        NN_OK)
        die(err, NULL, NN_ERR_ARG);
    int shifted = 0, flipped = 0;
    for (int j = 0; j < N; j++) {
        int dy, dx, flip;
        nn_augment_draw(&aug, &r2, &dy, &dx, &flip);
        nn_real *p = plan.h->data + 4 * j;
        p[0] = (nn_real)idx[j];
        p[1] = (nn_real)dy;
        p[2] = (nn_real)dx;
        p[3] = (nn_real)flip;
        shifted += dy != 0 || dx != 0;
        flipped += flip;
    }
    printf("%d of %d images shifted, %d flipped\n", shifted, N, flipped);
    if (shifted == 0 || flipped == 0) {
        printf("FAIL: the draws shifted %d and flipped %d images: nothing to compare\n",
               shifted, flipped);
        failures++;
    }
    upload(g, &plan);
    /* NaN in the outputs first: every element must be written */
    nn_tensor *nan_x = nn_tensor_create(4, (int[]){ N, C, H, W });
    nn_tensor *nan_y = nn_tensor_create(1, (int[]){ N });
    for (size_t i = 0; i < nan_x->size; i++)
        nan_x->data[i] = (nn_real)NAN;
    for (int j = 0; j < N; j++)
        nan_y->data[j] = (nn_real)NAN;
    GPU(g, nn_tensor_copy(g, &x.d, nan_x));
    GPU(g, nn_tensor_copy(g, &y.d, nan_y));
    nn_tensor_free(nan_x);
    nn_tensor_free(nan_y);
    GPU(g, nn_backend_gather(g, &x.d, &y.d, &images.d, &labels.d, &plan.d));
    check(g, "gather x", &x, 0, 0);
    check(g, "gather y", &y, 0, 0);

    /* A plan index outside the split (count, or NaN) gives a zero image and
     * the label -1. */
    plan.h->data[4 * 3] = (nn_real)COUNT;
    plan.h->data[4 * 7] = (nn_real)NAN;
    upload(g, &plan);
    GPU(g, nn_backend_gather(g, &x.d, &y.d, &images.d, &labels.d, &plan.d));
    for (int j = 3; j <= 7; j += 4) {
        memset(x.h->data + (size_t)j * C * H * W, 0, sizeof(nn_real) * C * H * W);
        y.h->data[j] = -1;
    }
    check(g, "gather with two bad plan entries x", &x, 0, 0);
    check(g, "gather with two bad plan entries y", &y, 0, 0);

    pair bad = MAKE(g, 0, 0, N, 3);
    expect(g, "gather with a (N,3) plan", nn_backend_gather(g, &x.d, &y.d, &images.d,
                                                            &labels.d, &bad.d),
           NN_ERR_SHAPE);
    pair labels_short = MAKE(g, 0, 0, COUNT - 1);
    expect(g, "gather with labels for COUNT - 1 images",
           nn_backend_gather(g, &x.d, &y.d, &images.d, &labels_short.d, &plan.d),
           NN_ERR_SHAPE);
    pair *ps[] = { &images, &labels, &x, &y, &plan, &bad, &labels_short };
    for (size_t i = 0; i < sizeof ps / sizeof *ps; i++)
        drop(g, ps[i]);
    nn_dataset_free(d);
}

/* Memory ops and the argument checks of a few ops. */
static void test_plumbing(nn_backend *g)
{
    printf("\n== memory and argument checks\n");
    pair a = MAKE(g, -1, 1, 3, 5, 7), b = MAKE(g, 0, 0, 3, 5, 7);
    nn_tensor *keep = nn_tensor_create(a.h->ndim, a.h->shape);
    GPU(g, nn_tensor_copy(g, &b.d, &a.d)); /* device to device */
    memcpy(b.h->data, a.h->data, a.h->size * sizeof(nn_real));
    check(g, "copy on device", &b, 0, 0);
    GPU(g, nn_backend_zero(g, &b.d));
    memset(b.h->data, 0, b.h->size * sizeof(nn_real));
    check(g, "zero", &b, 0, 0);
    GPU(g, nn_backend_synchronize(g));

    /* A copy to the device returns before the device has read the host
     * buffer (it went through a staging buffer): reusing the buffer at
     * once must not change what arrives. Three copies cycle through both
     * staging buffers. */
    /* 1000 elements fit the first staging buffers, 100000 make them grow,
     * 5M (over 16 MiB) take the waiting path. */
    const int sizes[] = { 1000, 100000, 5 << 20 };
    for (int si = 0; si < 3; si++) {
        const int n = sizes[si];
        pair c[3] = { MAKE(g, 0, 0, n), MAKE(g, 0, 0, n), MAKE(g, 0, 0, n) };
        nn_tensor *src = nn_tensor_create(1, (int[]){ n });
        for (int k = 0; k < 3; k++) {
            fill(c[k].h, -1, 1);
            memcpy(src->data, c[k].h->data, (size_t)n * sizeof(nn_real));
            GPU(g, nn_tensor_copy(g, &c[k].d, src));
            memset(src->data, 0xff, (size_t)n * sizeof(nn_real)); /* NaNs */
        }
        for (int k = 0; k < 3; k++) {
            char name[64];
            snprintf(name, sizeof name, "copy %d of %d elements, buffer reused", k, n);
            check(g, name, &c[k], 0, 0);
            drop(g, &c[k]);
        }
        nn_tensor_free(src);
    }

    pair small = MAKE(g, 0, 0, 3, 5, 6), state = MAKE(g, 0, 0, 2 * 105);
    expect(g, "relu with a host input", nn_backend_relu_forward(g, &b.d, a.h), NN_ERR_ARG);
    expect(g, "relu with sizes 105 and 90", nn_backend_relu_forward(g, &small.d, &a.d),
           NN_ERR_SHAPE);
    expect(g, "dropout p = 1", nn_backend_dropout_forward(g, &b.d, &b.d, &a.d, 1.0, 1),
           NN_ERR_ARG);
    const nn_optim_params bad = { .rule = NN_ADAM, .learning_rate = 1e-3 };
    expect(g, "adam at step 0", nn_backend_optim_step(g, &a.d, &state.d, &a.d, &bad, 0),
           NN_ERR_ARG);
    /* still working after the errors */
    GPU(g, nn_backend_relu_forward(g, &b.d, &a.d));
    GPU(g, nn_tensor_copy(g, keep, &b.d));
    nn_tensor_free(keep);
    drop(g, &a);
    drop(g, &b);
    drop(g, &small);
    drop(g, &state);
}

/* ---- main ------------------------------------------------------------- */

int main(void)
{
    char err[NN_ERRLEN] = "";
    nn_backend *gpu = NULL, *gpu_nows = NULL;
    const char *req = getenv("NN_CUDA_REQUIRE");
    const int required = req && strcmp(req, "1") == 0;

    if (nn_cuda_backend_create(0, NULL, err) != NN_ERR_ARG) {
        printf("FAIL nn_cuda_backend_create(out = NULL) did not return NN_ERR_ARG\n");
        return 1;
    }
    if (nn_cuda_device_count() == 0) {
        /* The failure path must still be clean: a status and a reason. */
        nn_status s = nn_cuda_backend_create(0, &gpu, err);
        printf("nn_cuda_backend_create: %s (%s)\n", nn_status_str(s), err);
        if (s == NN_OK || gpu) {
            printf("FAIL: create succeeded with no device\n");
            return 1;
        }
        if (required) {
            printf("no CUDA device, but NN_CUDA_REQUIRE=1: FAIL\n");
            return 1;
        }
        printf("no CUDA device: skipped\n");
        return 77;
    }
    char info[256];
    nn_cuda_device_info(0, info, sizeof info);
    printf("device 0: %s\n", info);

    if (nn_cpu_backend_create(0, &cpu, err) != NN_OK) {
        printf("CPU backend unavailable (%s): comparing against the reference kernels\n",
               err);
        cpu = NULL;
    }
    if (nn_cuda_backend_create(0, &gpu, err) != NN_OK) {
        printf("FAIL nn_cuda_backend_create: %s\n", err);
        return 1;
    }
    /* A second backend with no workspace of its own: conv then lowers one
     * image per GEMM into the caller's workspace. The default one batches
     * all images; 1 MiB batches a few at a time. */
    setenv("NN_CUDA_WORKSPACE_MB", "0", 1);
    nn_status s0 = nn_cuda_backend_create(0, &gpu_nows, err);
    setenv("NN_CUDA_WORKSPACE_MB", "1", 1);
    nn_backend *gpu_1mb = NULL;
    nn_status s1 = nn_cuda_backend_create(0, &gpu_1mb, err);
    unsetenv("NN_CUDA_WORKSPACE_MB");
    if (s0 != NN_OK || s1 != NN_OK) {
        printf("FAIL nn_cuda_backend_create with a small workspace: %s\n", err);
        return 1;
    }
    nn_rng_seed(&rng, 20240601);

    test_plumbing(gpu);
    test_conv(gpu, "A", 10, 3, 31, 31, 25, 3, 3, 2, 1);
    test_conv(gpu, "B", 64, 1, 28, 28, 32, 7, 7, 1, 3);
    test_conv(gpu_nows, "B/1 image per GEMM", 64, 1, 28, 28, 32, 7, 7, 1, 3);
    test_conv(gpu_1mb, "B/6 images per GEMM", 64, 1, 28, 28, 32, 7, 7, 1, 3);
    test_conv(gpu, "odd 1x1", 3, 5, 9, 7, 4, 1, 1, 1, 0);
    test_conv(gpu_1mb, "odd 5x3 stride 3 pad 2", 5, 4, 13, 10, 6, 5, 3, 3, 2);
    test_pool(gpu, 10, 25, 16, 16, 2, 2, 0);
    test_pool(gpu, 10, 25, 16, 16, 2, 2, 1);
    test_pool(gpu, 64, 32, 28, 28, 3, 2, 0);
    test_pool(gpu, 64, 32, 28, 28, 3, 2, 1);
    test_pool(gpu, 2, 3, 11, 9, 3, 1, 1);
    test_relu(gpu);
    test_linear(gpu, 64, 32, 14, 14, 0, 500);
    test_linear(gpu, 3, 0, 0, 0, 7, 5);
    test_batchnorm(gpu, 16, 8, 12, 12);
    test_batchnorm(gpu, 64, 100, 0, 0);
    test_dropout(gpu, 0.3, 42);
    test_dropout(gpu, 0.0, 7);
    test_softmax(gpu, 64, 10);
    test_softmax(gpu, 5, 1000);
    test_optim(gpu, NN_SGD);
    test_optim(gpu, NN_SGD_MOMENTUM);
    test_optim(gpu, NN_RMSPROP);
    test_optim(gpu, NN_ADAM);
    test_l2(gpu);
    test_gather(gpu);

    nn_backend_free(gpu_1mb);
    nn_backend_free(gpu_nows);
    nn_backend_free(gpu);
    nn_backend_free(cpu);
    printf("\ntest_cuda_ops: %d failure%s\n", failures, failures == 1 ? "" : "s");
    return failures ? 1 : 0;
}
