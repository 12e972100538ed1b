/* bench_layers.c: the report's "Fast Layers" table, naive vs fast kernels,
 * in double (nn_f64) on the report's shapes, with PyTorch for comparison.
 *
 * Rows: conv_forward, conv_backward (dx, dw, db), pool_forward,
 * pool_backward. For each: the best time of the _ref kernel, the best time
 * of the fast kernel, the speedup, and the max abs difference between their
 * outputs. The CUDA column runs the same ops on the same inputs through the
 * CUDA backend (nn_cuda_f64) when the build has it and a device is present,
 * and reports its max abs difference against the fast CPU result.
 * PyTorch's times come from torch_layers.py, run as a child process in the
 * same run. Not a test: the goals are reported, never asserted. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bench_common.h"
#include "nn/blas.h"
#include "nn/backend.h"
#ifdef CONVNET_HAVE_CUDA
#include "nn_cuda/nn_cuda.h"
#endif

#ifndef BENCH_TORCH_SCRIPT
#define BENCH_TORCH_SCRIPT "bench/torch_layers.py"
#endif

enum { ROW_CONV_FWD, ROW_CONV_BWD, ROW_POOL_FWD, ROW_POOL_BWD, NROWS };

static const char *const row_name[NROWS] = {
    "conv_forward", "conv_backward", "pool_forward", "pool_backward"
};
/* The report's headings, so the human table reads like it. */
static const char *const row_title[NROWS] = {
    "FastConv.forward", "FastConv.backward",
    "FastMaxPool.forward", "FastMaxPool.backward"
};

typedef struct row {
    double naive_s, fast_s, fast1_s, cuda_s, torch_s; /* NAN: not measured */
    double cuda_queued_s;   /* CUDA mean per call, queued back to back */
    double diff[3];         /* ref vs fast: out, or dx/dw/db */
    double cuda_diff;       /* CUDA vs fast, max over the outputs; NAN: none */
} row;

/* Everything the timed calls touch. Reference and fast outputs are kept
 * apart so they can be compared after timing. */
typedef struct bench {
    nn_tensor *x, *w, *b, *dout, *ws;
    nn_tensor *out[2], *dx[2], *dw[2], *db[2];          /* [0] ref, [1] fast */
    nn_tensor *px, *pdout, *pout[2], *pdx[2];
    nn_conv2d_params cp;
    nn_pool_params pp;
    nn_backend *be;     /* the CPU backend: the fast path as models run it */
} bench;

/* ---- helpers ---------------------------------------------------------- */

/* xorshift64, seeded; uniform in [-1, 1) with 53 random bits, so max-pool
 * windows have no ties and argmax routing is unambiguous. */
static void fill(nn_tensor *t, uint64_t *s)
{
    for (size_t i = 0; i < t->size; i++) {
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        t->data[i] = (double)(*s >> 11) / 9007199254740992.0 * 2.0 - 1.0;
    }
}

static void zero(nn_tensor *t)
{
    memset(t->data, 0, t->size * sizeof *t->data);
}

static double max_abs_diff(const nn_tensor *a, const nn_tensor *b)
{
    double m = 0.0;
    for (size_t i = 0; i < a->size; i++) {
        double d = fabs((double)a->data[i] - (double)b->data[i]);
        if (d > m || isnan(d))
            m = d;
    }
    return m;
}

static nn_tensor *t4(int n, int c, int h, int w)
{
    const int shape[4] = { n, c, h, w };
    return nn_tensor_create(4, shape);
}

static nn_tensor *t1(size_t n)
{
    const int shape[1] = { n > 0 ? (int)n : 1 };
    return nn_tensor_create(1, shape);
}

/* ---- the timed operations --------------------------------------------- */
/* op(b, impl, err): impl 0 runs the _ref kernel, 1 the fast one through the
 * CPU backend (its threads split the batch, as in training), 2 the fast
 * kernel alone on one thread. impl 2 writes impl 1's outputs. Backward
 * kernels accumulate, so each call zeroes its gradients first; the zeroing
 * is outside the timed region (time_op calls prep, then times run). */

typedef nn_status (*op_fn)(bench *b, int impl, char *err);

