/* test_conv.c: conv2d _ref and _gemm in double. Forward against hand-worked
 * tiny cases, the CS231n assignment's published values and a direct conv
 * written here (per output pixel, bounds-checked taps, no padded copy).
 * Backward against numeric gradients of sum(out * dout) taken through that
 * reference in long double (kernel rounding cannot blur the 1e-8 bar), with
 * dinp = NULL, and for the += contract. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "nn/layers.h"
#include "testutil.h"

typedef nn_status (*conv_fwd_fn)(nn_tensor *, const nn_tensor *, const nn_tensor *,
                                 const nn_tensor *, const nn_conv2d_params *,
                                 nn_tensor *, char *);
typedef nn_status (*conv_bwd_fn)(nn_tensor *, nn_tensor *, nn_tensor *,
                                 const nn_tensor *, const nn_tensor *,
                                 const nn_tensor *, const nn_conv2d_params *,
                                 nn_tensor *, char *);

static const struct impl {
    const char *name;
    conv_fwd_fn fwd;
    conv_bwd_fn bwd;
    int needs_ws;
} impls[] = {
    { "ref", nn_conv2d_forward_ref, nn_conv2d_backward_ref, 0 },
    { "gemm", nn_conv2d_forward_gemm, nn_conv2d_backward_gemm, 1 },
};
#define NIMPL (int)(sizeof impls / sizeof impls[0])

/* ---- the independent reference ---------------------------------------- */

static int out_dim(int in, int k, int stride, int pad)
{
    return (in + 2 * pad - k) / stride + 1;
}

/* Output pixel by output pixel: gather the receptive field, skipping the
 * taps that fall into the zero padding; long double throughout. */
static void conv_direct_ld(long double *out, const nn_real *x, const nn_real *w,
                        const nn_real *b, int N, int C, int H, int W, int K,
                        int R, int S, int stride, int pad)
{
    int P = out_dim(H, R, stride, pad), Q = out_dim(W, S, stride, pad);
    for (int n = 0; n < N; n++)
        for (int p = 0; p < P; p++)
            for (int q = 0; q < Q; q++)
                for (int k = 0; k < K; k++) {
                    long double acc = b[k];
                    for (int c = 0; c < C; c++)
                        for (int r = 0; r < R; r++) {
                            int h = p * stride - pad + r;
                            if (h < 0 || h >= H)
                                continue;
                            for (int s = 0; s < S; s++) {
                                int ww = q * stride - pad + s;
                                if (ww < 0 || ww >= W)
                                    continue;
                                acc += (long double)x[((n * C + c) * H + h) * W + ww] *
                                       w[((k * C + c) * R + r) * S + s];
                            }
                        }
                    out[((n * K + k) * P + p) * Q + q] = acc;
                }
}

static void conv_direct(nn_real *out, const nn_real *x, const nn_real *w,
                        const nn_real *b, int N, int C, int H, int W, int K,
                        int R, int S, int stride, int pad)
{
    size_t n = (size_t)N * K * out_dim(H, R, stride, pad) * out_dim(W, S, stride, pad);
    long double *o = tu_xcalloc(n, sizeof *o);
    conv_direct_ld(o, x, w, b, N, C, H, W, K, R, S, stride, pad);
    for (size_t i = 0; i < n; i++)
        out[i] = (nn_real)o[i];
    free(o);
}

/* ---- one problem: sizes, buffers, views -------------------------------- */

typedef struct prob {
    int N, C, H, W, K, R, S, P, Q;
    nn_conv2d_params cp;
    size_t nx, nw, nb, nout, nws;
    nn_real *x, *w, *b, *out, *dout, *ws;
    nn_tensor tx, tw, tb, tout, tdout, tws;
    long double *lout, f0;  /* for f_ref */
} prob;

