/* test_layers.c: linear, ReLU, softmax loss and the sandwich layers
 * (conv_relu, conv_relu_pool, linear_relu) in double. Forward values come
 * from independent loops written here in long double (the conv reference
 * scatters input pixels, unlike the kernels); backward from numeric
 * gradients of sum(out * dout) taken through those references, with inputs
 * drawn away from the ReLU and max-pool kinks so h = 1e-6 never crosses one. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "nn/layers.h"
#include "testutil.h"

/* ---- independent references -------------------------------------------- */

static void linear_ref(long double *out, const nn_real *x, const nn_real *w,
                       const nn_real *b, int N, int D, int M)
{
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            long double acc = b[m];
            for (int d = 0; d < D; d++)
                acc += (long double)x[n * D + d] * w[d * M + m];
            out[n * M + m] = acc;
        }
}

/* Scatter form: every (input pixel, tap) pair adds into the one output it
 * reaches, if any. Zero padding is implicit in which pairs exist. */
static void conv_scatter(long double *acc, const nn_real *x, const nn_real *w,
                         const nn_real *b, int N, int C, int H, int W, int K,
                         int R, int S, int stride, int pad)
{
    int P = (H + 2 * pad - R) / stride + 1, Q = (W + 2 * pad - S) / stride + 1;
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++)
            for (int i = 0; i < P * Q; i++)
                acc[(n * K + k) * P * Q + i] = b[k];
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++)
            for (int h = 0; h < H; h++)
                for (int ww = 0; ww < W; ww++)
                    for (int r = 0; r < R; r++) {
                        int ph = h + pad - r;
                        if (ph < 0 || ph % stride || ph / stride >= P)
                            continue;
                        for (int s = 0; s < S; s++) {
                            int qw = ww + pad - s;
                            if (qw < 0 || qw % stride || qw / stride >= Q)
                                continue;
                            for (int k = 0; k < K; k++)
                                acc[((n * K + k) * P + ph / stride) * Q + qw / stride] +=
                                    (long double)x[((n * C + c) * H + h) * W + ww] *
                                    w[((k * C + c) * R + r) * S + s];
                        }
                    }
}

static double maxd_(double a, double b)
{
    return a > b || a != a ? a : b;
}

static void relu_ref(long double *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = x[i] > 0 ? x[i] : 0;
}

/* ---- a layer under test, as one struct the numeric gradient can drive --- */

/* ---- a layer under test, as one struct the numeric gradient can drive --- */

enum kind { LINEAR, RELU, CONV_RELU, CONV_RELU_POOL, LINEAR_RELU };

typedef struct layer {
    enum kind kind;
    const char *name;
    int N, C, H, W, K, R, S;       /* conv; linear uses N, D = C, M = K */
    nn_conv2d_params cp;
    nn_pool_params pp;
    nn_tensor x, w, b, out, act, dout, dx, dw, db, dact, ws;
    long double *pre, *ref, f0;    /* reference scratch (pre-activation, out) */
} layer;

static nn_tensor t4(int a, int b, int c, int d)
{
    return nn_tensor_4d(tu_alloc((size_t)a * b * c * d), a, b, c, d);
}

static nn_tensor t2(int a, int b)
{
    return nn_tensor_2d(tu_alloc((size_t)a * b), a, b);
}

static nn_tensor t1(int a)
{
    return nn_tensor_1d(tu_alloc((size_t)a), a);
}

static void layer_free(layer *L)
{
    nn_tensor *all[] = { &L->x, &L->w, &L->b, &L->out, &L->act, &L->dout,
                         &L->dx, &L->dw, &L->db, &L->dact, &L->ws };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        free(all[i]->data);
    free(L->pre);
    free(L->ref);
}

static size_t conv_out_size(const layer *L)
{
    int P = (L->H + 2 * L->cp.pad - L->R) / L->cp.stride + 1;
    int Q = (L->W + 2 * L->cp.pad - L->S) / L->cp.stride + 1;
    return (size_t)L->N * L->K * P * Q;
}

