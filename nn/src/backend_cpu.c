/* backend_cpu.c: the CPU backend: host memory, the fast kernels of
 * layers.h, GEMM through the BLAS (blas.h), and its own threads.
 *
 * Threading: the backend owns a fork-join pool of `threads` threads and
 * keeps the BLAS single-threaded, so one scheme schedules both cores and
 * two thread systems never fight over them. Each op splits its work into
 * disjoint parts: images of a batch (conv, pool), output columns (linear
 * GEMMs: each thread packs only its slice of the weights), or element
 * ranges (ReLU, update rules, L2, zeroing). Where threads would add into
 * the same gradient (conv dweight/dbias), each has a private partial that
 * is summed in thread order afterwards, so results depend on the thread
 * count but are reproducible for a given one. The kernels stay pure; the
 * splitting lives here. */
#include <stdlib.h>
#include <string.h>
#include "nn/backend_impl.h"
#include "nn/blas.h"
#include "nn/optim.h"
#include "internal.h"
#include "threadpool.h"

typedef struct cpu_ctx {
    nn_threadpool *pool;
    int threads;
    nn_real *scratch;       /* per-thread workspaces and partial gradients */
    size_t scratch_size;    /* elements */
} cpu_ctx;

/* Scratch of at least n elements, grown (once per larger need) and kept:
 * the first step of a model allocates, later ones do not. */
static nn_real *scratch(cpu_ctx *c, size_t n, char *err)
{
    if (n <= c->scratch_size)
        return c->scratch;
    size_t bytes = (n * sizeof(nn_real) + 63) & ~(size_t)63;
    nn_real *p = aligned_alloc(64, bytes);
    if (!p) {
        nn_fail(err, NN_ERR_NOMEM, "out of memory for %zu bytes of CPU scratch", bytes);
        return NULL;
    }
    free(c->scratch);
    c->scratch = p;
    c->scratch_size = n;
    return p;
}

/* ---- memory ------------------------------------------------------------- */

static nn_status cpu_alloc(void *ctx, nn_tensor *t, char *err)
{
    (void)ctx;
    size_t n = 1;
    for (int i = 0; i < t->ndim; i++) {
        if (t->shape[i] < 1)
            return nn_fail(err, NN_ERR_SHAPE, "cannot allocate a tensor with dim %d = %d",
                           i, t->shape[i]);
        n *= (size_t)t->shape[i];
    }
    size_t bytes = (n * sizeof(nn_real) + 63) & ~(size_t)63;
    nn_real *p = aligned_alloc(64, bytes);
    if (!p)
        return nn_fail(err, NN_ERR_NOMEM, "out of memory allocating %zu bytes", bytes);
    memset(p, 0, bytes);
    t->data = p;
    t->size = n;
    t->device = NN_DEVICE_CPU;
    return NN_OK;
}

static void cpu_release(void *ctx, nn_tensor *t)
{
    (void)ctx;
    free(t->data);
    t->data = NULL;
}

static nn_status cpu_copy(void *ctx, nn_tensor *dst, const nn_tensor *src, char *err)
{
    (void)ctx;
    (void)err;
    memmove(dst->data, src->data, src->size * sizeof(nn_real));
    return NN_OK;
}

static void cpu_free_ctx(void *ctx)
{
    cpu_ctx *c = ctx;
    if (!c)
        return;
    nn_threadpool_free(c->pool);
    free(c->scratch);
    free(c);
}

/* ---- splitting helpers -------------------------------------------------- */

/* A view of images [lo, hi) of a (N,...) tensor. */
static nn_tensor rows(const nn_tensor *t, int lo, int hi)
{
    nn_tensor v = *t;
    size_t per = t->size / (size_t)t->shape[0];
    v.data = t->data + per * (size_t)lo;
    v.shape[0] = hi - lo;
    v.size = per * (size_t)(hi - lo);
    return v;
}

/* A 1-d view of elements [lo, hi) of any tensor. */
static nn_tensor range(const nn_tensor *t, size_t lo, size_t hi)
{
    nn_tensor v = *t;
    v.data = t->data + lo;
    v.ndim = 1;
    v.shape[0] = (int)(hi - lo);
    v.size = hi - lo;
    return v;
}