static void prob_init(prob *pr, int N, int C, int H, int W, int K, int R, int S,
                      int stride, int pad)
{
    memset(pr, 0, sizeof *pr);
    pr->N = N; pr->C = C; pr->H = H; pr->W = W; pr->K = K; pr->R = R; pr->S = S;
    pr->cp = (nn_conv2d_params){ .stride = stride, .pad = pad };
    pr->P = out_dim(H, R, stride, pad);
    pr->Q = out_dim(W, S, stride, pad);
    pr->nx = (size_t)N * C * H * W;
    pr->nw = (size_t)K * C * R * S;
    pr->nb = (size_t)K;
    pr->nout = (size_t)N * K * pr->P * pr->Q;
    pr->x = tu_alloc(pr->nx);
    pr->w = tu_alloc(pr->nw);
    pr->b = tu_alloc(pr->nb);
    pr->out = tu_alloc(pr->nout);
    pr->lout = tu_xcalloc(pr->nout, sizeof *pr->lout);
    pr->dout = tu_alloc(pr->nout);
    pr->tx = nn_tensor_4d(pr->x, N, C, H, W);
    pr->tw = nn_tensor_4d(pr->w, K, C, R, S);
    pr->tb = nn_tensor_1d(pr->b, K);
    pr->tout = nn_tensor_4d(pr->out, N, K, pr->P, pr->Q);
    pr->tdout = nn_tensor_4d(pr->dout, N, K, pr->P, pr->Q);
    pr->nws = nn_conv2d_workspace_size(&pr->tx, &pr->tw, &pr->cp);
    pr->ws = tu_alloc(pr->nws);
    pr->tws = nn_tensor_1d(pr->ws, (int)pr->nws);
}

static void prob_free(prob *pr)
{
    free(pr->x); free(pr->w); free(pr->b);
    free(pr->out); free(pr->lout); free(pr->dout); free(pr->ws);
}

static nn_tensor *ws_for(prob *pr, const struct impl *im)
{
    /* _ref accepts NULL; a fast kernel gets exactly the size it asked for */
    return (im->needs_ws && pr->nws) ? &pr->tws : NULL;
}

static nn_status run_fwd(prob *pr, const struct impl *im, char *err)
{
    return im->fwd(&pr->tout, &pr->tx, &pr->tw, &pr->tb, &pr->cp, ws_for(pr, im), err);
}

/* f = sum(out * dout) - f0 through the long double reference: the
 * difference stays in long double until it is small, so the central
 * difference sees ~1e-19 relative rounding, not double's 1e-16. */
static double f_ref(void *ctx)
{
    prob *pr = ctx;
    conv_direct_ld(pr->lout, pr->x, pr->w, pr->b, pr->N, pr->C, pr->H, pr->W, pr->K,
                   pr->R, pr->S, pr->cp.stride, pr->cp.pad);
    long double f = 0;
    for (size_t i = 0; i < pr->nout; i++)
        f += pr->lout[i] * pr->dout[i];
    return (double)(f - pr->f0);
}

/* ---- forward ------------------------------------------------------------ */

