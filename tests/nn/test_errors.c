/* test_errors.c: the error paths of the nn kernels and the CPU backend.
 * Each bad call (NULL tensor, bad stride/pad/window, mismatched shapes,
 * out-of-range labels, a tensor tagged NN_DEVICE_CUDA) must return
 * NN_ERR_ARG or NN_ERR_SHAPE, write a NUL-terminated message naming the
 * offending thing, leave the outputs untouched, and not crash with
 * err = NULL. Also: backend creation, op support, dispatch, blas info. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "nn/backend.h"
#include "nn/blas.h"
#include "nn/layers.h"
#include "testutil.h"

#define BIG 4096          /* every buffer holds any shape a case asks for */
#define UNTOUCHED 12345.0

/* Case-insensitive: does msg contain one of the '|'-separated words? */
static int mentions(const char *msg, const char *words)
{
    char low[NN_ERRLEN];
    size_t i;
    for (i = 0; msg[i] && i < sizeof low - 1; i++)
        low[i] = (char)tolower((unsigned char)msg[i]);
    low[i] = 0;
    while (*words) {
        char w[32];
        size_t n = strcspn(words, "|");
        if (n >= sizeof w)
            n = sizeof w - 1;
        memcpy(w, words, n);
        w[n] = 0;
        if (n && strstr(low, w))
            return 1;
        words += n + (words[n] == '|');
    }
    return 0;
}

static int nchecked;

/* s1/err from the call with a buffer, s2 from the same call with err NULL. */
static void expect_fail(const char *what, nn_status s1, nn_status s2,
                        const char *err, const char *words, const char *words2)
{
    nchecked++;
    int terminated = memchr(err, 0, NN_ERRLEN) != NULL;
    int ok = CHECK(s1 == NN_ERR_ARG || s1 == NN_ERR_SHAPE,
                   "%s: status %d (%s), want NN_ERR_ARG or NN_ERR_SHAPE", what,
                   (int)s1, nn_status_str(s1));
    ok &= CHECK(s2 == s1, "%s: status %d with err NULL, %d with a buffer", what,
                (int)s2, (int)s1);
    ok &= CHECK(terminated && err[0], "%s: no message written", what);
    if (terminated && err[0]) {
        ok &= CHECK(mentions(err, words), "%s: message \"%s\" names none of %s",
                    what, err, words);
        if (words2)
            ok &= CHECK(mentions(err, words2), "%s: message \"%s\" names none of %s",
                        what, err, words2);
    }
    if (ok)
        printf("  %-46s -> %-16s \"%s\"\n", what, nn_status_str(s1), err);
}

/* Runs `expr` (which uses ERR) with a message buffer, then with NULL. */
#define EXPECT_FAIL(what, words, words2, expr)                                  \
    do {                                                                        \
        char errbuf_[NN_ERRLEN];                                                \
        memset(errbuf_, 'Z', sizeof errbuf_);                                   \
        char *ERR = errbuf_;                                                    \
        nn_status s1_ = (expr);                                                 \
        ERR = NULL;                                                             \
        nn_status s2_ = (expr);                                                 \
        expect_fail((what), s1_, s2_, errbuf_, (words), (words2));              \
    } while (0)

static nn_real *bigbuf(void)
{
    nn_real *p = tu_alloc(BIG);
    tu_fill_const(p, BIG, UNTOUCHED);
    return p;
}

static int untouched(const nn_real *p)
{
    for (int i = 0; i < BIG; i++)
        if (p[i] != UNTOUCHED)
            return 0;
    return 1;
}

/* ---- conv2d: one table, run against every conv entry point --------------- */

typedef struct conv_case {
    const char *what, *words, *words2;
    int null_x, null_w, null_out, null_p, null_dw, nodata_x;
    int set_cp, stride, pad;
    int xs[4], ws[4], os[4], bs;  /* 0: the valid shape */
    int x2d;                      /* inp as a 2-d view */
    int cuda;                     /* 1 inp, 2 weight, 3 out/dout */
} conv_case;