static void srange(size_t n, int tid, int T, size_t *lo, size_t *hi)
{
    /* Split at multiples of 16 elements (a cache line of floats). */
    size_t blocks = (n + 15) / 16, q = blocks / (size_t)T, r = blocks % (size_t)T;
    size_t b0 = (size_t)tid * q + ((size_t)tid < r ? (size_t)tid : r);
    size_t b1 = b0 + q + ((size_t)tid < r);
    *lo = b0 * 16 < n ? b0 * 16 : n;
    *hi = b1 * 16 < n ? b1 * 16 : n;
}

/* Every task records its status per thread; the op returns the first
 * failure. Shapes were validated before splitting, so failures here are
 * the same on every thread. */
#define MAX_THREADS 64

typedef struct task {
    cpu_ctx *c;
    nn_status st[MAX_THREADS];
    char err[NN_ERRLEN];
    nn_tensor *out, *dinp, *dweight, *dbias, *ws;
    const nn_tensor *inp, *weight, *bias, *dout, *aux;
    const void *params;
    nn_real *partials;       /* per thread (threads 1..) dweight | dbias */
    size_t wsize;            /* per-thread workspace elements */
    int N, D, M;
    double sum[MAX_THREADS];
    const nn_optim_params *op;
    long t;
    double reg, p;
    uint64_t seed;
} task;

static nn_status finish(task *k, int T, char *err)
{
    for (int i = 0; i < T; i++)
        if (k->st[i] != NN_OK)
            return nn_fail(err, k->st[i], "%s", k->err);
    return NN_OK;
}

static void init_task(task *k, cpu_ctx *c)
{
    memset(k, 0, sizeof *k);
    k->c = c;
}

static int T_of(const cpu_ctx *c) { return c->threads; }

/* Runs a task on the pool, or on the calling thread alone when the work is
 * small: waking a worker costs microseconds on a quiet machine and a whole
 * time slice when another process holds the other core, which made tiny
 * ops (a 500-wide ReLU) 300x slower under load. work counts elements
 * touched, or multiply-adds / 8 for GEMM-shaped ops. Returns the number of
 * threads that ran the task. */
#define SMALL_WORK (1 << 15)

static int run(cpu_ctx *c, nn_task_fn fn, void *k, double work)
{
    if (work < SMALL_WORK || c->threads == 1) {
        fn(k, 0, 1);
        return 1;
    }
    nn_threadpool_run(c->pool, fn, k);
    return c->threads;
}

/* ---- convolution: split the batch --------------------------------------- */

static void conv_fwd_task(void *arg, int tid, int T)
{
    task *k = arg;
    int lo, hi;
    nn_chunk(k->inp->shape[0], tid, T, &lo, &hi);
    if (lo == hi)
        return;
    nn_tensor x = rows(k->inp, lo, hi), y = rows(k->out, lo, hi);
    nn_tensor ws = nn_tensor_1d(k->c->scratch + (size_t)tid * k->wsize, (int)k->wsize);
    k->st[tid] = nn_conv2d_forward_gemm(&y, &x, k->weight, k->bias, k->params, &ws,
                                        tid == 0 ? k->err : NULL);
}

static nn_status cpu_conv2d_fwd(void *ctx, nn_tensor *out, const nn_tensor *inp,
                                const nn_tensor *w, const nn_tensor *bias,
                                const nn_conv2d_params *p, nn_tensor *ws, char *err)
{
    cpu_ctx *c = ctx;
    (void)ws; /* per-thread workspaces come from the scratch */
    nn_conv2d_geom g; /* whole-batch shapes first: the split trusts them */
    NN_TRY(nn_conv2d_geometry(&g, out, inp, w, p, NN_DEVICE_CPU, "conv2d output", err));
    size_t wsize = nn_conv2d_workspace_size(inp, w, p);
    wsize = (wsize + 15) & ~(size_t)15;
    if (!scratch(c, wsize * (size_t)T_of(c), err))
        return NN_ERR_NOMEM;
    task k;
    init_task(&k, c);
    k.out = out;
    k.inp = inp;
    k.weight = w;
    k.bias = bias;
    k.params = p;
    k.wsize = wsize;
    run(c, conv_fwd_task, &k, (double)out->size * (double)(w->size / (size_t)w->shape[0]) / 8);
    return finish(&k, T_of(c), err);
}

