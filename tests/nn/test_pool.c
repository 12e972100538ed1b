/* test_pool.c: max pooling, _ref and _fast, in double. Forward against an
 * independent reference written here and hand-made cases (all-negative
 * windows, overlapping windows); backward against numeric gradients on
 * inputs without ties, the += contract, and the tie rule: a window with
 * equal maxima sends its gradient to the first in row-major order. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "nn/layers.h"
#include "testutil.h"

typedef nn_status (*pool_fwd_fn)(nn_tensor *, const nn_tensor *,
                                 const nn_pool_params *, char *);
typedef nn_status (*pool_bwd_fn)(nn_tensor *, const nn_tensor *, const nn_tensor *,
                                 const nn_pool_params *, char *);

static const struct impl {
    const char *name;
    pool_fwd_fn fwd;
    pool_bwd_fn bwd;
} impls[] = {
    { "ref", nn_maxpool_forward_ref, nn_maxpool_backward_ref },
    { "fast", nn_maxpool_forward_fast, nn_maxpool_backward_fast },
};
#define NIMPL (int)(sizeof impls / sizeof impls[0])

/* Reference: scatters each input pixel into every window that holds it
 * (the kernels gather per window). Ties do not change a maximum's value. */
static void pool_ref(nn_real *out, const nn_real *x, int N, int C, int H, int W,
                     int ph, int pw, int stride)
{
    int P = (H - ph) / stride + 1, Q = (W - pw) / stride + 1;
    for (int i = 0; i < N * C * P * Q; i++)
        out[i] = -INFINITY;
    for (int nc = 0; nc < N * C; nc++)
        for (int h = 0; h < H; h++)
            for (int w = 0; w < W; w++) {
                nn_real v = x[(nc * H + h) * W + w];
                for (int p = 0; p < P; p++) {
                    if (h < p * stride || h >= p * stride + ph)
                        continue;
                    for (int q = 0; q < Q; q++) {
                        if (w < q * stride || w >= q * stride + pw)
                            continue;
                        nn_real *o = &out[(nc * P + p) * Q + q];
                        if (v > *o)
                            *o = v;
                    }
                }
            }
}

typedef struct prob {
    int N, C, H, W, P, Q;
    nn_pool_params pp;
    size_t nx, nout;
    nn_real *x, *out, *out0, *dout;
    nn_tensor tx, tout, tdout;
    const struct impl *im;
} prob;

static void prob_init(prob *pr, int N, int C, int H, int W, int ph, int pw, int stride)
{
    memset(pr, 0, sizeof *pr);
    pr->N = N; pr->C = C; pr->H = H; pr->W = W;
    pr->pp = (nn_pool_params){ .pool_h = ph, .pool_w = pw, .stride = stride };
    pr->P = (H - ph) / stride + 1;
    pr->Q = (W - pw) / stride + 1;
    pr->nx = (size_t)N * C * H * W;
    pr->nout = (size_t)N * C * pr->P * pr->Q;
    pr->x = tu_alloc(pr->nx);
    pr->out = tu_alloc(pr->nout);
    pr->out0 = tu_alloc(pr->nout);
    pr->dout = tu_alloc(pr->nout);
    pr->tx = nn_tensor_4d(pr->x, N, C, H, W);
    pr->tout = nn_tensor_4d(pr->out, N, C, pr->P, pr->Q);
    pr->tdout = nn_tensor_4d(pr->dout, N, C, pr->P, pr->Q);
}

static void prob_free(prob *pr)
{
    free(pr->x); free(pr->out); free(pr->out0); free(pr->dout);
}

static double f_pool(void *ctx)
{
    prob *pr = ctx;
    char err[NN_ERRLEN] = "";
    nn_status s = pr->im->fwd(&pr->tout, &pr->tx, &pr->pp, err);
    if (!CHECK(s == NN_OK, "%s forward in gradient check: %s", pr->im->name, err))
        return NAN;
    return tu_dot_delta(pr->out, pr->out0, pr->dout, pr->nout);
}