/* The reference forward into L->ref (out's size), keeping the
 * pre-activation in L->pre. */
static void layer_ref(layer *L)
{
    const nn_real *x = L->x.data, *w = L->w.data, *b = L->b.data;
    size_t npre;
    switch (L->kind) {
    case LINEAR:
    case LINEAR_RELU:
        npre = (size_t)L->N * L->K;
        linear_ref(L->pre, x, w, b, L->N, L->C, L->K);
        break;
    case RELU:
        npre = L->x.size;
        for (size_t i = 0; i < npre; i++)
            L->pre[i] = x[i];
        break;
    default:
        npre = conv_out_size(L);
        conv_scatter(L->pre, x, w, b, L->N, L->C, L->H, L->W, L->K, L->R, L->S,
                     L->cp.stride, L->cp.pad);
        break;
    }
    memcpy(L->ref, L->pre, npre * sizeof *L->ref);
    if (L->kind != LINEAR)
        relu_ref(L->ref, npre);
    if (L->kind == CONV_RELU_POOL) {
        int P = (L->H + 2 * L->cp.pad - L->R) / L->cp.stride + 1;
        int Q = (L->W + 2 * L->cp.pad - L->S) / L->cp.stride + 1;
        const nn_pool_params *p = &L->pp;
        int PP = (P - p->pool_h) / p->stride + 1, QQ = (Q - p->pool_w) / p->stride + 1;
        long double *tmp = tu_xcalloc((size_t)L->N * L->K * PP * QQ, sizeof *tmp);
        for (int c = 0; c < L->N * L->K; c++)
            for (int i = 0; i < PP; i++)
                for (int j = 0; j < QQ; j++) {
                    long double m = -INFINITY;
                    for (int r = 0; r < p->pool_h; r++)
                        for (int s = 0; s < p->pool_w; s++) {
                            long double v = L->ref[(c * P + i * p->stride + r) * Q +
                                                   j * p->stride + s];
                            m = v > m ? v : m;
                        }
                    tmp[(c * PP + i) * QQ + j] = m;
                }
        memcpy(L->ref, tmp, (size_t)L->N * L->K * PP * QQ * sizeof *tmp);
        free(tmp);
    }
}

/* f = sum(ref_out * dout) - f0 in long double (see test_conv.c's f_ref). */
static double f_ref(void *ctx)
{
    layer *L = ctx;
    layer_ref(L);
    long double f = 0;
    for (size_t i = 0; i < L->out.size; i++)
        f += L->ref[i] * L->dout.data[i];
    return (double)(f - L->f0);
}

static nn_tensor *opt(nn_tensor *t)
{
    return t->data ? t : NULL;
}

static nn_status layer_forward(layer *L, char *err)
{
    switch (L->kind) {
    case LINEAR:
        return nn_linear_forward(&L->out, &L->x, &L->w, &L->b, err);
    case RELU:
        return nn_relu_forward(&L->out, &L->x, err);
    case CONV_RELU:
        return nn_conv_relu_forward(&L->out, &L->x, &L->w, &L->b, &L->cp, opt(&L->ws), err);
    case CONV_RELU_POOL:
        return nn_conv_relu_pool_forward(&L->out, &L->act, &L->x, &L->w, &L->b, &L->cp,
                                         &L->pp, opt(&L->ws), err);
    case LINEAR_RELU:
        return nn_linear_relu_forward(&L->out, &L->x, &L->w, &L->b, err);
    }
    return NN_ERR_ARG;
}

/* Needs a forward at the current point first (out, act). */
static nn_status layer_backward(layer *L, nn_tensor *dx, char *err)
{
    switch (L->kind) {
    case LINEAR:
        return nn_linear_backward(dx, &L->dw, &L->db, &L->dout, &L->x, &L->w, err);
    case RELU:
        return nn_relu_backward(dx, &L->dout, &L->out, err);
    case CONV_RELU:
        return nn_conv_relu_backward(dx, &L->dw, &L->db, &L->dout, &L->x, &L->w, &L->out,
                                     &L->cp, &L->dact, opt(&L->ws), err);
    case CONV_RELU_POOL:
        return nn_conv_relu_pool_backward(dx, &L->dw, &L->db, &L->dout, &L->x, &L->w,
                                          &L->act, &L->cp, &L->pp, &L->dact,
                                          opt(&L->ws), err);
    case LINEAR_RELU:
        return nn_linear_relu_backward(dx, &L->dw, &L->db, &L->dout, &L->x, &L->w,
                                       &L->out, &L->dact, err);
    }
    return NN_ERR_ARG;
}

