/* test_fast_vs_ref.c: the fast kernels (conv2d _gemm, maxpool _fast) against
 * their naive references over a table of shapes, in double: max abs
 * difference <= 1e-12 for forward and for every gradient. Also checks that
 * no kernel writes past its outputs or past the workspace it asked for.
 * One line per shape. Correctness of the references is test_conv/test_pool's
 * job. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "nn/layers.h"
#include "testutil.h"

#define TOL 1e-12

static double maxd(double a, double b) { return a > b ? a : b; }

/* Guarded buffer plus its 4-d view. */
typedef struct buf {
    nn_real *p;
    size_t n;
    nn_tensor t;
} buf;

static buf buf4(int a, int b, int c, int d)
{
    buf x;
    x.n = (size_t)a * b * c * d;
    x.p = tu_alloc_guarded(x.n);
    x.t = nn_tensor_4d(x.p, a, b, c, d);
    return x;
}

static void conv_case(tu_rng *rng, const int *s)
{
    int N = s[0], C = s[1], H = s[2], W = s[3], K = s[4], R = s[5], S = s[6];
    nn_conv2d_params cp = { .stride = s[7], .pad = s[8] };
    int P = nn_conv2d_out_dim(H, R, cp.stride, cp.pad);
    int Q = nn_conv2d_out_dim(W, S, cp.stride, cp.pad);
    int Pw = (H + 2 * cp.pad - R) / cp.stride + 1, Qw = (W + 2 * cp.pad - S) / cp.stride + 1;
    if (!CHECK(P == Pw && Q == Qw, "conv out dims %dx%d, want %dx%d", P, Q, Pw, Qw))
        return;
    buf x = buf4(N, C, H, W), w = buf4(K, C, R, S), b = buf4(1, 1, 1, K);
    buf o1 = buf4(N, K, P, Q), o2 = buf4(N, K, P, Q), dout = buf4(N, K, P, Q);
    buf dx1 = buf4(N, C, H, W), dx2 = buf4(N, C, H, W);
    buf dw1 = buf4(K, C, R, S), dw2 = buf4(K, C, R, S);
    buf db1 = buf4(1, 1, 1, K), db2 = buf4(1, 1, 1, K);
    nn_tensor tb = nn_tensor_1d(b.p, K), tdb1 = nn_tensor_1d(db1.p, K),
              tdb2 = nn_tensor_1d(db2.p, K);
    tu_fill_gauss(rng, x.p, x.n, 0, 1);
    tu_fill_gauss(rng, w.p, w.n, 0, 1);
    tu_fill_gauss(rng, b.p, b.n, 0, 1);
    tu_fill_gauss(rng, dout.p, dout.n, 0, 1);
    /* gradients start non-zero: both must add the same amount */
    tu_fill_gauss(rng, dx1.p, dx1.n, 0, 1);
    tu_fill_gauss(rng, dw1.p, dw1.n, 0, 1);
    tu_fill_gauss(rng, db1.p, db1.n, 0, 1);
    memcpy(dx2.p, dx1.p, dx1.n * sizeof(nn_real));
    memcpy(dw2.p, dw1.p, dw1.n * sizeof(nn_real));
    memcpy(db2.p, db1.p, db1.n * sizeof(nn_real));

    size_t nws = nn_conv2d_workspace_size(&x.t, &w.t, &cp);
    nn_real *ws = tu_alloc_guarded(nws);
    nn_tensor tws = nn_tensor_1d(ws, (int)nws);
    nn_tensor *pws = nws ? &tws : NULL;
    char err[NN_ERRLEN] = "";
    double dfwd = -1, ddx = -1, ddw = -1, ddb = -1;

    if (CHECK(nn_conv2d_forward_ref(&o1.t, &x.t, &w.t, &tb, &cp, NULL, err) == NN_OK,
              "forward_ref: %s", err) &&
        CHECK(nn_conv2d_forward_gemm(&o2.t, &x.t, &w.t, &tb, &cp, pws, err) == NN_OK,
              "forward_gemm: %s", err))
        dfwd = tu_max_abs_diff(o1.p, o2.p, o1.n);
    if (CHECK(nn_conv2d_backward_ref(&dx1.t, &dw1.t, &tdb1, &dout.t, &x.t, &w.t, &cp,
                                     NULL, err) == NN_OK, "backward_ref: %s", err) &&
        CHECK(nn_conv2d_backward_gemm(&dx2.t, &dw2.t, &tdb2, &dout.t, &x.t, &w.t, &cp,
                                      pws, err) == NN_OK, "backward_gemm: %s", err)) {
        ddx = tu_max_abs_diff(dx1.p, dx2.p, dx1.n);
        ddw = tu_max_abs_diff(dw1.p, dw2.p, dw1.n);
        ddb = tu_max_abs_diff(db1.p, db2.p, db1.n);
    }
    int ok = dfwd >= 0 && ddx >= 0 && maxd(maxd(dfwd, ddx), maxd(ddw, ddb)) <= TOL;
    printf("  conv x(%d,%d,%2d,%2d) w(%d,%d,%d,%d) s%d p%d -> (%d,%d): "
           "out %.1e dx %.1e dw %.1e db %.1e ws %zu %s\n", N, C, H, W, K, C, R, S,
           cp.stride, cp.pad, P, Q, dfwd, ddx, ddw, ddb, nws, ok ? "ok" : "FAIL");
    CHECK(ok, "conv fast vs ref differ beyond %.0e (x(%d,%d,%d,%d) w(%d,%d,%d,%d) "
          "stride %d pad %d)", TOL, N, C, H, W, K, C, R, S, cp.stride, cp.pad);
    CHECK(tu_guard_intact(o1.p, o1.n) && tu_guard_intact(o2.p, o2.n) &&
          tu_guard_intact(dx1.p, dx1.n) && tu_guard_intact(dx2.p, dx2.n) &&
          tu_guard_intact(dw1.p, dw1.n) && tu_guard_intact(dw2.p, dw2.n) &&
          tu_guard_intact(db1.p, db1.n) && tu_guard_intact(db2.p, db2.n),
          "conv kernel wrote past an output");
    CHECK(tu_guard_intact(ws, nws), "conv gemm wrote past its workspace (%zu elements)", nws);
    CHECK(tu_guard_intact(x.p, x.n) && tu_guard_intact(w.p, w.n) &&
          tu_guard_intact(dout.p, dout.n), "conv kernel wrote past an input");
    buf all[] = { x, w, b, o1, o2, dout, dx1, dx2, dw1, dw2, db1, db2 };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        free(all[i].p);
    free(ws);
}