static void conv_bwd_task(void *arg, int tid, int T)
{
    task *k = arg;
    int lo, hi;
    nn_chunk(k->inp->shape[0], tid, T, &lo, &hi);
    if (lo == hi)
        return;
    nn_tensor x = rows(k->inp, lo, hi), dy = rows(k->dout, lo, hi), dx;
    if (k->dinp)
        dx = rows(k->dinp, lo, hi);
    nn_tensor ws = nn_tensor_1d(k->c->scratch + (size_t)tid * k->wsize, (int)k->wsize);
    nn_tensor dw = *k->dweight, db;
    if (k->dbias)
        db = *k->dbias;
    if (tid > 0) { /* private partials, zeroed, summed by the caller */
        size_t pw = k->dweight->size + (k->dbias ? k->dbias->size : 0);
        dw.data = k->partials + (size_t)(tid - 1) * pw;
        db.data = dw.data + k->dweight->size;
        memset(dw.data, 0, pw * sizeof(nn_real));
    }
    k->st[tid] = nn_conv2d_backward_gemm(k->dinp ? &dx : NULL, &dw, k->dbias ? &db : NULL,
                                         &dy, &x, k->weight, k->params, &ws,
                                         tid == 0 ? k->err : NULL);
}

static nn_status cpu_conv2d_bwd(void *ctx, nn_tensor *dinp, nn_tensor *dw, nn_tensor *db,
                                const nn_tensor *dout, const nn_tensor *inp,
                                const nn_tensor *w, const nn_conv2d_params *p,
                                nn_tensor *ws, char *err)
{
    cpu_ctx *c = ctx;
    (void)ws;
    nn_conv2d_geom g;
    NN_TRY(nn_conv2d_geometry(&g, dout, inp, w, p, NN_DEVICE_CPU, "conv2d dout", err));
    if (dinp)
        NN_TRY(nn_tensor_check(dinp, "conv2d dinp", 4, (int[]){ g.N, g.C, g.H, g.W }, err));
    size_t wsize = nn_conv2d_workspace_size(inp, w, p);
    if (!dw || !dw->data || (db && !db->data)) /* let the kernel say what is wrong */
        return nn_conv2d_backward_gemm(dinp, dw, db, dout, inp, w, p, NULL, err);
    const int T = T_of(c);
    wsize = (wsize + 15) & ~(size_t)15;
    size_t pw = dw->size + (db ? db->size : 0);
    nn_real *s = scratch(c, wsize * (size_t)T + pw * (size_t)(T - 1), err);
    if (!s)
        return NN_ERR_NOMEM;
    task k;
    init_task(&k, c);
    k.dinp = dinp;
    k.dweight = dw;
    k.dbias = db;
    k.dout = dout;
    k.inp = inp;
    k.weight = w;
    k.params = p;
    k.wsize = wsize;
    k.partials = s + wsize * (size_t)T;
    const int ran = run(c, conv_bwd_task, &k,
                        (double)dout->size * (double)(w->size / (size_t)w->shape[0]) / 4);
    NN_TRY(finish(&k, T, err));
    for (int t = 1; t < ran; t++) {
        int lo, hi;
        nn_chunk(inp->shape[0], t, ran, &lo, &hi);
        if (lo == hi)
            continue;
        const nn_real *part = k.partials + (size_t)(t - 1) * pw;
        for (size_t i = 0; i < dw->size; i++)
            dw->data[i] += part[i];
        for (size_t i = 0; db && i < db->size; i++)
            db->data[i] += part[dw->size + i];
    }
    return NN_OK;
}

/* ---- pooling: split the batch ------------------------------------------- */