static void test_out_dim(void)
{
    static const int cases[][4] = { /* in, kernel, stride, pad */
        { 4, 4, 2, 1 }, { 7, 3, 2, 0 }, { 5, 2, 3, 3 }, { 3, 3, 1, 0 },
        { 1, 1, 1, 0 }, { 9, 3, 3, 2 }, { 6, 1, 4, 0 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const int *c = cases[i];
        int got = nn_conv2d_out_dim(c[0], c[1], c[2], c[3]);
        CHECK(got == out_dim(c[0], c[1], c[2], c[3]),
              "nn_conv2d_out_dim(%d,%d,%d,%d) = %d, want %d", c[0], c[1], c[2],
              c[3], got, out_dim(c[0], c[1], c[2], c[3]));
    }
    CHECK(nn_conv2d_out_dim(3, 6, 1, 1) == 0, "kernel larger than padded input: want 0");
    CHECK(nn_conv2d_out_dim(5, 3, 0, 0) == 0, "stride 0: want 0");
}

/* 1x1x3x3 input 1..9, 2x2 filters; values worked out by hand. */
static void test_hand_cases(void)
{
    static const nn_real x[9] = { 1, 2, 3, 4, 5, 6, 7, 8, 9 };
    /* filter 0 = [1 2; 3 4] bias 0.5; filter 1 = [0 0; 0 -1] bias -1 */
    static const nn_real w[8] = { 1, 2, 3, 4, 0, 0, 0, -1 };
    static const nn_real b[2] = { 0.5, -1 };
    static const struct {
        int stride, pad, P;
        nn_real want[2 * 16];
    } cases[] = {
        /* pad 0 stride 1: windows 1245, 2356, 4578, 5689 */
        { 1, 0, 2, { 37.5, 47.5, 67.5, 77.5, -6, -7, -9, -10 } },
        /* pad 0 stride 2: one window, floor((3-2)/2) + 1 = 1 */
        { 2, 0, 1, { 37.5, -6 } },
        /* pad 1 stride 2: windows start at input (-1,-1), (-1,1), (1,-1), (1,1) */
        { 2, 1, 2, { 4.5, 18.5, 36.5, 77.5, -2, -4, -8, -10 } },
        /* pad 1 stride 1: 4x4 output */
        { 1, 1, 4, { 4.5, 11.5, 18.5, 9.5,
                     18.5, 37.5, 47.5, 21.5,
                     36.5, 67.5, 77.5, 33.5,
                     14.5, 23.5, 26.5, 9.5,
                     -2, -3, -4, -1,
                     -5, -6, -7, -1,
                     -8, -9, -10, -1,
                     -1, -1, -1, -1 } },
    };
    for (int i = 0; i < NIMPL; i++)
        for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
            prob pr;
            prob_init(&pr, 1, 1, 3, 3, 2, 2, 2, cases[c].stride, cases[c].pad);
            CHECK(pr.P == cases[c].P && pr.Q == cases[c].P, "hand case %zu: P", c);
            memcpy(pr.x, x, sizeof x);
            memcpy(pr.w, w, sizeof w);
            memcpy(pr.b, b, sizeof b);
            tu_fill_const(pr.out, pr.nout, 1e30); /* forward must overwrite */
            char err[NN_ERRLEN] = "";
            nn_status s = run_fwd(&pr, &impls[i], err);
            char what[96];
            snprintf(what, sizeof what, "%s hand case stride %d pad %d (max abs diff)",
                     impls[i].name, cases[c].stride, cases[c].pad);
            if (CHECK(s == NN_OK, "%s: %s", what, err))
                CHECK_LE(what, tu_max_abs_diff(pr.out, cases[c].want, pr.nout), 1e-12);
            prob_free(&pr);
        }
}

/* The CS231n conv_forward_naive check: x, w, b linspace-filled, stride 2,
 * pad 1; correct_out as the assignment publishes it (8 decimals). */
static void test_assignment_case(void)
{
    static const nn_real correct[2 * 3 * 2 * 2] = {
        -0.08759809, -0.10987781, -0.18387192, -0.21092160,
         0.21027089,  0.21661097,  0.22847626,  0.23004637,
         0.50813986,  0.54309974,  0.64082444,  0.67101435,
        -0.98053589, -1.03143541, -1.19128892, -1.24695841,
         0.69108355,  0.66880383,  0.59480972,  0.56776003,
         2.36270298,  2.36904306,  2.38090835,  2.38247847,
    };
    prob pr;
    prob_init(&pr, 2, 3, 4, 4, 3, 4, 4, 2, 1);
    for (size_t i = 0; i < pr.nx; i++)
        pr.x[i] = -0.1 + (0.5 - -0.1) * (double)i / (double)(pr.nx - 1);
    for (size_t i = 0; i < pr.nw; i++)
        pr.w[i] = -0.2 + (0.3 - -0.2) * (double)i / (double)(pr.nw - 1);
    for (size_t i = 0; i < pr.nb; i++)
        pr.b[i] = -0.1 + (0.2 - -0.1) * (double)i / (double)(pr.nb - 1);
    nn_real *ref = tu_alloc(pr.nout);
    conv_direct(ref, pr.x, pr.w, pr.b, 2, 3, 4, 4, 3, 4, 4, 2, 1);
    /* guards the reference itself against the published numbers */
    CHECK_LT("direct reference vs published (rel error)",
             tu_rel_error(ref, correct, pr.nout), 1e-7);
    for (int i = 0; i < NIMPL; i++) {
        char err[NN_ERRLEN] = "", what[96];
        tu_fill_const(pr.out, pr.nout, 1e30);
        nn_status s = run_fwd(&pr, &impls[i], err);
        if (!CHECK(s == NN_OK, "%s forward: %s", impls[i].name, err))
            continue;
        snprintf(what, sizeof what, "%s vs published (rel error)", impls[i].name);
        CHECK_LT(what, tu_rel_error(pr.out, correct, pr.nout), 1e-7);
        snprintf(what, sizeof what, "%s vs direct reference (rel error)", impls[i].name);
        CHECK_LT(what, tu_rel_error(pr.out, ref, pr.nout), 1e-7);
    }
    free(ref);
    prob_free(&pr);
}