enum { FWD_REF, FWD_GEMM, BWD_REF, BWD_GEMM, CONV_RELU_FWD, NFN };
static const char *const fn_name[NFN] = { "fwd_ref", "fwd_gemm", "bwd_ref", "bwd_gemm",
                                         "conv_relu_fwd" };

typedef struct conv_bufs {
    nn_real *x, *w, *b, *out, *dx, *dw, *db, *ws;
} conv_bufs;

static nn_status conv_call(const conv_case *c, int fn, conv_bufs *B, char *err)
{
    /* valid: x (2,3,5,5), w (4,3,3,3), b (4), out (2,4,5,5), stride 1 pad 1 */
    const int *xs = c->xs[0] ? c->xs : (const int[]){ 2, 3, 5, 5 };
    const int *ws = c->ws[0] ? c->ws : (const int[]){ 4, 3, 3, 3 };
    const int *os = c->os[0] ? c->os : (const int[]){ 2, 4, 5, 5 };
    nn_conv2d_params cp = { .stride = 1, .pad = 1 };
    if (c->set_cp)
        cp = (nn_conv2d_params){ .stride = c->stride, .pad = c->pad };
    nn_tensor x = c->x2d ? nn_tensor_2d(B->x, xs[0], xs[1] * xs[2] * xs[3])
                         : nn_tensor_4d(c->nodata_x ? NULL : B->x, xs[0], xs[1], xs[2], xs[3]);
    nn_tensor w = nn_tensor_4d(B->w, ws[0], ws[1], ws[2], ws[3]);
    nn_tensor b = nn_tensor_1d(B->b, c->bs ? c->bs : 4);
    nn_tensor out = nn_tensor_4d(B->out, os[0], os[1], os[2], os[3]);
    nn_tensor dx = nn_tensor_4d(B->dx, xs[0], xs[1], xs[2], xs[3]);
    nn_tensor dw = nn_tensor_4d(B->dw, ws[0], ws[1], ws[2], ws[3]);
    nn_tensor db = nn_tensor_1d(B->db, c->bs ? c->bs : 4);
    nn_tensor wsp = nn_tensor_1d(B->ws, BIG);
    if (c->cuda == 1) x.device = NN_DEVICE_CUDA;
    if (c->cuda == 2) w.device = NN_DEVICE_CUDA;
    if (c->cuda == 3) out.device = NN_DEVICE_CUDA;
    const nn_tensor *px = c->null_x ? NULL : &x;
    const nn_tensor *pw = c->null_w ? NULL : &w;
    nn_tensor *po = c->null_out ? NULL : &out;
    const nn_conv2d_params *pp = c->null_p ? NULL : &cp;
    switch (fn) {
    case FWD_REF: return nn_conv2d_forward_ref(po, px, pw, &b, pp, &wsp, err);
    case FWD_GEMM: return nn_conv2d_forward_gemm(po, px, pw, &b, pp, &wsp, err);
    case CONV_RELU_FWD: return nn_conv_relu_forward(po, px, pw, &b, pp, &wsp, err);
    case BWD_REF:
        return nn_conv2d_backward_ref(&dx, c->null_dw ? NULL : &dw, &db, po, px, pw, pp,
                                      &wsp, err);
    case BWD_GEMM:
        return nn_conv2d_backward_gemm(&dx, c->null_dw ? NULL : &dw, &db, po, px, pw, pp,
                                       &wsp, err);
    }
    return NN_OK;
}