static void zero(nn_tensor *t)
{
    if (t->data)
        memset(t->data, 0, t->size * sizeof(nn_real));
}

/* Allocates the reference scratch; call once the tensors are set. */
static void layer_prepare(layer *L)
{
    size_t npre = L->kind == RELU ? L->x.size
                : (L->kind == LINEAR || L->kind == LINEAR_RELU) ? (size_t)L->N * L->K
                : conv_out_size(L);
    L->pre = tu_xcalloc(npre, sizeof *L->pre);
    L->ref = tu_xcalloc(npre, sizeof *L->ref);
    if (L->kind == CONV_RELU || L->kind == CONV_RELU_POOL) {
        size_t nws = nn_conv2d_workspace_size(&L->x, &L->w, &L->cp);
        if (nws)
            L->ws = nn_tensor_1d(tu_alloc(nws), (int)nws);
    }
}

/* Forward against the reference, numeric gradient checks of every gradient
 * the layer has, the dinp = NULL path and the += contract. */
static void layer_check(layer *L, double grad_tol)
{
    char err[NN_ERRLEN] = "", what[96];
    size_t nout = L->out.size;
    printf("%s\n", L->name);
    layer_ref(L);
    nn_real *want = tu_alloc(nout);
    for (size_t i = 0; i < nout; i++)
        want[i] = (nn_real)L->ref[i];
    tu_fill_const(L->out.data, nout, 1e30);
    int ok = CHECK(layer_forward(L, err) == NN_OK, "%s forward: %s", L->name, err);
    if (ok)
        CHECK_LT("forward vs independent loops (rel error)",
                 tu_rel_error(L->out.data, want, nout), 1e-7);
    free(want);
    zero(&L->dx); zero(&L->dw); zero(&L->db);
    if (!ok || !CHECK(layer_backward(L, &L->dx, err) == NN_OK, "%s backward: %s",
                      L->name, err))
        return;

    struct { const char *name; nn_tensor *var, *grad; } g[] = {
        { "dinp", &L->x, &L->dx }, { "dweight", &L->w, &L->dw }, { "dbias", &L->b, &L->db },
    };
    size_t ng = L->w.data ? 3 : 1;
    nn_real *keep[3] = { 0 };
    L->f0 = 0;
    L->f0 = (long double)f_ref(L);
    for (size_t i = 0; i < ng; i++) {
        size_t n = g[i].var->size;
        nn_real *num = tu_alloc(n);
        tu_numeric_grad(num, g[i].var->data, n, f_ref, L, TU_GRAD_H);
        snprintf(what, sizeof what, "%s vs numeric (rel error)", g[i].name);
        CHECK_LT(what, tu_rel_error(g[i].grad->data, num, n), grad_tol);
        free(num);
        keep[i] = tu_alloc(n);
        memcpy(keep[i], g[i].grad->data, n * sizeof(nn_real));
    }

    if (L->w.data) {
        zero(&L->dw); zero(&L->db);
        if (CHECK(layer_backward(L, NULL, err) == NN_OK, "%s backward, dinp NULL: %s",
                  L->name, err)) {
            CHECK_LE("dinp=NULL: dweight, dbias (max abs diff)",
                     maxd_(tu_max_abs_diff(L->dw.data, keep[1], L->dw.size),
                           tu_max_abs_diff(L->db.data, keep[2], L->db.size)), 1e-12);
        }
    }

    zero(&L->dx); zero(&L->dw); zero(&L->db);
    double worst = 0;
    for (int rep = 0; rep < 2; rep++)
        CHECK(layer_backward(L, &L->dx, err) == NN_OK, "%s backward: %s", L->name, err);
    for (size_t i = 0; i < ng; i++) {
        for (size_t j = 0; j < g[i].grad->size; j++)
            worst = maxd_(worst, fabs(g[i].grad->data[j] - 2 * keep[i][j]));
        free(keep[i]);
    }
    CHECK_LE("accumulates: |2 calls - 2 x grads|", worst, 1e-12);
}