/* The backend keeps its message; copy it out like the kernels do. */
static nn_status be(bench *b, nn_status s, char *err)
{
    if (s != NN_OK)
        snprintf(err, NN_ERRLEN, "%s", nn_backend_errmsg(b->be));
    return s;
}

static nn_status conv_fwd(bench *b, int i, char *err)
{
    if (i == 1)
        return be(b, nn_backend_conv2d_forward(b->be, b->out[1], b->x, b->w, b->b, &b->cp,
                                               b->ws), err);
    return (i ? nn_conv2d_forward_gemm : nn_conv2d_forward_ref)(
        b->out[i ? 1 : 0], b->x, b->w, b->b, &b->cp, i ? b->ws : NULL, err);
}

static nn_status conv_bwd_prep(bench *b, int i, char *err)
{
    (void)err;
    i = i ? 1 : 0;
    zero(b->dx[i]);
    zero(b->dw[i]);
    zero(b->db[i]);
    return NN_OK;
}

static nn_status conv_bwd(bench *b, int i, char *err)
{
    if (i == 1)
        return be(b, nn_backend_conv2d_backward(b->be, b->dx[1], b->dw[1], b->db[1], b->dout,
                                                b->x, b->w, &b->cp, b->ws), err);
    i = i ? 1 : 0;
    return (i ? nn_conv2d_backward_gemm : nn_conv2d_backward_ref)(
        b->dx[i], b->dw[i], b->db[i], b->dout, b->x, b->w, &b->cp,
        i ? b->ws : NULL, err);
}

static nn_status pool_fwd(bench *b, int i, char *err)
{
    if (i == 1)
        return be(b, nn_backend_maxpool_forward(b->be, b->pout[1], b->px, &b->pp), err);
    i = i ? 1 : 0;
    return (i ? nn_maxpool_forward_fast : nn_maxpool_forward_ref)(
        b->pout[i], b->px, &b->pp, err);
}

static nn_status pool_bwd_prep(bench *b, int i, char *err)
{
    (void)err;
    i = i ? 1 : 0;
    zero(b->pdx[i]);
    return NN_OK;
}

static nn_status pool_bwd(bench *b, int i, char *err)
{
    if (i == 1)
        return be(b, nn_backend_maxpool_backward(b->be, b->pdx[1], b->pdout, b->px, &b->pp),
                  err);
    i = i ? 1 : 0;
    return (i ? nn_maxpool_backward_fast : nn_maxpool_backward_ref)(
        b->pdx[i], b->pdout, b->px, &b->pp, err);
}

/* One untimed warm-up call, then the best of `reps`. The outputs left
 * behind are those of one complete call (prep runs before each). */
static nn_status time_op(double *best, op_fn prep, op_fn run, bench *b,
                         int impl, int reps, char *err)
{
    *best = INFINITY;
    for (int r = -1; r < reps; r++) {
        if (prep) {
            nn_status s = prep(b, impl, err);
            if (s != NN_OK)
                return s;
        }
        double t0 = bench_now_s();
        nn_status s = run(b, impl, err);
        double t = bench_now_s() - t0;
        if (s != NN_OK)
            return s;
        if (r >= 0 && t < *best)
            *best = t;
    }
    return NN_OK;
}

/* ---- the CUDA column -------------------------------------------------- */
/* The same ops on the same inputs through the CUDA backend, reached only
 * through backend.h (nn_cuda.h gives the creation function). The device
 * tensors are views with the CPU tensors' shapes whose memory
 * nn_backend_alloc() provides; results come back through nn_tensor_copy()
 * into one host scratch tensor. */

typedef struct cuda_bench {
    nn_backend *be;     /* NULL: no CUDA column */
    nn_tensor x, w, b, dout, ws, out, dx, dw, db, px, pdout, pout, pdx;
    nn_tensor *host;    /* host scratch, as large as the largest result */
} cuda_bench;

/* Each device tensor, the CPU tensor it mirrors, and whether it is an input
 * (uploaded) or a result (compared against the fast CPU one). */
enum { CUDA_NTENSORS = 13 };
typedef struct cuda_pair {
    nn_tensor *dev;
    const nn_tensor *host;
    int upload;
} cuda_pair;