static void test_random(tu_rng *rng, int N, int C, int H, int W, int ph, int pw, int stride)
{
    prob pr;
    prob_init(&pr, N, C, H, W, ph, pw, stride);
    /* distinct values at least 1/(2 nx) apart: far from ties at h = 1e-6 */
    tu_fill_distinct(rng, pr.x, pr.nx, -1, 1);
    tu_fill_gauss(rng, pr.dout, pr.nout, 0, 1);
    nn_real *ref = tu_alloc(pr.nout), *dx = tu_alloc(pr.nx), *num = tu_alloc(pr.nx);
    nn_tensor tdx = nn_tensor_4d(dx, N, C, H, W);
    pool_ref(ref, pr.x, N, C, H, W, ph, pw, stride);
    printf("pool x(%d,%d,%d,%d) %dx%d stride %d\n", N, C, H, W, ph, pw, stride);
    for (int i = 0; i < NIMPL; i++) {
        const struct impl *im = &impls[i];
        char err[NN_ERRLEN] = "", what[96];
        tu_fill_const(pr.out, pr.nout, 1e30);
        nn_status s = im->fwd(&pr.tout, &pr.tx, &pr.pp, err);
        snprintf(what, sizeof what, "%s forward vs reference (rel error)", im->name);
        if (CHECK(s == NN_OK, "%s forward: %s", im->name, err))
            CHECK_LT(what, tu_rel_error(pr.out, ref, pr.nout), 1e-7);

        memset(dx, 0, pr.nx * sizeof *dx);
        s = im->bwd(&tdx, &pr.tdout, &pr.tx, &pr.pp, err);
        if (!CHECK(s == NN_OK, "%s backward: %s", im->name, err))
            continue;
        pr.im = im;
        memcpy(pr.out0, ref, pr.nout * sizeof *ref);
        tu_numeric_grad(num, pr.x, pr.nx, f_pool, &pr, TU_GRAD_H);
        snprintf(what, sizeof what, "%s dinp vs numeric (rel error)", im->name);
        CHECK_LT(what, tu_rel_error(dx, num, pr.nx), 1e-8);

        /* a second call adds the same gradient again */
        s = im->bwd(&tdx, &pr.tdout, &pr.tx, &pr.pp, err);
        CHECK(s == NN_OK, "%s backward (2nd): %s", im->name, err);
        for (size_t j = 0; j < pr.nx; j++)
            num[j] *= 2;
        snprintf(what, sizeof what, "%s accumulates: 2 calls vs 2x numeric", im->name);
        CHECK_LT(what, tu_rel_error(dx, num, pr.nx), 1e-8);
    }
    free(ref); free(dx); free(num);
    prob_free(&pr);
}