static void test_conv_errors(void)
{
    static const conv_case cases[] = {
        { .what = "NULL inp", .words = "inp", .null_x = 1 },
        { .what = "inp with NULL data", .words = "inp", .nodata_x = 1 },
        { .what = "NULL weight", .words = "weight", .null_w = 1 },
        { .what = "NULL out/dout", .words = "out", .null_out = 1 },
        { .what = "NULL params", .words = "param", .null_p = 1 },
        { .what = "stride 0", .words = "stride", .set_cp = 1, .stride = 0, .pad = 1 },
        { .what = "stride -2", .words = "stride", .set_cp = 1, .stride = -2, .pad = 1 },
        { .what = "pad -1", .words = "pad", .set_cp = 1, .stride = 1, .pad = -1 },
        { .what = "kernel 8x8 > padded input 7x7", .words = "kernel|weight|filter|larger|exceed",
          .ws = { 4, 3, 8, 8 }, .os = { 2, 4, 1, 1 } },
        { .what = "weight has 2 channels, inp 3", .words = "channel|weight|inp",
          .ws = { 4, 2, 3, 3 } },
        { .what = "out spatial shape wrong", .words = "out", .os = { 2, 4, 5, 4 } },
        { .what = "out has K=5, weight K=4", .words = "out", .os = { 2, 5, 5, 5 } },
        { .what = "out has N=3, inp N=2", .words = "out", .os = { 3, 4, 5, 5 } },
        { .what = "bias of length 5 for K=4", .words = "bias", .bs = 5 },
        { .what = "inp is 2-d", .words = "inp", .x2d = 1 },
        { .what = "inp on NN_DEVICE_CUDA", .words = "inp", .words2 = "host|device|cuda|cpu",
          .cuda = 1 },
        { .what = "weight on NN_DEVICE_CUDA", .words = "weight",
          .words2 = "host|device|cuda|cpu", .cuda = 2 },
        { .what = "out/dout on NN_DEVICE_CUDA", .words = "out",
          .words2 = "host|device|cuda|cpu", .cuda = 3 },
    };
    conv_bufs B = { bigbuf(), bigbuf(), bigbuf(), bigbuf(), bigbuf(), bigbuf(), bigbuf(),
                    bigbuf() };
    printf("conv2d error paths\n");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (int fn = 0; fn < NFN; fn++) {
            char what[96];
            snprintf(what, sizeof what, "%s: %s", fn_name[fn], cases[i].what);
            EXPECT_FAIL(what, cases[i].words, cases[i].words2,
                        conv_call(&cases[i], fn, &B, ERR));
            if (fn == BWD_REF || fn == BWD_GEMM)
                CHECK(untouched(B.dx) && untouched(B.dw) && untouched(B.db),
                      "%s: wrote into a gradient before failing", what);
            else
                CHECK(untouched(B.out), "%s: wrote into out before failing", what);
        }
    /* backward with NULL dweight (only dinp is optional) */
    conv_case nodw = { .what = "NULL dweight", .words = "dweight|weight", .null_dw = 1 };
    EXPECT_FAIL("bwd_ref: NULL dweight", nodw.words, NULL, conv_call(&nodw, BWD_REF, &B, ERR));
    EXPECT_FAIL("bwd_gemm: NULL dweight", nodw.words, NULL, conv_call(&nodw, BWD_GEMM, &B, ERR));
    CHECK(untouched(B.dx) && untouched(B.db), "NULL dweight: wrote into a gradient");

    /* bad arguments admit no workspace */
    nn_tensor x = nn_tensor_4d(B.x, 2, 3, 5, 5), w = nn_tensor_4d(B.w, 4, 3, 3, 3);
    nn_tensor wbig = nn_tensor_4d(B.w, 4, 3, 8, 8);
    CHECK(nn_conv2d_workspace_size(&x, &w, &(nn_conv2d_params){ .stride = 0, .pad = 0 }) == 0,
          "workspace size for stride 0 is not 0");
    CHECK(nn_conv2d_workspace_size(&x, &wbig, &(nn_conv2d_params){ .stride = 1, .pad = 1 }) == 0,
          "workspace size for a kernel larger than the padded input is not 0");
    CHECK(nn_conv2d_workspace_size(NULL, &w, &(nn_conv2d_params){ .stride = 1, .pad = 1 }) == 0,
          "workspace size for NULL inp is not 0");

    /* a workspace that is too small is refused, not overrun */
    size_t need = nn_conv2d_workspace_size(&x, &w, &(nn_conv2d_params){ .stride = 1, .pad = 1 });
    if (need > 1) {
        nn_tensor out = nn_tensor_4d(B.out, 2, 4, 5, 5), b = nn_tensor_1d(B.b, 4);
        nn_tensor small = nn_tensor_1d(B.ws, (int)need - 1);
        nn_conv2d_params cp = { .stride = 1, .pad = 1 };
        EXPECT_FAIL("fwd_gemm: workspace one element short", "workspace", NULL,
                    nn_conv2d_forward_gemm(&out, &x, &w, &b, &cp, &small, ERR));
        EXPECT_FAIL("fwd_gemm: NULL workspace", "workspace", NULL,
                    nn_conv2d_forward_gemm(&out, &x, &w, &b, &cp, NULL, ERR));
        CHECK(untouched(B.out), "short workspace: wrote into out");
    }
    free(B.x); free(B.w); free(B.b); free(B.out); free(B.dx); free(B.dw); free(B.db);
    free(B.ws);
}