static void pool_case(tu_rng *rng, const int *s, int quantised)
{
    int N = s[0], C = s[1], H = s[2], W = s[3];
    nn_pool_params pp = { .pool_h = s[4], .pool_w = s[5], .stride = s[6] };
    int P = (H - pp.pool_h) / pp.stride + 1, Q = (W - pp.pool_w) / pp.stride + 1;
    buf x = buf4(N, C, H, W), o1 = buf4(N, C, P, Q), o2 = buf4(N, C, P, Q);
    buf dout = buf4(N, C, P, Q), dx1 = buf4(N, C, H, W), dx2 = buf4(N, C, H, W);
    if (quantised) /* values from {0,1,2,3}: many ties, first-max rule decides */
        for (size_t i = 0; i < x.n; i++)
            x.p[i] = (nn_real)tu_rng_int(rng, 4);
    else
        tu_fill_gauss(rng, x.p, x.n, 0, 1);
    tu_fill_gauss(rng, dout.p, dout.n, 0, 1);
    tu_fill_gauss(rng, dx1.p, dx1.n, 0, 1);
    memcpy(dx2.p, dx1.p, dx1.n * sizeof(nn_real));
    char err[NN_ERRLEN] = "";
    double dfwd = -1, ddx = -1;
    if (CHECK(nn_maxpool_forward_ref(&o1.t, &x.t, &pp, err) == NN_OK, "pool fwd ref: %s", err) &&
        CHECK(nn_maxpool_forward_fast(&o2.t, &x.t, &pp, err) == NN_OK, "pool fwd fast: %s", err))
        dfwd = tu_max_abs_diff(o1.p, o2.p, o1.n);
    if (CHECK(nn_maxpool_backward_ref(&dx1.t, &dout.t, &x.t, &pp, err) == NN_OK,
              "pool bwd ref: %s", err) &&
        CHECK(nn_maxpool_backward_fast(&dx2.t, &dout.t, &x.t, &pp, err) == NN_OK,
              "pool bwd fast: %s", err))
        ddx = tu_max_abs_diff(dx1.p, dx2.p, dx1.n);
    int ok = dfwd >= 0 && ddx >= 0 && maxd(dfwd, ddx) <= TOL;
    printf("  pool x(%d,%d,%2d,%2d) %dx%d/%d%s -> (%d,%d): out %.1e dx %.1e %s\n",
           N, C, H, W, pp.pool_h, pp.pool_w, pp.stride, quantised ? " ties" : "     ",
           P, Q, dfwd, ddx, ok ? "ok" : "FAIL");
    CHECK(ok, "pool fast vs ref differ beyond %.0e (x(%d,%d,%d,%d) %dx%d/%d%s)", TOL,
          N, C, H, W, pp.pool_h, pp.pool_w, pp.stride, quantised ? " with ties" : "");
    CHECK(tu_guard_intact(o1.p, o1.n) && tu_guard_intact(o2.p, o2.n) &&
          tu_guard_intact(dx1.p, dx1.n) && tu_guard_intact(dx2.p, dx2.n),
          "pool kernel wrote past an output");
    free(x.p); free(o1.p); free(o2.p); free(dout.p); free(dx1.p); free(dx2.p);
}