/* Random data on a few shapes against the direct reference. */
static void test_random_forward(tu_rng *rng)
{
    static const int shapes[][9] = { /* N C H W K R S stride pad */
        { 2, 3, 4, 4, 3, 4, 4, 2, 1 },
        { 4, 3, 5, 5, 2, 3, 3, 1, 1 },
        { 1, 2, 7, 5, 3, 3, 2, 2, 0 },
        { 2, 1, 6, 9, 4, 1, 1, 1, 0 },
        { 1, 2, 5, 6, 2, 3, 3, 3, 2 },
    };
    for (size_t t = 0; t < sizeof shapes / sizeof shapes[0]; t++) {
        const int *s = shapes[t];
        prob pr;
        prob_init(&pr, s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7], s[8]);
        tu_fill_gauss(rng, pr.x, pr.nx, 0, 1);
        tu_fill_gauss(rng, pr.w, pr.nw, 0, 1);
        tu_fill_gauss(rng, pr.b, pr.nb, 0, 1);
        nn_real *ref = tu_alloc(pr.nout);
        conv_direct(ref, pr.x, pr.w, pr.b, s[0], s[1], s[2], s[3], s[4], s[5],
                    s[6], s[7], s[8]);
        for (int i = 0; i < NIMPL; i++) {
            char err[NN_ERRLEN] = "", what[96];
            tu_fill_const(pr.out, pr.nout, 1e30);
            nn_status st = run_fwd(&pr, &impls[i], err);
            snprintf(what, sizeof what, "%s fwd (%d,%d,%d,%d) w(%d,%d,%d,%d) s%d p%d",
                     impls[i].name, s[0], s[1], s[2], s[3], s[4], s[1], s[5], s[6],
                     s[7], s[8]);
            if (CHECK(st == NN_OK, "%s: %s", what, err))
                CHECK_LT(what, tu_rel_error(pr.out, ref, pr.nout), 1e-7);
        }
        free(ref);
        prob_free(&pr);
    }
}

/* ---- backward ----------------------------------------------------------- */