/* ---- max pooling ---------------------------------------------------------- */

typedef struct pool_case {
    const char *what, *words, *words2;
    int null_x, null_out, null_p;
    int set_pp, ph, pw, stride;
    int os[4], dxs[4];
    int cuda;
    int bwd_only;
} pool_case;

static nn_status pool_call(const pool_case *c, int fn, nn_real *x, nn_real *out,
                           nn_real *dx, char *err)
{
    /* valid: x (2,3,6,6), 2x2 stride 2, out (2,3,3,3) */
    nn_pool_params pp = { .pool_h = 2, .pool_w = 2, .stride = 2 };
    if (c->set_pp)
        pp = (nn_pool_params){ .pool_h = c->ph, .pool_w = c->pw, .stride = c->stride };
    const int *os = c->os[0] ? c->os : (const int[]){ 2, 3, 3, 3 };
    const int *dxs = c->dxs[0] ? c->dxs : (const int[]){ 2, 3, 6, 6 };
    nn_tensor tx = nn_tensor_4d(x, 2, 3, 6, 6);
    nn_tensor to = nn_tensor_4d(out, os[0], os[1], os[2], os[3]);
    nn_tensor tdx = nn_tensor_4d(dx, dxs[0], dxs[1], dxs[2], dxs[3]);
    if (c->cuda)
        tx.device = NN_DEVICE_CUDA;
    const nn_tensor *px = c->null_x ? NULL : &tx;
    nn_tensor *po = c->null_out ? NULL : &to;
    const nn_pool_params *pp_ = c->null_p ? NULL : &pp;
    switch (fn) {
    case 0: return nn_maxpool_forward_ref(po, px, pp_, err);
    case 1: return nn_maxpool_forward_fast(po, px, pp_, err);
    case 2: return nn_maxpool_backward_ref(&tdx, po, px, pp_, err);
    case 3: return nn_maxpool_backward_fast(&tdx, po, px, pp_, err);
    }
    return NN_OK;
}