static void cuda_pairs(cuda_pair p[CUDA_NTENSORS], cuda_bench *c, const bench *b)
{
    const cuda_pair t[CUDA_NTENSORS] = {
        { &c->x, b->x, 1 },       { &c->w, b->w, 1 },         { &c->b, b->b, 1 },
        { &c->dout, b->dout, 1 }, { &c->px, b->px, 1 },       { &c->pdout, b->pdout, 1 },
        { &c->ws, b->ws, 0 },     { &c->out, b->out[1], 0 },  { &c->dx, b->dx[1], 0 },
        { &c->dw, b->dw[1], 0 },  { &c->db, b->db[1], 0 },    { &c->pout, b->pout[1], 0 },
        { &c->pdx, b->pdx[1], 0 },
    };
    memcpy(p, t, sizeof t);
}

/* Releases all device memory, the scratch and the backend; safe on a
 * partly set-up c (unallocated tensors have NULL data). */
static void cuda_teardown(cuda_bench *c, const bench *b)
{
    if (c->be) {
        cuda_pair p[CUDA_NTENSORS];
        cuda_pairs(p, c, b);
        for (int i = 0; i < CUDA_NTENSORS; i++)
            nn_backend_release(c->be, p[i].dev);
    }
    nn_tensor_free(c->host);
    c->host = NULL;
    nn_backend_free(c->be);
    c->be = NULL;
}

/* Creates the CUDA backend on device 0, allocates the device tensors and
 * uploads the CPU rows' inputs. On any failure prints one line saying why
 * to stderr, releases what it got and leaves c->be NULL: the column is
 * "na" and the CPU rows are unaffected. */
static void cuda_setup(cuda_bench *c, const bench *b)
{
    char err[NN_ERRLEN] = "";
    nn_status s;
#ifdef CONVNET_HAVE_CUDA
    s = nn_cuda_backend_create(0, &c->be, err);
#else
    s = NN_ERR_UNSUPPORTED;
    snprintf(err, sizeof err, "this build has no CUDA backend (nn_cuda_f64 was not built: "
                              "configure with nvcc and -DCONVNET_CUDA=ON)");
#endif
    if (s != NN_OK) {
        fprintf(stderr, "bench_layers: CUDA column: %s: %s\n", nn_status_str(s), err);
        c->be = NULL;
        return;
    }
#ifdef CONVNET_HAVE_CUDA
    char info[256];
    if (nn_cuda_device_info(0, info, sizeof info) == NN_OK)
        printf("cuda: device 0: %s\n", info);
#endif
    cuda_pair p[CUDA_NTENSORS];
    cuda_pairs(p, c, b);
    size_t largest = 0;
    for (int i = 0; i < CUDA_NTENSORS && s == NN_OK; i++) {
        *p[i].dev = *p[i].host;     /* the shape; the backend sets data, device */
        p[i].dev->data = NULL;
        const char *what = "allocating";
        s = nn_backend_alloc(c->be, p[i].dev);
        if (s == NN_OK && p[i].upload) {
            what = "uploading";
            s = nn_tensor_copy(c->be, p[i].dev, p[i].host);
        }
        if (s != NN_OK)
            snprintf(err, sizeof err, "%s a tensor of %zu elements: %s", what,
                     p[i].host->size, nn_backend_errmsg(c->be));
        if (!p[i].upload && p[i].dev != &c->ws && p[i].host->size > largest)
            largest = p[i].host->size;
    }
    if (s == NN_OK && !(c->host = t1(largest))) {
        s = NN_ERR_NOMEM;
        snprintf(err, sizeof err, "cannot allocate the host scratch tensor");
    }
    if (s != NN_OK) {
        fprintf(stderr, "bench_layers: CUDA column: setup: %s: %s\n", nn_status_str(s), err);
        cuda_teardown(c, b);
    }
}

/* The ops, as conv_fwd and friends run them on the CPU backend. prep zeroes
 * the gradients backward accumulates into (queued on the device). */
typedef nn_status (*cuda_fn)(cuda_bench *c, const bench *b);

static nn_status cuda_conv_fwd(cuda_bench *c, const bench *b)
{
    return nn_backend_conv2d_forward(c->be, &c->out, &c->x, &c->w, &c->b, &b->cp, &c->ws);
}