static void test_backward(tu_rng *rng, int N, int C, int H, int W, int K, int R,
                          int S, int stride, int pad)
{
    prob pr;
    prob_init(&pr, N, C, H, W, K, R, S, stride, pad);
    tu_fill_gauss(rng, pr.x, pr.nx, 0, 1);
    tu_fill_gauss(rng, pr.w, pr.nw, 0, 1);
    tu_fill_gauss(rng, pr.b, pr.nb, 0, 1);
    tu_fill_gauss(rng, pr.dout, pr.nout, 0, 1);
    nn_real *dx = tu_alloc(pr.nx), *dw = tu_alloc(pr.nw), *db = tu_alloc(pr.nb);
    nn_real *dx2 = tu_alloc(pr.nx), *dw2 = tu_alloc(pr.nw), *db2 = tu_alloc(pr.nb);
    nn_real *numx = tu_alloc(pr.nx), *numw = tu_alloc(pr.nw), *numb = tu_alloc(pr.nb);
    nn_tensor tdx = nn_tensor_4d(dx, N, C, H, W), tdw = nn_tensor_4d(dw, K, C, R, S);
    nn_tensor tdb = nn_tensor_1d(db, K);
    nn_tensor tdx2 = nn_tensor_4d(dx2, N, C, H, W), tdw2 = nn_tensor_4d(dw2, K, C, R, S);
    nn_tensor tdb2 = nn_tensor_1d(db2, K);
    printf("backward x(%d,%d,%d,%d) w(%d,%d,%d,%d) stride %d pad %d\n", N, C, H, W,
           K, C, R, S, stride, pad);
    pr.f0 = 0;
    pr.f0 = (long double)f_ref(&pr);
    tu_numeric_grad(numx, pr.x, pr.nx, f_ref, &pr, TU_GRAD_H);
    tu_numeric_grad(numw, pr.w, pr.nw, f_ref, &pr, TU_GRAD_H);
    tu_numeric_grad(numb, pr.b, pr.nb, f_ref, &pr, TU_GRAD_H);

    for (int i = 0; i < NIMPL; i++) {
        const struct impl *im = &impls[i];
        char err[NN_ERRLEN] = "", what[96];
        nn_tensor *ws = ws_for(&pr, im);
        memset(dx, 0, pr.nx * sizeof *dx);
        memset(dw, 0, pr.nw * sizeof *dw);
        memset(db, 0, pr.nb * sizeof *db);
        nn_status s = im->bwd(&tdx, &tdw, &tdb, &pr.tdout, &pr.tx, &pr.tw, &pr.cp, ws, err);
        if (!CHECK(s == NN_OK, "%s backward: %s", im->name, err))
            continue;

        snprintf(what, sizeof what, "%s dinp vs numeric (rel error)", im->name);
        CHECK_LT(what, tu_rel_error(dx, numx, pr.nx), 1e-8);
        snprintf(what, sizeof what, "%s dweight vs numeric (rel error)", im->name);
        CHECK_LT(what, tu_rel_error(dw, numw, pr.nw), 1e-8);
        snprintf(what, sizeof what, "%s dbias vs numeric (rel error)", im->name);
        CHECK_LT(what, tu_rel_error(db, numb, pr.nb), 1e-8);

        /* dinp = NULL still yields dweight and dbias */
        memset(dw2, 0, pr.nw * sizeof *dw2);
        memset(db2, 0, pr.nb * sizeof *db2);
        s = im->bwd(NULL, &tdw2, &tdb2, &pr.tdout, &pr.tx, &pr.tw, &pr.cp, ws, err);
        if (CHECK(s == NN_OK, "%s backward with dinp NULL: %s", im->name, err)) {
            snprintf(what, sizeof what, "%s dinp=NULL: dweight (max abs diff)", im->name);
            CHECK_LE(what, tu_max_abs_diff(dw2, dw, pr.nw), 1e-12);
            snprintf(what, sizeof what, "%s dinp=NULL: dbias (max abs diff)", im->name);
            CHECK_LE(what, tu_max_abs_diff(db2, db, pr.nb), 1e-12);
        }

        /* two calls into zeroed buffers give twice the gradient */
        memset(dx2, 0, pr.nx * sizeof *dx2);
        memset(dw2, 0, pr.nw * sizeof *dw2);
        memset(db2, 0, pr.nb * sizeof *db2);
        for (int rep = 0; rep < 2; rep++) {
            s = im->bwd(&tdx2, &tdw2, &tdb2, &pr.tdout, &pr.tx, &pr.tw, &pr.cp, ws, err);
            CHECK(s == NN_OK, "%s backward call %d: %s", im->name, rep, err);
        }
        for (size_t j = 0; j < pr.nx; j++) dx2[j] -= 2 * dx[j];
        for (size_t j = 0; j < pr.nw; j++) dw2[j] -= 2 * dw[j];
        for (size_t j = 0; j < pr.nb; j++) db2[j] -= 2 * db[j];
        snprintf(what, sizeof what, "%s accumulates: |2 calls - 2 dinp|", im->name);
        CHECK_LE(what, tu_max_abs(dx2, pr.nx), 1e-12);
        snprintf(what, sizeof what, "%s accumulates: |2 calls - 2 dweight|", im->name);
        CHECK_LE(what, tu_max_abs(dw2, pr.nw), 1e-12);
        snprintf(what, sizeof what, "%s accumulates: |2 calls - 2 dbias|", im->name);
        CHECK_LE(what, tu_max_abs(db2, pr.nb), 1e-12);
    }
    free(dx); free(dw); free(db); free(dx2); free(dw2); free(db2); free(numx); free(numw); free(numb);
    prob_free(&pr);
}

int main(void)
{
    tu_rng rng;
    tu_rng_seed(&rng, 20240611);
    test_out_dim();
    test_hand_cases();
    test_assignment_case();
    test_random_forward(&rng);
    test_backward(&rng, 4, 3, 5, 5, 2, 3, 3, 1, 1);   /* CS231n's gradient check */
    test_backward(&rng, 2, 3, 4, 4, 3, 4, 4, 2, 1);   /* the report's forward shape */
    test_backward(&rng, 1, 2, 7, 5, 3, 3, 2, 2, 0);   /* non-square, ragged stride */
    return tu_finish("test_conv");
}