static void test_pool_errors(void)
{
    static const pool_case cases[] = {
        { .what = "NULL inp", .words = "inp", .null_x = 1 },
        { .what = "NULL out/dout", .words = "out", .null_out = 1 },
        { .what = "NULL params", .words = "param", .null_p = 1 },
        { .what = "stride 0", .words = "stride", .set_pp = 1, .ph = 2, .pw = 2, .stride = 0 },
        { .what = "pool_h 0", .words = "pool|window|height|size", .set_pp = 1, .ph = 0,
          .pw = 2, .stride = 2 },
        { .what = "window 7x7 > input 6x6", .words = "pool|window|larger|exceed|inp",
          .set_pp = 1, .ph = 7, .pw = 7, .stride = 1, .os = { 2, 3, 1, 1 } },
        { .what = "window 2x9 > input width 6", .words = "pool|window|larger|exceed|inp",
          .set_pp = 1, .ph = 2, .pw = 9, .stride = 1, .os = { 2, 3, 5, 1 } },
        { .what = "out shape wrong", .words = "out", .os = { 2, 3, 3, 2 } },
        { .what = "out channels wrong", .words = "out", .os = { 2, 4, 3, 3 } },
        { .what = "inp on NN_DEVICE_CUDA", .words = "inp", .words2 = "host|device|cuda|cpu",
          .cuda = 1 },
        { .what = "dinp shape wrong", .words = "dinp", .dxs = { 2, 3, 6, 5 }, .bwd_only = 1 },
    };
    static const char *const names[4] = { "fwd_ref", "fwd_fast", "bwd_ref", "bwd_fast" };
    nn_real *x = bigbuf(), *out = bigbuf(), *dx = bigbuf();
    printf("maxpool error paths\n");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (int fn = cases[i].bwd_only ? 2 : 0; fn < 4; fn++) {
            char what[96];
            snprintf(what, sizeof what, "%s: %s", names[fn], cases[i].what);
            EXPECT_FAIL(what, cases[i].words, cases[i].words2,
                        pool_call(&cases[i], fn, x, out, dx, ERR));
            CHECK(fn >= 2 ? untouched(dx) : untouched(out),
                  "%s: wrote into its output before failing", what);
        }
    free(x); free(out); free(dx);
}

/* ---- linear, relu, softmax, sandwich ------------------------------------- */