/* ---- linear and ReLU ----------------------------------------------------- */

static void test_linear(tu_rng *rng)
{
    /* CS231n's affine check: x (10,2,3) read as (10,6), w (6,5), b (5) */
    layer L = { .kind = LINEAR, .name = "linear x(10,2,3) w(6,5)", .N = 10, .C = 6, .K = 5 };
    L.x = t4(10, 2, 3, 1); L.dx = t4(10, 2, 3, 1);
    L.w = t2(6, 5); L.dw = t2(6, 5);
    L.b = t1(5); L.db = t1(5);
    L.out = t2(10, 5); L.dout = t2(10, 5);
    layer_prepare(&L);
    tu_fill_gauss(rng, L.x.data, L.x.size, 0, 1);
    tu_fill_gauss(rng, L.w.data, L.w.size, 0, 1);
    tu_fill_gauss(rng, L.b.data, L.b.size, 0, 1);
    tu_fill_gauss(rng, L.dout.data, L.dout.size, 0, 1);
    layer_check(&L, 1e-8);
    layer_free(&L);

    /* plain 2-d input, odd sizes, forward only */
    nn_tensor x = t2(7, 13), w = t2(13, 3), b = t1(3), out = t2(7, 3);
    long double ref[21];
    nn_real want[21];
    tu_fill_gauss(rng, x.data, x.size, 0, 1);
    tu_fill_gauss(rng, w.data, w.size, 0, 1);
    tu_fill_gauss(rng, b.data, b.size, 0, 1);
    linear_ref(ref, x.data, w.data, b.data, 7, 13, 3);
    for (int i = 0; i < 21; i++)
        want[i] = (nn_real)ref[i];
    char err[NN_ERRLEN] = "";
    if (CHECK(nn_linear_forward(&out, &x, &w, &b, err) == NN_OK, "linear 2-d: %s", err))
        CHECK_LT("linear (7,13)x(13,3) forward (rel error)",
                 tu_rel_error(out.data, want, out.size), 1e-7);
    free(x.data); free(w.data); free(b.data); free(out.data);
}

static void test_relu(tu_rng *rng)
{
    layer L = { .kind = RELU, .name = "relu (10,10), |x| > 1e-3" };
    L.x = t2(10, 10); L.dx = t2(10, 10);
    L.out = t2(10, 10); L.dout = t2(10, 10);
    layer_prepare(&L);
    for (size_t i = 0; i < L.x.size; i++) {
        double g = tu_rng_gauss(rng);
        L.x.data[i] = (nn_real)(g < 0 ? g - 1e-2 : g + 1e-2);
    }
    tu_fill_gauss(rng, L.dout.data, L.dout.size, 0, 1);
    layer_check(&L, 1e-8);

    /* out may alias inp */
    nn_real y[100], want[100];
    for (int i = 0; i < 100; i++) {
        y[i] = L.x.data[i];
        want[i] = y[i] > 0 ? y[i] : 0;
    }
    nn_tensor ty = nn_tensor_2d(y, 10, 10);
    char err[NN_ERRLEN] = "";
    if (CHECK(nn_relu_forward(&ty, &ty, err) == NN_OK, "relu in place: %s", err))
        CHECK(memcmp(y, want, sizeof y) == 0, "relu in place differs from relu");
    layer_free(&L);
}

/* ---- softmax loss ------------------------------------------------------- */

typedef struct smx {
    nn_real *scores;
    const int *labels;
    int N, M;
    long double f0;
} smx;