int main(void)
{
    static const int conv_shapes[][9] = { /* N C H W K R S stride pad */
        { 1, 1, 5, 5, 1, 1, 1, 1, 0 },    /* N=1, C=1, 1x1 kernel */
        { 2, 3, 6, 6, 4, 1, 1, 2, 0 },    /* 1x1 stride 2 */
        { 2, 3, 5, 7, 2, 1, 1, 3, 1 },    /* 1x1 stride 3 pad 1 */
        { 2, 3, 4, 4, 3, 4, 4, 2, 1 },    /* the report's shape */
        { 1, 2, 7, 5, 3, 3, 2, 1, 0 },    /* non-square input and kernel */
        { 2, 2, 7, 5, 2, 3, 2, 2, 1 },
        { 1, 3, 9, 7, 2, 3, 3, 3, 2 },    /* stride 3, (H+2p-R) % s != 0 */
        { 2, 1, 5, 6, 2, 2, 3, 3, 3 },    /* pad 3 > kernel */
        { 2, 2, 5, 5, 3, 3, 3, 2, 3 },
        { 1, 4, 8, 8, 5, 3, 3, 1, 1 },
        { 3, 2, 11, 9, 4, 5, 3, 2, 2 },   /* odd sizes */
        { 2, 3, 6, 8, 2, 3, 3, 2, 0 },    /* (6-3) % 2 != 0 */
        { 1, 1, 3, 3, 1, 3, 3, 1, 0 },    /* kernel = input: 1x1 output */
        { 1, 2, 2, 2, 3, 3, 3, 1, 1 },    /* kernel > input, fits padded */
        { 2, 2, 1, 1, 3, 1, 1, 1, 0 },    /* 1x1 image */
        { 1, 3, 10, 10, 8, 3, 3, 1, 1 },
        { 2, 5, 13, 11, 3, 3, 5, 2, 1 },
        { 1, 2, 7, 5, 2, 7, 5, 1, 0 },    /* kernel covers the whole input */
        /* stride 1 and Q == W: im2col and col2im copy whole planes */
        { 2, 6, 9, 9, 3, 5, 5, 1, 2 },    /* 5x5 pad 2, K < C */
        { 2, 4, 7, 6, 6, 3, 5, 1, 2 },    /* Q == W but P != H */
        { 1, 3, 6, 6, 2, 3, 3, 1, 3 },    /* pad 3 > kernel: row by row */
    };
    static const int pool_shapes[][7] = { /* N C H W ph pw stride */
        { 2, 3, 8, 8, 2, 2, 2 },
        { 1, 2, 7, 7, 3, 3, 2 },
        { 2, 2, 6, 5, 3, 2, 1 },
        { 1, 1, 5, 7, 2, 2, 2 },
        { 1, 3, 9, 11, 3, 3, 3 },
        { 1, 1, 4, 4, 4, 4, 1 },
        { 2, 2, 7, 5, 1, 1, 1 },
        { 1, 1, 6, 9, 2, 3, 2 },
        { 3, 1, 5, 5, 3, 3, 1 },
    };
    tu_rng rng;
    tu_rng_seed(&rng, 777);
    printf("conv2d: forward_gemm/backward_gemm vs _ref, max abs diff <= %.0e\n", TOL);
    for (size_t i = 0; i < sizeof conv_shapes / sizeof conv_shapes[0]; i++)
        conv_case(&rng, conv_shapes[i]);
    printf("maxpool: _fast vs _ref, max abs diff <= %.0e\n", TOL);
    for (size_t i = 0; i < sizeof pool_shapes / sizeof pool_shapes[0]; i++) {
        pool_case(&rng, pool_shapes[i], 0);
        pool_case(&rng, pool_shapes[i], 1);
    }
    return tu_finish("test_fast_vs_ref");
}