static void test_other_errors(void)
{
    nn_real *a = bigbuf(), *w = bigbuf(), *b = bigbuf(), *o = bigbuf(), *d = bigbuf();
    nn_real *dw = bigbuf(), *db = bigbuf(), *act = bigbuf(), *ws = bigbuf();
    nn_tensor x = nn_tensor_2d(a, 4, 6), W = nn_tensor_2d(w, 6, 5), B = nn_tensor_1d(b, 5);
    nn_tensor out = nn_tensor_2d(o, 4, 5), dout = nn_tensor_2d(d, 4, 5);
    nn_tensor dW = nn_tensor_2d(dw, 6, 5), dB = nn_tensor_1d(db, 5);
    nn_tensor W7 = nn_tensor_2d(w, 7, 5), B4 = nn_tensor_1d(b, 4);
    nn_tensor out44 = nn_tensor_2d(o, 4, 4), out35 = nn_tensor_2d(o, 3, 5);
    nn_tensor dW64 = nn_tensor_2d(dw, 6, 4), dout44 = nn_tensor_2d(d, 4, 4);
    nn_tensor Wc = W;
    Wc.device = NN_DEVICE_CUDA;

    printf("linear / relu / softmax / sandwich error paths\n");
    EXPECT_FAIL("linear fwd: NULL inp", "inp", NULL, nn_linear_forward(&out, NULL, &W, &B, ERR));
    EXPECT_FAIL("linear fwd: NULL weight", "weight", NULL,
                nn_linear_forward(&out, &x, NULL, &B, ERR));
    EXPECT_FAIL("linear fwd: NULL out", "out", NULL, nn_linear_forward(NULL, &x, &W, &B, ERR));
    EXPECT_FAIL("linear fwd: weight (7,5) for D=6", "weight|inp", NULL,
                nn_linear_forward(&out, &x, &W7, &B, ERR));
    EXPECT_FAIL("linear fwd: bias of length 4 for M=5", "bias", NULL,
                nn_linear_forward(&out, &x, &W, &B4, ERR));
    EXPECT_FAIL("linear fwd: out (4,4) for M=5", "out", NULL,
                nn_linear_forward(&out44, &x, &W, &B, ERR));
    EXPECT_FAIL("linear fwd: out (3,5) for N=4", "out", NULL,
                nn_linear_forward(&out35, &x, &W, &B, ERR));
    EXPECT_FAIL("linear fwd: weight on NN_DEVICE_CUDA", "weight", "host|device|cuda|cpu",
                nn_linear_forward(&out, &x, &Wc, &B, ERR));
    CHECK(untouched(o), "linear forward wrote into out before failing");
    EXPECT_FAIL("linear bwd: dweight (6,4)", "dweight", NULL,
                nn_linear_backward(NULL, &dW64, &dB, &dout, &x, &W, ERR));
    EXPECT_FAIL("linear bwd: dout (4,4)", "dout", NULL,
                nn_linear_backward(NULL, &dW, &dB, &dout44, &x, &W, ERR));
    EXPECT_FAIL("linear bwd: NULL dout", "dout", NULL,
                nn_linear_backward(NULL, &dW, &dB, NULL, &x, &W, ERR));
    CHECK(untouched(dw) && untouched(db), "linear backward wrote a gradient before failing");

    nn_tensor r = nn_tensor_2d(a, 4, 4), r33 = nn_tensor_2d(o, 3, 3);
    EXPECT_FAIL("relu fwd: out (3,3) for inp (4,4)", "out", NULL,
                nn_relu_forward(&r33, &r, ERR));
    EXPECT_FAIL("relu fwd: NULL inp", "inp", NULL, nn_relu_forward(&r33, NULL, ERR));
    EXPECT_FAIL("relu bwd: dinp (3,3), dout (4,4)", "dinp|dout|shape", NULL,
                nn_relu_backward(&r33, &r, &r, ERR));
    CHECK(untouched(o), "relu wrote into out before failing");

    /* softmax: scores (5,10) */
    int labels[5] = { 0, 3, 9, 2, 7 };
    nn_tensor sc = nn_tensor_2d(a, 5, 10), ds = nn_tensor_2d(o, 5, 10);
    nn_tensor ds9 = nn_tensor_2d(o, 5, 9), sc1 = nn_tensor_1d(a, 50);
    double loss = UNTOUCHED;
    tu_fill_const(a, 50, 0.1);
    labels[2] = 10;
    EXPECT_FAIL("softmax: label 10 with 10 classes", "label", NULL,
                nn_softmax_loss(&loss, &ds, &sc, labels, ERR));
    labels[2] = -1;
    EXPECT_FAIL("softmax: label -1", "label", NULL, nn_softmax_loss(&loss, &ds, &sc, labels, ERR));
    labels[2] = 9;
    EXPECT_FAIL("softmax: NULL labels", "label", NULL, nn_softmax_loss(&loss, &ds, &sc, NULL, ERR));
    EXPECT_FAIL("softmax: NULL loss", "loss", NULL, nn_softmax_loss(NULL, &ds, &sc, labels, ERR));
    EXPECT_FAIL("softmax: dscores (5,9)", "dscores", NULL,
                nn_softmax_loss(&loss, &ds9, &sc, labels, ERR));
    EXPECT_FAIL("softmax: scores 1-d", "scores", NULL,
                nn_softmax_loss(&loss, &ds, &sc1, labels, ERR));
    CHECK(loss == UNTOUCHED && untouched(o), "softmax wrote loss/dscores before failing");

    /* sandwich layers: x (1,2,6,6), w (3,2,3,3), act (1,3,6,6), out (1,3,3,3) */
    nn_tensor sx = nn_tensor_4d(a, 1, 2, 6, 6), sw = nn_tensor_4d(w, 3, 2, 3, 3);
    nn_tensor sb = nn_tensor_1d(b, 3), sws = nn_tensor_1d(ws, BIG);
    nn_tensor sact = nn_tensor_4d(act, 1, 3, 6, 6), sact5 = nn_tensor_4d(act, 1, 3, 5, 6);
    nn_tensor sout = nn_tensor_4d(o, 1, 3, 3, 3), sdout = nn_tensor_4d(d, 1, 3, 3, 3);
    nn_tensor sdx = nn_tensor_4d(dw, 1, 2, 6, 6), sdw = nn_tensor_4d(db, 3, 2, 3, 3);
    nn_tensor sdb = nn_tensor_1d(b + 100, 3);
    nn_conv2d_params cp = { .stride = 1, .pad = 1 }, cp0 = { .stride = 0, .pad = 1 };
    nn_pool_params pp = { .pool_h = 2, .pool_w = 2, .stride = 2 };
    nn_pool_params pp9 = { .pool_h = 9, .pool_w = 9, .stride = 2 };
    EXPECT_FAIL("conv_relu_pool fwd: act (1,3,5,6)", "act", NULL,
                nn_conv_relu_pool_forward(&sout, &sact5, &sx, &sw, &sb, &cp, &pp, &sws, ERR));
    EXPECT_FAIL("conv_relu_pool fwd: stride 0", "stride", NULL,
                nn_conv_relu_pool_forward(&sout, &sact, &sx, &sw, &sb, &cp0, &pp, &sws, ERR));
    EXPECT_FAIL("conv_relu_pool fwd: pool 9x9 > act 6x6", "pool|window|larger|exceed|act|inp",
                NULL,
                nn_conv_relu_pool_forward(&sout, &sact, &sx, &sw, &sb, &cp, &pp9, &sws, ERR));
    CHECK(untouched(o) && untouched(act), "conv_relu_pool forward wrote before failing");
    EXPECT_FAIL("conv_relu_pool bwd: dact (1,3,5,6)", "dact", NULL,
                nn_conv_relu_pool_backward(&sdx, &sdw, &sdb, &sdout, &sx, &sw, &sact, &cp,
                                           &pp, &sact5, &sws, ERR));
    EXPECT_FAIL("conv_relu bwd: stride 0", "stride", NULL,
                nn_conv_relu_backward(&sdx, &sdw, &sdb, &sact, &sx, &sw, &sact, &cp0,
                                      &sact, &sws, ERR));
    CHECK(untouched(dw) && untouched(db), "sandwich backward wrote a gradient before failing");
    nn_tensor lr_dact = nn_tensor_2d(act, 4, 4);
    EXPECT_FAIL("linear_relu bwd: dact (4,4) for out (4,5)", "dact", NULL,
                nn_linear_relu_backward(NULL, &dW, &dB, &dout, &x, &W, &out, &lr_dact, ERR));
    EXPECT_FAIL("linear_relu fwd: bias of length 4", "bias", NULL,
                nn_linear_relu_forward(&out, &x, &W, &B4, ERR));
    free(a); free(w); free(b); free(o); free(d); free(dw); free(db); free(act); free(ws);
}