static void pool_fwd_task(void *arg, int tid, int T)
{
    task *k = arg;
    int lo, hi;
    nn_chunk(k->inp->shape[0], tid, T, &lo, &hi);
    if (lo == hi)
        return;
    nn_tensor x = rows(k->inp, lo, hi), y = rows(k->out, lo, hi);
    k->st[tid] = nn_maxpool_forward_fast(&y, &x, k->params, tid == 0 ? k->err : NULL);
}

static nn_status cpu_maxpool_fwd(void *ctx, nn_tensor *out, const nn_tensor *inp,
                                 const nn_pool_params *p, char *err)
{
    cpu_ctx *c = ctx;
    /* Validate on the whole tensors first (cheap), so a bad call fails
     * before any thread writes. */
    if (!out || !inp || inp->ndim != 4 || out->ndim != 4 || out->shape[0] != inp->shape[0] ||
        inp->shape[0] < 1)
        return nn_maxpool_forward_fast(out, inp, p, err);
    task k;
    init_task(&k, c);
    k.out = out;
    k.inp = inp;
    k.params = p;
    run(c, pool_fwd_task, &k, (double)inp->size);
    return finish(&k, T_of(c), err);
}

static void pool_bwd_task(void *arg, int tid, int T)
{
    task *k = arg;
    int lo, hi;
    nn_chunk(k->inp->shape[0], tid, T, &lo, &hi);
    if (lo == hi)
        return;
    nn_tensor x = rows(k->inp, lo, hi), dy = rows(k->dout, lo, hi), dx = rows(k->dinp, lo, hi);
    k->st[tid] = nn_maxpool_backward_fast(&dx, &dy, &x, k->params, tid == 0 ? k->err : NULL);
}

static nn_status cpu_maxpool_bwd(void *ctx, nn_tensor *dinp, const nn_tensor *dout,
                                 const nn_tensor *inp, const nn_pool_params *p, char *err)
{
    cpu_ctx *c = ctx;
    if (!dinp || !dout || !inp || inp->ndim != 4 || dout->ndim != 4 || dinp->ndim != 4 ||
        dout->shape[0] != inp->shape[0] || dinp->shape[0] != inp->shape[0] || inp->shape[0] < 1)
        return nn_maxpool_backward_fast(dinp, dout, inp, p, err);
    task k;
    init_task(&k, c);
    k.dinp = dinp;
    k.dout = dout;
    k.inp = inp;
    k.params = p;
    run(c, pool_bwd_task, &k, (double)inp->size);
    return finish(&k, T_of(c), err);
}

/* ---- ReLU: split elements ----------------------------------------------- */

static void relu_fwd_task(void *arg, int tid, int T)
{
    task *k = arg;
    size_t lo, hi;
    srange(k->inp->size, tid, T, &lo, &hi);
    if (lo == hi)
        return;
    nn_tensor x = range(k->inp, lo, hi), y = range(k->out, lo, hi);
    k->st[tid] = nn_relu_forward(&y, &x, tid == 0 ? k->err : NULL);
}

static nn_status cpu_relu_fwd(void *ctx, nn_tensor *out, const nn_tensor *inp, char *err)
{
    cpu_ctx *c = ctx;
    if (!out || !inp || !out->data || !inp->data || out->size != inp->size || !inp->size)
        return nn_relu_forward(out, inp, err);
    task k;
    init_task(&k, c);
    k.out = out;
    k.inp = inp;
    run(c, relu_fwd_task, &k, (double)inp->size);
    return finish(&k, T_of(c), err);
}

static void relu_bwd_task(void *arg, int tid, int T)
{
    task *k = arg;
    size_t lo, hi;
    srange(k->dinp->size, tid, T, &lo, &hi);
    if (lo == hi)
        return;
    nn_tensor dx = range(k->dinp, lo, hi), dy = range(k->dout, lo, hi),
              y = range(k->aux, lo, hi);
    k->st[tid] = nn_relu_backward(&dx, &dy, &y, tid == 0 ? k->err : NULL);
}