/* Hand cases with exact expected values. */
static void test_hand(void)
{
    /* 1x1x4x4, 2x2 stride 2. Window (0,0) is all -3 except a -1: max must
     * not start from 0. Window (0,1): ties 7 at (0,3) and (1,2); first in
     * row-major order is (0,3). Window (1,0): four equal 2s -> (2,0).
     * Window (1,1): tie 5 at (3,2) and (3,3) -> (3,2). */
    static const nn_real x[16] = {
        -3, -3,  1,  7,
        -3, -1,  7,  0,
         2,  2,  4,  4,
         2,  2,  5,  5,
    };
    static const nn_real want_out[4] = { -1, 7, 2, 5 };
    static const nn_real dout[4] = { 10, 20, 30, 40 };
    static const nn_real want_dx[16] = {
        0, 0,  0, 20,
        0, 10, 0, 0,
        30, 0, 0, 0,
        0, 0, 40, 0,
    };
    /* 1x1x3x3 all equal, 2x2 stride 1: each window's first element is its
     * top-left, so the gradient lands at (0,0), (0,1), (1,0), (1,1). */
    static const nn_real dout2[4] = { 1, 2, 3, 4 };
    static const nn_real want_dx2[9] = { 1, 2, 0, 3, 4, 0, 0, 0, 0 };
    /* 1x1x3x3, 2x2 stride 1, centre the unique max: it collects all four. */
    static const nn_real x3[9] = { 0, 0, 0, 0, 9, 0, 0, 0, 0 };
    static const nn_real want_dx3[9] = { 0, 0, 0, 0, 10, 0, 0, 0, 0 };

    for (int i = 0; i < NIMPL; i++) {
        const struct impl *im = &impls[i];
        char err[NN_ERRLEN] = "";
        nn_real out[4], dx[16], xs[9], d[4];
        nn_pool_params p2 = { .pool_h = 2, .pool_w = 2, .stride = 2 };
        nn_pool_params p1 = { .pool_h = 2, .pool_w = 2, .stride = 1 };
        nn_tensor tx = nn_tensor_4d((nn_real *)x, 1, 1, 4, 4);
        nn_tensor tout = nn_tensor_4d(out, 1, 1, 2, 2);
        nn_tensor tdout = nn_tensor_4d((nn_real *)dout, 1, 1, 2, 2);
        nn_tensor tdx = nn_tensor_4d(dx, 1, 1, 4, 4);
        int ok;

        ok = im->fwd(&tout, &tx, &p2, err) == NN_OK;
        CHECK(ok && memcmp(out, want_out, sizeof out) == 0,
              "%s hand forward: got %g %g %g %g, want -1 7 2 5 (%s)", im->name,
              out[0], out[1], out[2], out[3], err);
        memset(dx, 0, sizeof dx);
        ok = im->bwd(&tdx, &tdout, &tx, &p2, err) == NN_OK;
        CHECK(ok && memcmp(dx, want_dx, sizeof dx) == 0,
              "%s tie routing 2x2/2: dx row0 %g %g %g %g row1 %g %g %g %g "
              "row2 %g %g %g %g row3 %g %g %g %g (%s)", im->name, dx[0], dx[1],
              dx[2], dx[3], dx[4], dx[5], dx[6], dx[7], dx[8], dx[9], dx[10],
              dx[11], dx[12], dx[13], dx[14], dx[15], err);

        tu_fill_const(xs, 9, 3.5);
        memcpy(d, dout2, sizeof d);
        tx = nn_tensor_4d(xs, 1, 1, 3, 3);
        tdout = nn_tensor_4d(d, 1, 1, 2, 2);
        tdx = nn_tensor_4d(dx, 1, 1, 3, 3);
        memset(dx, 0, sizeof dx);
        ok = im->bwd(&tdx, &tdout, &tx, &p1, err) == NN_OK;
        CHECK(ok && memcmp(dx, want_dx2, 9 * sizeof *dx) == 0,
              "%s tie routing 2x2/1 all equal: dx %g %g %g / %g %g %g / %g %g %g (%s)",
              im->name, dx[0], dx[1], dx[2], dx[3], dx[4], dx[5], dx[6], dx[7],
              dx[8], err);

        memcpy(xs, x3, sizeof xs);
        ok = im->fwd(&tout, &tx, &p1, err) == NN_OK;
        CHECK(ok && out[0] == 9 && out[1] == 9 && out[2] == 9 && out[3] == 9,
              "%s overlapping forward: %g %g %g %g (%s)", im->name, out[0],
              out[1], out[2], out[3], err);
        memset(dx, 0, sizeof dx);
        ok = im->bwd(&tdx, &tdout, &tx, &p1, err) == NN_OK;
        CHECK(ok && memcmp(dx, want_dx3, 9 * sizeof *dx) == 0,
              "%s overlapping windows sum into the shared max: dx[4] = %g, want 10 (%s)",
              im->name, dx[4], err);
    }
    printf("  hand cases (tie routing, negative windows, overlaps) checked\n");
}

int main(void)
{
    tu_rng rng;
    tu_rng_seed(&rng, 4242);
    test_hand();
    test_random(&rng, 2, 3, 8, 8, 2, 2, 2);   /* CS231n's pool check shape */
    test_random(&rng, 1, 2, 7, 7, 3, 3, 2);
    test_random(&rng, 2, 2, 6, 5, 3, 2, 1);
    test_random(&rng, 1, 1, 5, 7, 2, 2, 2);   /* odd: the last row/col unused */
    return tu_finish("test_pool");
}