static nn_status cuda_conv_bwd_prep(cuda_bench *c, const bench *b)
{
    (void)b;
    nn_status s = nn_backend_zero(c->be, &c->dx);
    if (s == NN_OK)
        s = nn_backend_zero(c->be, &c->dw);
    if (s == NN_OK)
        s = nn_backend_zero(c->be, &c->db);
    return s;
}

static nn_status cuda_conv_bwd(cuda_bench *c, const bench *b)
{
    return nn_backend_conv2d_backward(c->be, &c->dx, &c->dw, &c->db, &c->dout, &c->x, &c->w,
                                      &b->cp, &c->ws);
}

static nn_status cuda_pool_fwd(cuda_bench *c, const bench *b)
{
    return nn_backend_maxpool_forward(c->be, &c->pout, &c->px, &b->pp);
}

static nn_status cuda_pool_bwd_prep(cuda_bench *c, const bench *b)
{
    (void)b;
    return nn_backend_zero(c->be, &c->pdx);
}

static nn_status cuda_pool_bwd(cuda_bench *c, const bench *b)
{
    return nn_backend_maxpool_backward(c->be, &c->pdx, &c->pdout, &c->px, &b->pp);
}

/* Copies dev back and folds its max abs difference from ref into *m. */
static nn_status cuda_diff(double *m, cuda_bench *c, const nn_tensor *dev,
                           const nn_tensor *ref)
{
    nn_tensor h = *dev;
    h.data = c->host->data;
    h.device = NN_DEVICE_CPU;
    nn_status s = nn_tensor_copy(c->be, &h, dev);
    if (s == NN_OK) {
        double d = max_abs_diff(&h, ref);
        if (d > *m || isnan(d))     /* a NaN stays: later d > NaN is false */
            *m = d;
    }
    return s;
}

/* Times row r on the device into w->cuda_s and w->cuda_queued_s and
 * compares its outputs with the fast CPU ones (already computed) into
 * w->cuda_diff. One untimed warm-up call; then `reps` calls queued back to
 * back with one synchronisation (their mean: what the device sustains when
 * calls stream, as in training; backward accumulates across them, which
 * costs the same); then the best of `reps` single calls, each followed by a
 * synchronisation before the clock stops (the number the CPU columns are
 * compared with). prep and its synchronisation stay outside the clock, so
 * the outputs compared are those of one complete call. On an error prints
 * one line and returns it; w's CUDA fields stay NAN. */
static nn_status time_cuda(row *w, int r, cuda_bench *c, const bench *b, int reps)
{
    static const struct {
        cuda_fn prep, run;
    } ops[NROWS] = {
        [ROW_CONV_FWD] = { NULL, cuda_conv_fwd },
        [ROW_CONV_BWD] = { cuda_conv_bwd_prep, cuda_conv_bwd },
        [ROW_POOL_FWD] = { NULL, cuda_pool_fwd },
        [ROW_POOL_BWD] = { cuda_pool_bwd_prep, cuda_pool_bwd },
    };
    double best = INFINITY, queued = NAN, diff = NAN;
    nn_status s = NN_OK;
    if (!c->be)
        return NN_OK;

    /* Warm-up (first launches load the kernels, cuBLAS picks its GEMM). */
    if (ops[r].prep)
        s = ops[r].prep(c, b);
    if (s == NN_OK)
        s = ops[r].run(c, b);
    if (s == NN_OK)
        s = nn_backend_synchronize(c->be);

    if (s == NN_OK) {
        double t0 = bench_now_s();
        for (int i = 0; i < reps && s == NN_OK; i++)
            s = ops[r].run(c, b);
        if (s == NN_OK)
            s = nn_backend_synchronize(c->be);
        queued = (bench_now_s() - t0) / reps;
    }

    for (int i = 0; i < reps && s == NN_OK; i++) {
        if (ops[r].prep) {
            s = ops[r].prep(c, b);
            if (s == NN_OK)
                s = nn_backend_synchronize(c->be);
            if (s != NN_OK)
                break;
        }
        double t0 = bench_now_s();
        s = ops[r].run(c, b);
        if (s == NN_OK)
            s = nn_backend_synchronize(c->be);
        double t = bench_now_s() - t0;
        if (s == NN_OK && t < best)
            best = t;
    }

    if (s == NN_OK) {
        diff = 0.0;
        switch (r) {
        case ROW_CONV_FWD:
            s = cuda_diff(&diff, c, &c->out, b->out[1]);
            break;
        case ROW_CONV_BWD:
            s = cuda_diff(&diff, c, &c->dx, b->dx[1]);
            if (s == NN_OK)
                s = cuda_diff(&diff, c, &c->dw, b->dw[1]);
            if (s == NN_OK)
                s = cuda_diff(&diff, c, &c->db, b->db[1]);
            break;
        case ROW_POOL_FWD:
            s = cuda_diff(&diff, c, &c->pout, b->pout[1]);
            break;
        case ROW_POOL_BWD:
            s = cuda_diff(&diff, c, &c->pdx, b->pdx[1]);
            break;
        }
    }

    if (s != NN_OK) {
        fprintf(stderr, "bench_layers: CUDA column: %s: %s: %s\n", row_name[r],
                nn_status_str(s), nn_backend_errmsg(c->be));
        return s;
    }
    w->cuda_s = best;
    w->cuda_queued_s = queued;
    w->cuda_diff = diff;
    return NN_OK;
}