static nn_status cpu_relu_bwd(void *ctx, nn_tensor *dinp, const nn_tensor *dout,
                              const nn_tensor *out, char *err)
{
    cpu_ctx *c = ctx;
    if (!dinp || !dout || !out || !dinp->data || !dout->data || !out->data ||
        dinp->size != dout->size || dinp->size != out->size || !dinp->size)
        return nn_relu_backward(dinp, dout, out, err);
    task k;
    init_task(&k, c);
    k.dinp = dinp;
    k.dout = dout;
    k.aux = out;
    run(c, relu_bwd_task, &k, (double)dinp->size);
    return finish(&k, T_of(c), err);
}

/* ---- linear: split output columns --------------------------------------- */

static void linear_fwd_task(void *arg, int tid, int T)
{
    task *k = arg;
    int j0, j1;
    nn_chunk(k->M, tid, T, &j0, &j1);
    nn_linear_fwd_cols(k->out->data, k->inp->data, k->weight->data, k->bias->data, k->N,
                       k->D, k->M, j0, j1);
}

static nn_status cpu_linear_fwd(void *ctx, nn_tensor *out, const nn_tensor *inp,
                                const nn_tensor *w, const nn_tensor *bias, char *err)
{
    cpu_ctx *c = ctx;
    task k;
    init_task(&k, c);
    NN_TRY(nn_linear_check_fwd(&k.N, &k.D, &k.M, out, inp, w, bias, err));
    k.out = out;
    k.inp = inp;
    k.weight = w;
    k.bias = bias;
    run(c, linear_fwd_task, &k, (double)k.N * k.D * k.M / 8);
    return NN_OK;
}

static void linear_bwd_task(void *arg, int tid, int T)
{
    task *k = arg;
    int j0, j1, d0, d1;
    nn_chunk(k->M, tid, T, &j0, &j1);
    nn_linear_dw_cols(k->dweight->data, k->dbias->data, k->dout->data, k->inp->data,
                      k->N, k->D, k->M, j0, j1);
    if (k->dinp) {
        nn_chunk(k->D, tid, T, &d0, &d1);
        nn_linear_dx_cols(k->dinp->data, k->dout->data, k->weight->data, k->N, k->D, k->M,
                          d0, d1);
    }
}

static nn_status cpu_linear_bwd(void *ctx, nn_tensor *dinp, nn_tensor *dw, nn_tensor *db,
                                const nn_tensor *dout, const nn_tensor *inp,
                                const nn_tensor *w, char *err)
{
    cpu_ctx *c = ctx;
    task k;
    init_task(&k, c);
    NN_TRY(nn_linear_check_bwd(&k.N, &k.D, &k.M, dinp, dw, db, dout, inp, w, err));
    k.dinp = dinp;
    k.dweight = dw;
    k.dbias = db;
    k.dout = dout;
    k.inp = inp;
    k.weight = w;
    run(c, linear_bwd_task, &k, (double)k.N * k.D * k.M / 4);
    return NN_OK;
}

/* ---- update rules, L2, zero: split elements ----------------------------- */

static void optim_task(void *arg, int tid, int T)
{
    task *k = arg;
    size_t lo, hi;
    srange(k->out->size, tid, T, &lo, &hi);
    nn_optim_range(k->out->data, k->dout->data, k->ws ? k->ws->data : NULL, k->out->size,
                   lo, hi, k->op, k->t);
}

static nn_status cpu_optim_step(void *ctx, nn_tensor *param, nn_tensor *state,
                                const nn_tensor *grad, const nn_optim_params *p, long t,
                                char *err)
{
    cpu_ctx *c = ctx;
    NN_TRY(nn_optim_check(param, state, grad, p, t, err));
    task k;
    init_task(&k, c);
    k.out = param;
    k.ws = nn_optim_state_slots(p->rule) ? state : NULL;
    k.dout = grad;
    k.op = p;
    k.t = t;
    run(c, optim_task, &k, (double)param->size);
    return NN_OK;
}

static void l2_task(void *arg, int tid, int T)
{
    task *k = arg;
    size_t lo, hi;
    srange(k->inp->size, tid, T, &lo, &hi);
    k->sum[tid] = nn_l2_range(k->out->data, k->inp->data, lo, hi, k->reg);
}