/* Reference loss in long double, max-shifted; dscores optional. */
static long double softmax_ref(nn_real *dscores, const nn_real *s, const int *y, int N, int M)
{
    long double total = 0;
    for (int n = 0; n < N; n++) {
        const nn_real *row = s + (size_t)n * M;
        long double mx = row[0], z = 0;
        for (int m = 1; m < M; m++)
            mx = row[m] > mx ? row[m] : mx;
        for (int m = 0; m < M; m++)
            z += expl((long double)row[m] - mx);
        total += logl(z) - ((long double)row[y[n]] - mx);
        if (dscores)
            for (int m = 0; m < M; m++)
                dscores[n * M + m] = (nn_real)((expl((long double)row[m] - mx) / z -
                                                (m == y[n])) / N);
    }
    return total / N;
}

static double f_softmax(void *ctx)
{
    smx *s = ctx;
    return (double)(softmax_ref(NULL, s->scores, s->labels, s->N, s->M) - s->f0);
}

static void softmax_case(tu_rng *rng, double std, double shift)
{
    enum { N = 50, M = 10 };
    int labels[N];
    nn_real want_ds[N * M];
    nn_tensor sc = t2(N, M), ds = t2(N, M);
    tu_fill_gauss(rng, sc.data, sc.size, shift, std);
    for (int n = 0; n < N; n++)
        labels[n] = tu_rng_int(rng, M);
    double want = (double)softmax_ref(want_ds, sc.data, labels, N, M);
    printf("softmax loss N=%d C=%d, scores std %g shift %g\n", N, M, std, shift);

    double loss = NAN, loss2 = NAN;
    char err[NN_ERRLEN] = "";
    tu_fill_const(ds.data, ds.size, 1e30); /* must be overwritten */
    if (CHECK(nn_softmax_loss(&loss, &ds, &sc, labels, err) == NN_OK, "softmax: %s", err)) {
        if (std < 1e-2)
            CHECK_LT("|loss - log(10)| (tiny scores)", fabs(loss - log(10.0)), 0.01);
        CHECK_LT("loss vs reference (rel error)", fabs(loss - want) / fabs(want), 1e-12);
        CHECK_LT("dscores vs analytic reference (rel error)",
                 tu_rel_error(ds.data, want_ds, ds.size), 1e-10);
        CHECK(nn_softmax_loss(&loss2, NULL, &sc, labels, err) == NN_OK && loss2 == loss,
              "softmax with dscores NULL: loss %.17g vs %.17g (%s)", loss2, loss, err);
        if (std < 1e-2) {
            /* with scores of std 3 some gradients are ~1e-7 and the
             * elementwise relative error of any numeric estimate is noise */
            smx s = { .scores = sc.data, .labels = labels, .N = N, .M = M };
            s.f0 = softmax_ref(NULL, sc.data, labels, N, M);
            nn_real *num = tu_alloc(ds.size);
            tu_numeric_grad(num, sc.data, ds.size, f_softmax, &s, TU_GRAD_H);
            CHECK_LT("dscores vs numeric (rel error)", tu_rel_error(ds.data, num, ds.size),
                     1e-7);
            free(num);
        }
    }
    free(sc.data);
    free(ds.data);
}

static void test_softmax(tu_rng *rng)
{
    softmax_case(rng, 1e-3, 0);     /* CS231n's sanity check */
    softmax_case(rng, 3, 0);
    softmax_case(rng, 3, 1000);     /* exp(1000) overflows unless shifted */
}

/* ---- sandwich layers ---------------------------------------------------- */

/* Smallest |pre-activation|, and smallest gap between the two largest
 * activations of a pool window whose maximum is positive. */