/* ---- PyTorch ---------------------------------------------------------- */

/* Runs torch_layers.py and fills rows[].torch_s. PyTorch's OpenBLAS is
 * given the kernel nn's runs (SkylakeX on an AVX-512 host): hosts here
 * export OPENBLAS_CORETYPE=Haswell, and PyTorch's OpenBLAS would otherwise
 * take that, or mis-detect a Zen 4 as SSE3, which is no fair baseline. */
static void run_torch(row *rows, int reps, int threads)
{
    char args[64], why[256];
    snprintf(args, sizeof args, "--reps %d --threads %d", reps, threads);
    FILE *p = bench_python_open(BENCH_TORCH_SCRIPT, args, threads, why, sizeof why);
    if (!p) {
        printf("torch: unavailable (%s)\n", why);
        return;
    }
    char line[512], name[32];
    double s;
    int got = 0;
    while (fgets(line, sizeof line, p)) {
        if (sscanf(line, "torch layer=%31s s=%lf", name, &s) == 2) {
            for (int i = 0; i < NROWS; i++)
                if (strcmp(name, row_name[i]) == 0) {
                    rows[i].torch_s = s;
                    got++;
                }
        } else {
            fputs(line, stdout);   /* "torch: ..." info, or its error text */
        }
    }
    int st = bench_python_close(p);
    if (got == 0 && st != 0)
        printf("torch: unavailable (%s exited with status %d)\n", BENCH_PYTHON, st);
}

/* ---- main ------------------------------------------------------------- */

static void usage(void)
{
    fprintf(stderr, "usage: bench_layers [--reps N] [--threads T] [--no-torch]\n"
                    "  --reps N     timed reps of the fast kernels, CUDA and PyTorch "
                    "(default 200); the naive kernels run N/10, 3..20\n"
                    "  --threads T  BLAS and PyTorch threads (default 2)\n");
}

static void print_secs(const char *label, double s)
{
    if (isnan(s))
        printf("%s: n/a\n", label);
    else
        printf("%s: %.6fs\n", label, s);
}