static nn_status cpu_l2_reg(void *ctx, double *sumsq, nn_tensor *grad, const nn_tensor *param,
                            double reg, char *err)
{
    cpu_ctx *c = ctx;
    if (!sumsq || !grad || !param || !grad->data || !param->data || grad->size != param->size ||
        !(reg >= 0))
        return nn_l2_reg(sumsq, grad, param, reg, err);
    task k;
    init_task(&k, c);
    k.out = grad;
    k.inp = param;
    k.reg = reg;
    run(c, l2_task, &k, (double)param->size);
    double s = 0;
    for (int i = 0; i < T_of(c); i++)
        s += k.sum[i];
    *sumsq = s;
    return NN_OK;
}

static void zero_task(void *arg, int tid, int T)
{
    task *k = arg;
    size_t lo, hi;
    srange(k->out->size, tid, T, &lo, &hi);
    memset(k->out->data + lo, 0, (hi - lo) * sizeof(nn_real));
}

static nn_status cpu_zero(void *ctx, nn_tensor *t, char *err)
{
    cpu_ctx *c = ctx;
    (void)err;
    task k;
    init_task(&k, c);
    k.out = t;
    run(c, zero_task, &k, (double)t->size);
    return NN_OK;
}

static void dropout_task(void *arg, int tid, int T)
{
    task *k = arg;
    size_t lo, hi;
    srange(k->inp->size, tid, T, &lo, &hi);
    nn_dropout_range(k->out->data, k->ws->data, k->inp->data, lo, hi, k->p, k->seed);
}

static nn_status cpu_dropout_fwd(void *ctx, nn_tensor *out, nn_tensor *mask,
                                 const nn_tensor *inp, double p, uint64_t seed, char *err)
{
    cpu_ctx *c = ctx;
    if (!out || !mask || !inp || !out->data || !mask->data || !inp->data ||
        out->size != inp->size || mask->size != inp->size || !(p >= 0 && p < 1))
        return nn_dropout_forward(out, mask, inp, p, seed, err);
    task k;
    init_task(&k, c);
    k.out = out;
    k.ws = mask;
    k.inp = inp;
    k.p = p;
    k.seed = seed;
    run(c, dropout_task, &k, (double)inp->size);
    return NN_OK;
}

/* ---- batch norm: split channels ----------------------------------------- */

typedef struct bn_task {
    nn_tensor *out, *sm, *si, *rm, *rv, *dinp, *dgamma, *dbeta;
    const nn_tensor *inp, *gamma, *beta, *dout, *csm, *csi;
    const nn_batchnorm_params *p;
    int N, C;
    size_t L;
} bn_task;

static void bn_fwd_task(void *arg, int tid, int T)
{
    bn_task *k = arg;
    int c0, c1;
    nn_chunk(k->C, tid, T, &c0, &c1);
    nn_batchnorm_fwd_range(k->out, k->sm, k->si, k->rm, k->rv, k->inp, k->gamma, k->beta,
                           k->p, k->N, k->C, k->L, c0, c1);
}

static nn_status cpu_batchnorm_fwd(void *ctx, nn_tensor *out, nn_tensor *sm, nn_tensor *si,
                                   nn_tensor *rm, nn_tensor *rv, const nn_tensor *inp,
                                   const nn_tensor *gamma, const nn_tensor *beta,
                                   const nn_batchnorm_params *p, char *err)
{
    cpu_ctx *c = ctx;
    bn_task k = { .out = out, .sm = sm, .si = si, .rm = rm, .rv = rv, .inp = inp,
                  .gamma = gamma, .beta = beta, .p = p };
    NN_TRY(nn_batchnorm_check_fwd(&k.N, &k.C, &k.L, out, sm, si, rm, rv, inp, gamma, beta,
                                  p, err));
    run(c, bn_fwd_task, &k, (double)inp->size);
    return NN_OK;
}

static void bn_bwd_task(void *arg, int tid, int T)
{
    bn_task *k = arg;
    int c0, c1;
    nn_chunk(k->C, tid, T, &c0, &c1);
    nn_batchnorm_bwd_range(k->dinp, k->dgamma, k->dbeta, k->dout, k->inp, k->gamma, k->csm,
                           k->csi, k->N, k->C, k->L, c0, c1);
}

