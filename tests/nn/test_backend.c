/* test_backend.c: the threaded CPU backend against the plain kernels, in
 * double: every op it splits (conv and pool by images, linear by output
 * columns, element-wise ops by ranges, conv weight gradients through
 * per-thread partials, batch norm by channels) must give the kernels'
 * results to 1e-12 for thread
 * counts 1, 2 and 3 (3 splits a batch of 7 unevenly), on shapes above the
 * size under which the backend stays on one thread. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "nn/backend.h"
#include "testutil.h"

static nn_tensor *mk(tu_rng *r, int ndim, const int *shape)
{
    nn_tensor *t = nn_tensor_create(ndim, shape);
    tu_fill_gauss(r, t->data, t->size, 0, 1);
    return t;
}

static nn_tensor *dup(const nn_tensor *a)
{
    nn_tensor *t = nn_tensor_create(a->ndim, a->shape);
    memcpy(t->data, a->data, a->size * sizeof(nn_real));
    return t;
}

static void same(const char *what, int T, const nn_tensor *a, const nn_tensor *b)
{
    double d = tu_max_abs_diff(a->data, b->data, a->size);
    CHECK(d <= 1e-12, "%s with %d threads: max abs diff %g", what, T, d);
}

static void run(int T)
{
    nn_backend *b;
    char err[NN_ERRLEN];
    if (!CHECK(nn_cpu_backend_create(T, &b, err) == NN_OK, "backend: %s", err))
        return;
    tu_rng r;
    tu_rng_seed(&r, 99);
    /* conv: (7,3,48,40) * (4,3,3,3), stride 2, pad 1: shapes big enough that
     * the backend splits them (it runs small ops on one thread) */
    nn_conv2d_params cp = { .stride = 2, .pad = 1 };
    nn_tensor *x = mk(&r, 4, (int[]){ 7, 3, 48, 40 }), *w = mk(&r, 4, (int[]){ 4, 3, 3, 3 });
    nn_tensor *bias = mk(&r, 1, (int[]){ 4 });
    int P = nn_conv2d_out_dim(48, 3, 2, 1), Q = nn_conv2d_out_dim(40, 3, 2, 1);
    nn_tensor *y1 = nn_tensor_create(4, (int[]){ 7, 4, P, Q }), *y2 = dup(y1);
    nn_tensor *dy = mk(&r, 4, (int[]){ 7, 4, P, Q });
    size_t wsn = nn_conv2d_workspace_size(x, w, &cp);
    nn_tensor *ws = nn_tensor_create(1, (int[]){ (int)wsn });
    CHECK(nn_conv2d_forward_gemm(y1, x, w, bias, &cp, ws, err) == NN_OK, "%s", err);
    CHECK(nn_backend_conv2d_forward(b, y2, x, w, bias, &cp, ws) == NN_OK, "%s",
          nn_backend_errmsg(b));
    same("conv forward", T, y1, y2);
    /* backward accumulates onto non-zero gradients */
    nn_tensor *dx1 = mk(&r, 4, x->shape), *dw1 = mk(&r, 4, w->shape), *db1 = mk(&r, 1, bias->shape);
    nn_tensor *dx2 = dup(dx1), *dw2 = dup(dw1), *db2 = dup(db1);
    CHECK(nn_conv2d_backward_gemm(dx1, dw1, db1, dy, x, w, &cp, ws, err) == NN_OK, "%s", err);
    CHECK(nn_backend_conv2d_backward(b, dx2, dw2, db2, dy, x, w, &cp, ws) == NN_OK, "%s",
          nn_backend_errmsg(b));
    same("conv backward dx", T, dx1, dx2);
    same("conv backward dw", T, dw1, dw2);
    same("conv backward db", T, db1, db2);
    /* A batch that disagrees between tensors is refused before the backend
     * splits it across threads (it used to index past the short one). */
    {
        nn_tensor *ys = nn_tensor_create(4, (int[]){ 2, 4, P, Q });
        nn_tensor *dxs = nn_tensor_create(4, (int[]){ 2, 3, 48, 40 });
        CHECK(nn_backend_conv2d_forward(b, ys, x, w, bias, &cp, ws) == NN_ERR_SHAPE,
              "conv forward with output batch 2 for input batch 7 not refused");
        CHECK(nn_backend_conv2d_backward(b, dx2, dw2, db2, ys, x, w, &cp, ws) == NN_ERR_SHAPE,
              "conv backward with dout batch 2 for input batch 7 not refused");
        CHECK(nn_backend_conv2d_backward(b, dxs, dw2, db2, dy, x, w, &cp, ws) == NN_ERR_SHAPE,
              "conv backward with dinp batch 2 for input batch 7 not refused");
        nn_tensor_free(ys);
        nn_tensor_free(dxs);
    }

    /* pool 2x2/2 and 3x3/2 */
    for (int k = 2; k <= 3; k++) {
        nn_pool_params pp = { .pool_h = k, .pool_w = k, .stride = 2 };
        int PP = 1 + (48 - k) / 2, QQ = 1 + (40 - k) / 2;
        nn_tensor *o1 = nn_tensor_create(4, (int[]){ 7, 3, PP, QQ }), *o2 = dup(o1);
        nn_tensor *g = mk(&r, 4, o1->shape), *d1 = mk(&r, 4, x->shape), *d2 = dup(d1);
        CHECK(nn_maxpool_forward_fast(o1, x, &pp, err) == NN_OK, "%s", err);
        CHECK(nn_backend_maxpool_forward(b, o2, x, &pp) == NN_OK, "pool");
        same("maxpool forward", T, o1, o2);
        CHECK(nn_maxpool_backward_fast(d1, g, x, &pp, err) == NN_OK, "%s", err);
        CHECK(nn_backend_maxpool_backward(b, d2, g, x, &pp) == NN_OK, "pool bwd");
        same("maxpool backward", T, d1, d2);
        nn_tensor_free(o1); nn_tensor_free(o2); nn_tensor_free(g);
        nn_tensor_free(d1); nn_tensor_free(d2);
    }

    /* relu over 40001 elements (not a multiple of the 16-element split) */
    nn_tensor *a = mk(&r, 1, (int[]){ 40001 }), *ra1 = nn_tensor_create(1, a->shape), *ra2 = dup(ra1);
    nn_tensor *ga = mk(&r, 1, a->shape), *da1 = mk(&r, 1, a->shape), *da2 = dup(da1);
    nn_relu_forward(ra1, a, NULL);
    CHECK(nn_backend_relu_forward(b, ra2, a) == NN_OK, "relu");
    same("relu forward", T, ra1, ra2);
    nn_relu_backward(da1, ga, ra1, NULL);
    CHECK(nn_backend_relu_backward(b, da2, ga, ra1) == NN_OK, "relu bwd");
    same("relu backward", T, da1, da2);

    /* linear (120,301) x (301,31) */
    nn_tensor *li = mk(&r, 2, (int[]){ 120, 301 }), *lw = mk(&r, 2, (int[]){ 301, 31 });
    nn_tensor *lb = mk(&r, 1, (int[]){ 31 }), *lo1 = nn_tensor_create(2, (int[]){ 120, 31 }), *lo2 = dup(lo1);
    nn_tensor *lg = mk(&r, 2, lo1->shape);
    nn_tensor *ldx1 = mk(&r, 2, li->shape), *ldw1 = mk(&r, 2, lw->shape), *ldb1 = mk(&r, 1, lb->shape);
    nn_tensor *ldx2 = dup(ldx1), *ldw2 = dup(ldw1), *ldb2 = dup(ldb1);
    nn_linear_forward(lo1, li, lw, lb, NULL);
    CHECK(nn_backend_linear_forward(b, lo2, li, lw, lb) == NN_OK, "linear");
    same("linear forward", T, lo1, lo2);
    nn_linear_backward(ldx1, ldw1, ldb1, lg, li, lw, NULL);
    CHECK(nn_backend_linear_backward(b, ldx2, ldw2, ldb2, lg, li, lw) == NN_OK, "linear bwd");
    same("linear dx", T, ldx1, ldx2);
    same("linear dw", T, ldw1, ldw2);
    same("linear db", T, ldb1, ldb2);

    /* adam, l2 and zero over 50000 elements */
    nn_tensor *p1 = mk(&r, 1, (int[]){ 50000 }), *p2 = dup(p1), *g = mk(&r, 1, p1->shape);
    nn_tensor *s1 = nn_tensor_create(1, (int[]){ 100000 }), *s2 = dup(s1);
    nn_optim_params op = nn_optim_defaults(NN_ADAM);
    for (int t = 1; t <= 3; t++) {
        nn_optim_step(p1, s1, g, &op, t, NULL);
        CHECK(nn_backend_optim_step(b, p2, s2, g, &op, t) == NN_OK, "adam");
    }
    same("adam params", T, p1, p2);
    same("adam state", T, s1, s2);
    nn_tensor *g1 = dup(g), *g2 = dup(g);
    double ss1 = 0, ss2 = 0;
    nn_l2_reg(&ss1, g1, p1, 0.3, NULL);
    CHECK(nn_backend_l2_reg(b, &ss2, g2, p1, 0.3) == NN_OK, "l2");
    same("l2 grad", T, g1, g2);
    CHECK(fabs(ss1 - ss2) <= 1e-9 * ss1, "l2 sum %.15g vs %.15g", ss1, ss2);
    CHECK(nn_backend_zero(b, g2) == NN_OK && tu_max_abs(g2->data, g2->size) == 0, "zero");

    /* batch norm, spatial (7,3,48,40) and 1-d (120,301): training forward,
     * backward, then inference with the running statistics */
    for (int spatial = 0; spatial <= 1; spatial++) {
        const nn_tensor *in = spatial ? x : li;
        const int C = in->shape[1];
        nn_tensor *gm = mk(&r, 1, (int[]){ C }), *bt = mk(&r, 1, (int[]){ C });
        nn_tensor *o1 = nn_tensor_create(in->ndim, in->shape), *o2 = dup(o1);
        nn_tensor *sm1 = nn_tensor_create(1, (int[]){ C }), *si1 = dup(sm1), *sm2 = dup(sm1), *si2 = dup(sm1);
        nn_tensor *rm1 = mk(&r, 1, (int[]){ C }), *rv1 = nn_tensor_create(1, (int[]){ C });
        for (int i = 0; i < C; i++)
            rv1->data[i] = 1 + 0.1 * i;
        nn_tensor *rm2 = dup(rm1), *rv2 = dup(rv1);
        nn_batchnorm_params bp = { .eps = 1e-5, .momentum = 0.9, .training = 1 };
        nn_batchnorm_forward(o1, sm1, si1, rm1, rv1, in, gm, bt, &bp, NULL);
        CHECK(nn_backend_batchnorm_forward(b, o2, sm2, si2, rm2, rv2, in, gm, bt, &bp) == NN_OK,
              "bn: %s", nn_backend_errmsg(b));
        same("batchnorm forward", T, o1, o2);
        same("batchnorm running mean", T, rm1, rm2);
        same("batchnorm running var", T, rv1, rv2);
        nn_tensor *bg = mk(&r, in->ndim, in->shape), *bdx1 = mk(&r, in->ndim, in->shape), *bdx2 = dup(bdx1);
        nn_tensor *dg1 = mk(&r, 1, (int[]){ C }), *dg2 = dup(dg1), *bdb1 = mk(&r, 1, (int[]){ C }), *bdb2 = dup(bdb1);
        nn_batchnorm_backward(bdx1, dg1, bdb1, bg, in, gm, sm1, si1, NULL);
        CHECK(nn_backend_batchnorm_backward(b, bdx2, dg2, bdb2, bg, in, gm, sm2, si2) == NN_OK,
              "bn bwd: %s", nn_backend_errmsg(b));
        same("batchnorm dx", T, bdx1, bdx2);
        same("batchnorm dgamma", T, dg1, dg2);
        same("batchnorm dbeta", T, bdb1, bdb2);
        bp.training = 0;
        nn_batchnorm_forward(o1, NULL, NULL, rm1, rv1, in, gm, bt, &bp, NULL);
        CHECK(nn_backend_batchnorm_forward(b, o2, NULL, NULL, rm2, rv2, in, gm, bt, &bp) == NN_OK,
              "bn test mode: %s", nn_backend_errmsg(b));
        same("batchnorm inference", T, o1, o2);
        nn_tensor *bn_all[] = { gm, bt, o1, o2, sm1, si1, sm2, si2, rm1, rv1, rm2, rv2, bg, bdx1,
                                bdx2, dg1, dg2, bdb1, bdb2 };
        for (size_t i = 0; i < sizeof bn_all / sizeof bn_all[0]; i++)
            nn_tensor_free(bn_all[i]);
    }

    nn_tensor *all[] = { x, w, bias, y1, y2, dy, ws, dx1, dw1, db1, dx2, dw2, db2, a, ra1, ra2,
                         ga, da1, da2, li, lw, lb, lo1, lo2, lg, ldx1, ldw1, ldb1, ldx2, ldw2,
                         ldb2, p1, p2, g, s1, s2, g1, g2 };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        nn_tensor_free(all[i]);
    nn_backend_free(b);
}

int main(void)
{
    for (int T = 1; T <= 3; T++)
        run(T);
    return tu_finish("nn_backend");
}