static double kink_margin(const layer *L)
{
    size_t npre = L->kind == LINEAR_RELU ? (size_t)L->N * L->K : conv_out_size(L);
    double m = INFINITY;
    for (size_t i = 0; i < npre; i++)
        m = fabsl(L->pre[i]) < m ? (double)fabsl(L->pre[i]) : m;
    if (L->kind != CONV_RELU_POOL)
        return m;
    int P = (L->H + 2 * L->cp.pad - L->R) / L->cp.stride + 1;
    int Q = (L->W + 2 * L->cp.pad - L->S) / L->cp.stride + 1;
    const nn_pool_params *p = &L->pp;
    for (int c = 0; c < L->N * L->K; c++)
        for (int i = 0; i + p->pool_h <= P; i += p->stride)
            for (int j = 0; j + p->pool_w <= Q; j += p->stride) {
                long double a = -INFINITY, b = -INFINITY;
                for (int r = 0; r < p->pool_h; r++)
                    for (int s = 0; s < p->pool_w; s++) {
                        long double v = L->pre[(c * P + i + r) * Q + j + s];
                        v = v > 0 ? v : 0;
                        if (v > a) { b = a; a = v; }
                        else if (v > b) b = v;
                    }
                if (a > 0 && a - b < m)
                    m = (double)(a - b);
            }
    return m;
}

#define KINK_MARGIN 1e-4

/* Draws x, w, b until no pre-activation or pool gap is within reach of h. */
static void draw_away_from_kinks(tu_rng *rng, layer *L)
{
    int tries = 0;
    do {
        tu_fill_gauss(rng, L->x.data, L->x.size, 0, 1);
        tu_fill_gauss(rng, L->w.data, L->w.size, 0, 1);
        tu_fill_gauss(rng, L->b.data, L->b.size, 0, 1);
        layer_ref(L);
    } while (kink_margin(L) < KINK_MARGIN && ++tries < 50);
    CHECK(tries < 50, "%s: could not draw inputs away from the kinks", L->name);
    tu_fill_gauss(rng, L->dout.data, L->dout.size, 0, 1);
}

static void test_conv_relu(tu_rng *rng, int pool)
{
    enum { N = 2, C = 3, H = 8, W = 8, K = 3, R = 3, S = 3, P = 8, Q = 8 };
    layer L = { .kind = pool ? CONV_RELU_POOL : CONV_RELU,
                .name = pool ? "conv_relu_pool x(2,3,8,8) w(3,3,3,3) s1 p1, pool 2x2/2"
                             : "conv_relu x(2,3,8,8) w(3,3,3,3) s1 p1",
                .N = N, .C = C, .H = H, .W = W, .K = K, .R = R, .S = S,
                .cp = { .stride = 1, .pad = 1 },
                .pp = { .pool_h = 2, .pool_w = 2, .stride = 2 } };
    L.x = t4(N, C, H, W); L.dx = t4(N, C, H, W);
    L.w = t4(K, C, R, S); L.dw = t4(K, C, R, S);
    L.b = t1(K); L.db = t1(K);
    L.dact = t4(N, K, P, Q);
    if (pool) {
        L.act = t4(N, K, P, Q);
        L.out = t4(N, K, P / 2, Q / 2);
        L.dout = t4(N, K, P / 2, Q / 2);
    } else {
        L.out = t4(N, K, P, Q);
        L.dout = t4(N, K, P, Q);
    }
    layer_prepare(&L);
    draw_away_from_kinks(rng, &L);
    layer_check(&L, 1e-8);
    layer_free(&L);
}

static void test_linear_relu(tu_rng *rng)
{
    enum { N = 2, D = 12, M = 10 };
    layer L = { .kind = LINEAR_RELU, .name = "linear_relu x(2,3,4) w(12,10)",
                .N = N, .C = D, .K = M };
    L.x = t4(N, 3, 4, 1); L.dx = t4(N, 3, 4, 1);
    L.w = t2(D, M); L.dw = t2(D, M);
    L.b = t1(M); L.db = t1(M);
    L.out = t2(N, M); L.dout = t2(N, M); L.dact = t2(N, M);
    layer_prepare(&L);
    draw_away_from_kinks(rng, &L);
    layer_check(&L, 1e-8);
    layer_free(&L);
}

int main(void)
{
    tu_rng rng;
    tu_rng_seed(&rng, 31337);
    test_linear(&rng);
    test_relu(&rng);
    test_softmax(&rng);
    test_conv_relu(&rng, 0);
    test_conv_relu(&rng, 1);
    test_linear_relu(&rng);
    return tu_finish("test_layers");
}