static nn_status cpu_batchnorm_bwd(void *ctx, nn_tensor *dinp, nn_tensor *dgamma,
                                   nn_tensor *dbeta, const nn_tensor *dout,
                                   const nn_tensor *inp, const nn_tensor *gamma,
                                   const nn_tensor *sm, const nn_tensor *si, char *err)
{
    cpu_ctx *c = ctx;
    bn_task k = { .dinp = dinp, .dgamma = dgamma, .dbeta = dbeta, .dout = dout, .inp = inp,
                  .gamma = gamma, .csm = sm, .csi = si };
    NN_TRY(nn_batchnorm_check_bwd(&k.N, &k.C, &k.L, dinp, dgamma, dbeta, dout, inp, gamma,
                                  sm, si, err));
    run(c, bn_bwd_task, &k, (double)inp->size);
    return NN_OK;
}

/* The remaining kernels already have the op signature but for the context;
 * the loss and dropout's backward are small next to the GEMMs. */
#define WRAP(name, kernel, params, args)                                        \
    static nn_status name params { (void)ctx; return kernel args; }

WRAP(cpu_softmax_loss, nn_softmax_loss_real,
     (void *ctx, double *loss, nn_tensor *dscores, const nn_tensor *scores,
      const nn_tensor *labels, char *err),
     (loss, dscores, scores, labels, err))
WRAP(cpu_dropout_bwd, nn_dropout_backward,
     (void *ctx, nn_tensor *dinp, const nn_tensor *dout, const nn_tensor *mask,
      char *err),
     (dinp, dout, mask, err))

static const nn_backend_ops cpu_ops = {
    .name = "cpu",
    .device = NN_DEVICE_CPU,
    .alloc = cpu_alloc,
    .release = cpu_release,
    .copy_to_device = cpu_copy,
    .copy_to_host = cpu_copy,
    .synchronize = NULL,
    .copy_on_device = cpu_copy,
    .zero = cpu_zero,
    .free_ctx = cpu_free_ctx,
    .conv2d_fwd = cpu_conv2d_fwd,
    .conv2d_bwd = cpu_conv2d_bwd,
    .maxpool_fwd = cpu_maxpool_fwd,
    .maxpool_bwd = cpu_maxpool_bwd,
    .relu_fwd = cpu_relu_fwd,
    .relu_bwd = cpu_relu_bwd,
    .linear_fwd = cpu_linear_fwd,
    .linear_bwd = cpu_linear_bwd,
    .softmax_loss = cpu_softmax_loss,
    .batchnorm_fwd = cpu_batchnorm_fwd,
    .batchnorm_bwd = cpu_batchnorm_bwd,
    .dropout_fwd = cpu_dropout_fwd,
    .dropout_bwd = cpu_dropout_bwd,
    .optim_step = cpu_optim_step,
    .l2_reg = cpu_l2_reg,
};

nn_status nn_cpu_backend_create(int threads, nn_backend **out, char *err)
{
    if (!out)
        return nn_fail(err, NN_ERR_ARG, "out is NULL");
    *out = NULL;
    NN_TRY(nn_blas_init(err));
    if (threads <= 0)
        threads = 1;
    if (threads > MAX_THREADS)
        threads = MAX_THREADS;
    cpu_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return nn_fail(err, NN_ERR_NOMEM, "out of memory");
    c->threads = threads;
    if (nn_threadpool_create(&c->pool, threads) != NN_OK) {
        free(c);
        return nn_fail(err, NN_ERR_NOMEM, "cannot start %d CPU threads", threads);
    }
    /* The backend's threads do the splitting; a threaded BLAS inside them
     * would oversubscribe the cores. */
    nn_blas_set_threads(1);
    nn_status st = nn_backend_new(&cpu_ops, c, out);
    if (st) {
        cpu_free_ctx(c);
        return nn_fail(err, st, "out of memory");
    }
    return NN_OK;
}