int main(int argc, char **argv)
{
    int reps = 200, threads = 2, torch = 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--no-torch") == 0) {
            torch = 0;
        } else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc &&
                   bench_parse_int(argv[i + 1], 1, 1000000, &reps) == 0) {
            i++;
        } else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc &&
                   bench_parse_int(argv[i + 1], 1, 1024, &threads) == 0) {
            i++;
        } else {
            usage();
            return 2;
        }
    }
    int naive_reps = reps / 10 < 3 ? 3 : reps / 10 > 20 ? 20 : reps / 10;

    char err[NN_ERRLEN] = "";
    if (nn_blas_init(err) != NN_OK) {
        fprintf(stderr, "bench_layers: %s\n", err);
        return 1;
    }
    printf("blas: %s\n", nn_blas_info());
    printf("nn_real: %s; %d threads; reps: fast %d, naive %d (best of)\n",
           NN_REAL_NAME, threads, reps, naive_reps);
    printf("conv: x(10,3,31,31) w(25,3,3,3) b(25) stride 2 pad 1 -> (10,25,16,16); "
           "pool: x(40,3,32,32) 2x2 stride 2 -> (40,3,16,16)\n");

    int rc = 1, cuda_failed = 0;
    cuda_bench cb = { 0 };
    bench b = { .cp = { .stride = 2, .pad = 1 },
                .pp = { .pool_h = 2, .pool_w = 2, .stride = 2 } };
    if (nn_cpu_backend_create(threads, &b.be, err) != NN_OK) {
        fprintf(stderr, "bench_layers: %s\n", err);
        return 1;
    }
    b.x = t4(10, 3, 31, 31);
    b.w = t4(25, 3, 3, 3);
    b.b = t1(25);
    b.dout = t4(10, 25, 16, 16);
    b.px = t4(40, 3, 32, 32);
    b.pdout = t4(40, 3, 16, 16);
    int ok = b.x && b.w && b.b && b.dout && b.px && b.pdout;
    for (int i = 0; i < 2; i++) {
        b.out[i] = t4(10, 25, 16, 16);
        b.dx[i] = t4(10, 3, 31, 31);
        b.dw[i] = t4(25, 3, 3, 3);
        b.db[i] = t1(25);
        b.pout[i] = t4(40, 3, 16, 16);
        b.pdx[i] = t4(40, 3, 32, 32);
        ok = ok && b.out[i] && b.dx[i] && b.dw[i] && b.db[i] && b.pout[i] && b.pdx[i];
    }
    if (ok) {
        size_t ws = nn_conv2d_workspace_size(b.x, b.w, &b.cp);
        ok = ws > 0 && (b.ws = t1(ws)) != NULL;
    }
    if (!ok) {
        fprintf(stderr, "bench_layers: cannot allocate the tensors\n");
        goto out;
    }
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    fill(b.x, &seed);
    fill(b.w, &seed);
    fill(b.b, &seed);
    fill(b.dout, &seed);
    fill(b.px, &seed);
    fill(b.pdout, &seed);

    static const struct {
        op_fn prep, run;
    } ops[NROWS] = {
        [ROW_CONV_FWD] = { NULL, conv_fwd },
        [ROW_CONV_BWD] = { conv_bwd_prep, conv_bwd },
        [ROW_POOL_FWD] = { NULL, pool_fwd },
        [ROW_POOL_BWD] = { pool_bwd_prep, pool_bwd },
    };
    row rows[NROWS];
    for (int r = 0; r < NROWS; r++) {
        rows[r] = (row){ .naive_s = NAN, .fast_s = NAN, .fast1_s = NAN, .cuda_s = NAN,
                         .torch_s = NAN, .cuda_queued_s = NAN, .cuda_diff = NAN };
        nn_status s = time_op(&rows[r].naive_s, ops[r].prep, ops[r].run, &b, 0,
                              naive_reps, err);
        if (s == NN_OK)
            s = time_op(&rows[r].fast1_s, ops[r].prep, ops[r].run, &b, 2, reps, err);
        if (s == NN_OK) /* last, so the outputs compared below are the backend's */
            s = time_op(&rows[r].fast_s, ops[r].prep, ops[r].run, &b, 1, reps, err);
        if (s != NN_OK) {
            fprintf(stderr, "bench_layers: %s: %s: %s\n", row_name[r],
                    nn_status_str(s), err);
            goto out;
        }
    }
    /* The CUDA column after every CPU row, so no CUDA context exists while
     * the CPU is timed; it compares against the fast outputs left above. */
    cuda_setup(&cb, &b);
    for (int r = 0; r < NROWS && cb.be; r++)
        if (time_cuda(&rows[r], r, &cb, &b, reps) != NN_OK)
            cuda_failed = 1;
    cuda_teardown(&cb, &b);     /* before PyTorch runs; again at out: a no-op */
    rows[ROW_CONV_FWD].diff[0] = max_abs_diff(b.out[0], b.out[1]);
    rows[ROW_CONV_BWD].diff[0] = max_abs_diff(b.dx[0], b.dx[1]);
    rows[ROW_CONV_BWD].diff[1] = max_abs_diff(b.dw[0], b.dw[1]);
    rows[ROW_CONV_BWD].diff[2] = max_abs_diff(b.db[0], b.db[1]);
    rows[ROW_POOL_FWD].diff[0] = max_abs_diff(b.pout[0], b.pout[1]);
    rows[ROW_POOL_BWD].diff[0] = max_abs_diff(b.pdx[0], b.pdx[1]);

    if (torch)
        run_torch(rows, reps, threads);
    else
        printf("torch: skipped (--no-torch)\n");

    /* The human table, in the report's words. */
    for (int r = 0; r < NROWS; r++) {
        const row *w = &rows[r];
        printf("\nTesting %s:\n", row_title[r]);
        print_secs("Naive", w->naive_s);
        print_secs("Fast", w->fast_s);
        print_secs("Fast (kernel, 1 thread)", w->fast1_s);
        print_secs("Fast CUDA", w->cuda_s);
        if (!isnan(w->cuda_s))
            printf("Fast CUDA (queued, mean): %.6fs\nCUDA speedup vs naive: %.1fx\n"
                   "CUDA difference (vs fast): %.6g\n", w->cuda_queued_s,
                   w->naive_s / w->cuda_s, w->cuda_diff);
        print_secs("PyTorch", w->torch_s);
        printf("Speedup: %.6fx\n", w->naive_s / w->fast_s);
        if (!isnan(w->torch_s))
            printf("Fast vs PyTorch: %.3fx (%s)\n", w->torch_s / w->fast_s,
                   w->torch_s >= w->fast_s ? "fast is faster" : "PyTorch is faster");
        if (r == ROW_CONV_BWD)
            printf("dx difference: %.6g\ndw difference: %.6g\ndb difference: %.6g\n",
                   w->diff[0], w->diff[1], w->diff[2]);
        else if (r == ROW_POOL_BWD)
            printf("dx difference: %.6g\n", w->diff[0]);
        else
            printf("Difference: %.6g\n", w->diff[0]);
    }

    /* One machine-readable line per row. */
    printf("\n");
    for (int r = 0; r < NROWS; r++) {
        const row *w = &rows[r];
        double d = fmax(w->diff[0], fmax(w->diff[1], w->diff[2]));
        char cuda[32] = "na", cuda_x[32] = "na", cuda_d[32] = "na", cuda_q[32] = "na";
        if (!isnan(w->cuda_s)) {
            snprintf(cuda, sizeof cuda, "%.9f", w->cuda_s);
            snprintf(cuda_x, sizeof cuda_x, "%.3f", w->naive_s / w->cuda_s);
            snprintf(cuda_d, sizeof cuda_d, "%.3e", w->cuda_diff);
            snprintf(cuda_q, sizeof cuda_q, "%.9f", w->cuda_queued_s);
        }
        printf("layer=%s naive_s=%.9f fast_s=%.9f cuda_s=%s speedup=%.3f max_abs_diff=%.3e "
               "fast_1thread_s=%.9f cuda_speedup_vs_naive=%s cuda_max_abs_diff=%s "
               "cuda_queued_s=%s", row_name[r], w->naive_s, w->fast_s, cuda,
               w->naive_s / w->fast_s, d, w->fast1_s, cuda_x, cuda_d, cuda_q);
        if (!isnan(w->torch_s))
            printf(" torch_s=%.9f fast_vs_torch=%.3f", w->torch_s, w->torch_s / w->fast_s);
        printf("\n");
    }
    rc = cuda_failed ? 1 : 0;   /* an op failing on a present device is a bug */

out:
    cuda_teardown(&cb, &b);
    nn_tensor_free(b.x);
    nn_tensor_free(b.w);
    nn_tensor_free(b.b);
    nn_tensor_free(b.dout);
    nn_tensor_free(b.ws);
    nn_tensor_free(b.px);
    nn_tensor_free(b.pdout);
    for (int i = 0; i < 2; i++) {
        nn_tensor_free(b.out[i]);
        nn_tensor_free(b.dx[i]);
        nn_tensor_free(b.dw[i]);
        nn_tensor_free(b.db[i]);
        nn_tensor_free(b.pout[i]);
        nn_tensor_free(b.pdx[i]);
    }
    nn_backend_free(b.be);
    return rc;
}