/* ---- backend, status, blas ----------------------------------------------- */

static void test_backend(void)
{
    char err[NN_ERRLEN] = "";
    nn_backend *be = NULL;
    printf("backend\n");
    nn_backend_free(NULL);
    for (int s = NN_OK; s <= NN_ERR_UNSUPPORTED; s++) {
        const char *str = nn_status_str((nn_status)s);
        CHECK(str && str[0], "nn_status_str(%d) is empty", s);
        for (int t = NN_OK; t < s; t++)
            CHECK(strcmp(str, nn_status_str((nn_status)t)) != 0,
                  "nn_status_str(%d) == nn_status_str(%d)", s, t);
    }
    const char *info = nn_blas_info();
    CHECK(info && info[0], "nn_blas_info() is empty");
    printf("  blas: %s\n", info ? info : "(null)");

    nn_status st = nn_cpu_backend_create(0, &be, err);
    if (!CHECK(st == NN_OK && be, "nn_cpu_backend_create: %s (%s)", nn_status_str(st), err))
        return;
    printf("  backend \"%s\"\n", nn_backend_name(be));
    CHECK(nn_backend_name(be) && nn_backend_name(be)[0], "backend name empty");
    CHECK(nn_backend_device(be) == NN_DEVICE_CPU, "cpu backend device is not NN_DEVICE_CPU");
    CHECK(nn_backend_supports(be, NN_OP_CONV2D_FWD), "cpu backend lacks NN_OP_CONV2D_FWD");
    static const nn_op ops[] = { NN_OP_CONV2D_BWD, NN_OP_MAXPOOL_FWD, NN_OP_MAXPOOL_BWD,
                                 NN_OP_RELU_FWD, NN_OP_RELU_BWD, NN_OP_LINEAR_FWD,
                                 NN_OP_LINEAR_BWD, NN_OP_SOFTMAX_LOSS };
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
        CHECK(nn_backend_supports(be, ops[i]), "cpu backend lacks op %d", (int)ops[i]);

    /* dispatch: x (2,3,6,5), w (4,3,3,2), stride 2 pad 1, equals the gemm kernel */
    tu_rng rng;
    tu_rng_seed(&rng, 99);
    nn_real x[180], w[72], b[4], o1[2 * 4 * 3 * 3], o2[2 * 4 * 3 * 3];
    tu_fill_gauss(&rng, x, 180, 0, 1);
    tu_fill_gauss(&rng, w, 72, 0, 1);
    tu_fill_gauss(&rng, b, 4, 0, 1);
    nn_tensor tx = nn_tensor_4d(x, 2, 3, 6, 5), tw = nn_tensor_4d(w, 4, 3, 3, 2);
    nn_tensor tb = nn_tensor_1d(b, 4);
    nn_tensor t1 = nn_tensor_4d(o1, 2, 4, 3, 3), t2 = nn_tensor_4d(o2, 2, 4, 3, 3);
    nn_conv2d_params cp = { .stride = 2, .pad = 1 };
    size_t nws = nn_conv2d_workspace_size(&tx, &tw, &cp);
    nn_real *ws = tu_alloc(nws);
    nn_tensor tws = nn_tensor_1d(ws, (int)nws);
    nn_tensor *pws = nws ? &tws : NULL;
    tu_fill_const(o1, 72, 1e30);
    tu_fill_const(o2, 72, -1e30);
    st = nn_backend_conv2d_forward(be, &t1, &tx, &tw, &tb, &cp, pws);
    nn_status st2 = nn_conv2d_forward_gemm(&t2, &tx, &tw, &tb, &cp, pws, err);
    if (CHECK(st == NN_OK && st2 == NN_OK, "dispatch %d (%s), gemm %d (%s)", (int)st,
              nn_backend_errmsg(be), (int)st2, err))
        CHECK_LE("backend conv2d_forward vs _gemm (max abs diff)",
                 tu_max_abs_diff(o1, o2, 72), 1e-12);

    /* a failing dispatch leaves its message on the backend */
    nn_conv2d_params bad = { .stride = 0, .pad = 1 };
    st = nn_backend_conv2d_forward(be, &t1, &tx, &tw, &tb, &bad, pws);
    const char *msg = nn_backend_errmsg(be);
    CHECK(st == NN_ERR_ARG || st == NN_ERR_SHAPE, "dispatch with stride 0: status %d", (int)st);
    CHECK(msg && mentions(msg, "stride"), "nn_backend_errmsg after stride 0: \"%s\"",
          msg ? msg : "(null)");
    free(ws);
    nn_backend_free(be);
}

int main(void)
{
    test_conv_errors();
    test_pool_errors();
    test_other_errors();
    test_backend();
    printf("%d error cases checked\n", nchecked);
    return tu_finish("test_errors");
}
