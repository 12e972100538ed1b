/* backend_cuda.c: the CUDA backend object: its context (device, stream,
 * cuBLAS handle, workspace, reduction scratch), memory and copies, and the
 * op table. Each op validates its tensors here, on the host, with the CPU
 * kernels' rules and messages (but requiring NN_DEVICE_CUDA), then calls a
 * launcher from the .cu files with raw device pointers. No kernels here.
 *
 * Everything is queued on the context's stream. Copies to the host, large
 * copies to the device and synchronize wait for it; results for the host
 * (softmax loss, L2 sum) wait in device slots until synchronize, or until
 * all NN_CUDA_SLOTS are taken. */
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "nn/backend_impl.h"
#include "nn_cuda/nn_cuda.h"
#include "common.h"

#define DEFAULT_WORKSPACE_MB 128

/* ---- errors ----------------------------------------------------------- */

nn_status nn_cuda_fail(char *err, nn_status s, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, NN_ERRLEN, fmt, ap);
        va_end(ap);
    }
    return s;
}

const char *nn_cuda_base(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

#define FAIL(s, ...) nn_cuda_fail(err, (s), __VA_ARGS__)

/* Makes ctx's device current for this thread: the daemon creates the
 * backend on one thread and uses it on its worker. Cheap when it already
 * is. */
static nn_status enter(const nn_cuda_ctx *c, char *err)
{
    NN_CUDA_CHECK(cudaSetDevice(c->device));
    return NN_OK;
}

nn_status nn_cuda_defer(nn_cuda_ctx *c, double **slot, double *dst, int classes,
                        char *err)
{
    if (c->npending == NN_CUDA_SLOTS)
        NN_CUDA_TRY(nn_cuda_settle(c, err));
    *slot = c->red + NN_CUDA_RED_RESULT + c->npending;
    c->pending[c->npending++] = (nn_cuda_pending){ dst, classes };
    return NN_OK;
}

nn_status nn_cuda_settle(nn_cuda_ctx *c, char *err)
{
    const int n = c->npending;
    c->npending = 0;
    if (n)
        NN_CUDA_CHECK(cudaMemcpyAsync(c->host, c->red + NN_CUDA_RED_RESULT,
                                      (size_t)n * sizeof(double), cudaMemcpyDeviceToHost,
                                      c->stream));
    NN_CUDA_CHECK(cudaStreamSynchronize(c->stream));
    nn_status st = NN_OK;
    for (int i = 0; i < n; i++) {
        const double v = c->host[i];
        const nn_cuda_pending *p = &c->pending[i];
        if (p->classes > 0 && v < 0) {
            if (st == NN_OK)
                st = nn_cuda_fail(err, NN_ERR_ARG, "label of sample %.0f is outside 0..%d",
                                  -v - 1, p->classes - 1);
            continue;
        }
        *p->dst = v;
    }
    return st;
}

/* ---- devices ---------------------------------------------------------- */

int nn_cuda_device_count(void)
{
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        (void)cudaGetLastError();
        return 0;
    }
    return n > 0 ? n : 0;
}

nn_status nn_cuda_device_info(int device, char *buf, size_t len)
{
    if (!buf || len == 0)
        return NN_ERR_ARG;
    buf[0] = 0;
    int n = nn_cuda_device_count();
    if (device < 0 || device >= n) {
        snprintf(buf, len, "no CUDA device %d (%d found)", device, n);
        return NN_ERR_ARG;
    }
    struct cudaDeviceProp prop;
    cudaError_t e = cudaGetDeviceProperties(&prop, device);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        snprintf(buf, len, "cudaGetDeviceProperties: %s", cudaGetErrorString(e));
        return NN_ERR_CUDA;
    }
    snprintf(buf, len, "%s, sm_%d%d, %d SMs, %.1f GiB", prop.name, prop.major, prop.minor,
             prop.multiProcessorCount, (double)prop.totalGlobalMem / (1024.0 * 1024 * 1024));
    return NN_OK;
}

/* ---- context ---------------------------------------------------------- */

/* Frees whatever ctx_init got; safe on a partly built context. */
static void cuda_free_ctx(void *vc)
{
    nn_cuda_ctx *c = vc;
    if (!c)
        return;
    /* Errors are ignored: nothing can be done about them while freeing. */
    (void)cudaSetDevice(c->device);
    if (c->stream)
        (void)cudaStreamSynchronize(c->stream);
    if (c->blas)
        (void)cublasDestroy(c->blas);
    (void)cudaFree(c->ws);
    (void)cudaFree(c->red);
    if (c->host)
        (void)cudaFreeHost(c->host);
    for (int i = 0; i < NN_CUDA_STAGES; i++) {
        if (c->stage[i].buf)
            (void)cudaFreeHost(c->stage[i].buf);
        if (c->stage[i].done)
            (void)cudaEventDestroy(c->stage[i].done);
    }
    if (c->stream)
        (void)cudaStreamDestroy(c->stream);
    (void)cudaGetLastError();
    free(c);
}

/* NN_CUDA_WORKSPACE_MB: a whole number of MiB, 0 included; default 128. */
static nn_status workspace_bytes(size_t *bytes, char *err)
{
    const char *s = getenv("NN_CUDA_WORKSPACE_MB");
    long mb = DEFAULT_WORKSPACE_MB;
    if (s && *s) {
        char *end;
        mb = strtol(s, &end, 10);
        if (*end || mb < 0 || mb > 1L << 20)
            return FAIL(NN_ERR_ARG, "NN_CUDA_WORKSPACE_MB must be a number of MiB in "
                                    "0..1048576, got \"%s\"", s);
    }
    *bytes = (size_t)mb << 20;
    return NN_OK;
}

static nn_status ctx_init(nn_cuda_ctx *c, char *err)
{
    size_t ws_bytes = 0;
    NN_CUDA_TRY(workspace_bytes(&ws_bytes, err));
    NN_CUDA_CHECK(cudaSetDevice(c->device));
    NN_CUDA_CHECK(cudaStreamCreate(&c->stream));
    NN_CUBLAS_CHECK(cublasCreate(&c->blas));
    NN_CUBLAS_CHECK(cublasSetStream(c->blas, c->stream));
    /* FP32 unless asked: TF32 changes results beyond the float tolerance
     * the CPU comparisons use. DGEMM ignores the setting. */
    const char *tf32 = getenv("NN_CUDA_TF32");
    const int use_tf32 = tf32 && strcmp(tf32, "1") == 0;
    NN_CUBLAS_CHECK(cublasSetMathMode(c->blas, use_tf32 ? CUBLAS_TF32_TENSOR_OP_MATH
                                                        : CUBLAS_DEFAULT_MATH));
    c->ws_elems = ws_bytes / sizeof(nn_real);
    if (c->ws_elems)
        NN_CUDA_CHECK(cudaMalloc((void **)&c->ws, c->ws_elems * sizeof(nn_real)));
    NN_CUDA_CHECK(cudaMalloc((void **)&c->red, NN_CUDA_RED_LEN * sizeof(double)));
    NN_CUDA_CHECK(cudaMallocHost((void **)&c->host, NN_CUDA_SLOTS * sizeof(double)));
    for (int i = 0; i < NN_CUDA_STAGES; i++)
        NN_CUDA_CHECK(cudaEventCreateWithFlags(&c->stage[i].done, cudaEventDisableTiming));
    return NN_OK;
}

/* ---- memory and copies ------------------------------------------------ */

static nn_status cuda_alloc(void *vc, nn_tensor *t, char *err)
{
    nn_cuda_ctx *c = vc;
    size_t n = 1;
    for (int i = 0; i < t->ndim; i++) {
        if (t->shape[i] < 1)
            return FAIL(NN_ERR_SHAPE, "cannot allocate a tensor with dim %d = %d", i,
                        t->shape[i]);
        n *= (size_t)t->shape[i];
    }
    NN_CUDA_TRY(enter(c, err));
    void *p = NULL;
    const size_t bytes = n * sizeof(nn_real);
    cudaError_t e = cudaMalloc(&p, bytes);
    if (e == cudaErrorMemoryAllocation) {
        (void)cudaGetLastError();
        return FAIL(NN_ERR_NOMEM, "out of CUDA device memory allocating %zu bytes", bytes);
    }
    NN_CUDA_CHECK(e);
    e = cudaMemsetAsync(p, 0, bytes, c->stream);
    if (e != cudaSuccess) {
        (void)cudaFree(p);
        NN_CUDA_CHECK(e);
    }
    t->data = p;
    t->size = n;
    t->device = NN_DEVICE_CUDA;
    return NN_OK;
}

static void cuda_release(void *vc, nn_tensor *t)
{
    nn_cuda_ctx *c = vc;
    if (t->device != NN_DEVICE_CUDA)
        return; /* not ours: a caller bug, and freeing it would be worse */
    (void)cudaSetDevice(c->device);
    (void)cudaFree(t->data); /* waits for queued work that may still use it */
    (void)cudaGetLastError();
    t->data = NULL;
}

/* The dispatcher (backend.c) has checked both are non-NULL and equal in
 * size and chosen the direction from the device tags. */
static nn_status cuda_copy_to_device(void *vc, nn_tensor *dst, const nn_tensor *src,
                                     char *err)
{
    nn_cuda_ctx *c = vc;
    if (dst->device != NN_DEVICE_CUDA)
        return FAIL(NN_ERR_ARG, "copy destination is not in CUDA device memory");
    NN_CUDA_TRY(enter(c, err));
    /* The caller may reuse the host buffer as soon as we return: a small
     * copy goes through the next staging buffer and returns at once (a
     * training step's minibatch, no wait for the queued step before it); a
     * large one waits for the device. */
    const size_t bytes = src->size * sizeof(nn_real);
    if (bytes > NN_CUDA_STAGE_MAX) {
        NN_CUDA_CHECK(cudaMemcpyAsync(dst->data, src->data, bytes, cudaMemcpyHostToDevice,
                                      c->stream));
        NN_CUDA_CHECK(cudaStreamSynchronize(c->stream));
        return NN_OK;
    }
    nn_cuda_stage *st = &c->stage[c->next_stage];
    c->next_stage = (c->next_stage + 1) % NN_CUDA_STAGES;
    if (st->used) /* the copy that last read this buffer is done */
        NN_CUDA_CHECK(cudaEventSynchronize(st->done));
    if (st->bytes < bytes) {
        (void)cudaFreeHost(st->buf);
        st->buf = NULL;
        st->bytes = 0;
        const size_t want = bytes < ((size_t)64 << 10) ? (size_t)64 << 10 : bytes;
        NN_CUDA_CHECK(cudaMallocHost(&st->buf, want));
        st->bytes = want;
    }
    memcpy(st->buf, src->data, bytes);
    NN_CUDA_CHECK(cudaMemcpyAsync(dst->data, st->buf, bytes, cudaMemcpyHostToDevice,
                                  c->stream));
    NN_CUDA_CHECK(cudaEventRecord(st->done, c->stream));
    st->used = 1;
    return NN_OK;
}

static nn_status cuda_copy_to_host(void *vc, nn_tensor *dst, const nn_tensor *src,
                                   char *err)
{
    nn_cuda_ctx *c = vc;
    if (src->device != NN_DEVICE_CUDA)
        return FAIL(NN_ERR_ARG, "copy source is not in CUDA device memory");
    NN_CUDA_TRY(enter(c, err));
    NN_CUDA_CHECK(cudaMemcpyAsync(dst->data, src->data, src->size * sizeof(nn_real),
                                  cudaMemcpyDeviceToHost, c->stream));
    NN_CUDA_CHECK(cudaStreamSynchronize(c->stream));
    return NN_OK;
}

static nn_status cuda_copy_on_device(void *vc, nn_tensor *dst, const nn_tensor *src,
                                     char *err)
{
    nn_cuda_ctx *c = vc;
    if (dst->device != NN_DEVICE_CUDA || src->device != NN_DEVICE_CUDA)
        return FAIL(NN_ERR_ARG, "copy between devices this backend does not own");
    NN_CUDA_TRY(enter(c, err));
    NN_CUDA_CHECK(cudaMemcpyAsync(dst->data, src->data, src->size * sizeof(nn_real),
                                  cudaMemcpyDeviceToDevice, c->stream));
    return NN_OK;
}

static nn_status cuda_zero(void *vc, nn_tensor *t, char *err)
{
    nn_cuda_ctx *c = vc;
    if (!t || !t->data || t->device != NN_DEVICE_CUDA)
        return FAIL(NN_ERR_ARG, "zero: tensor is NULL or not in CUDA device memory");
    NN_CUDA_TRY(enter(c, err));
    NN_CUDA_CHECK(cudaMemsetAsync(t->data, 0, t->size * sizeof(nn_real), c->stream));
    return NN_OK;
}

static nn_status cuda_synchronize(void *vc, char *err)
{
    nn_cuda_ctx *c = vc;
    NN_CUDA_TRY(enter(c, err));
    return nn_cuda_settle(c, err);
}

/* ---- argument checks: tensor.c's rules, on the device ----------------- */

/* nn_tensor_check with NN_DEVICE_CUDA in place of host memory. */
static nn_status dcheck(const nn_tensor *t, const char *what, int ndim, const int *want,
                        char *err)
{
    return nn_tensor_check_on(t, NN_DEVICE_CUDA, what, ndim, want, err);
}

/* Non-NULL and on the device, any shape. */
static nn_status dptr(const nn_tensor *t, const char *what, char *err)
{
    if (!t || !t->data || t->device != NN_DEVICE_CUDA)
        return FAIL(NN_ERR_ARG, "%s is NULL or not in CUDA device memory", what);
    return NN_OK;
}

/* Both on the device with the same non-zero size (linear.c's same_size). */
static nn_status dsame(const nn_tensor *a, const char *an, const nn_tensor *b,
                       const char *bn, char *err)
{
    NN_CUDA_TRY(dptr(a, an, err));
    NN_CUDA_TRY(dptr(b, bn, err));
    if (a->size != b->size || a->size == 0)
        return FAIL(NN_ERR_SHAPE, "%s has %zu elements, %s %zu", an, a->size, bn, b->size);
    return NN_OK;
}

/* ---- convolution ------------------------------------------------------ */

/* The CPU kernels' shape rules (backend_impl.h), for device tensors. */
static nn_status conv_check(nn_cuda_conv_geom *g, const nn_tensor *out,
                            const nn_tensor *inp, const nn_tensor *weight,
                            const nn_conv2d_params *p, const char *outname, char *err)
{
    NN_CUDA_TRY(nn_conv2d_geometry(g, out, inp, weight, p, NN_DEVICE_CUDA, outname, err));
    /* The kernels index one image's column matrix and cuBLAS takes int
     * sizes: beyond these the CPU path is the one to use. */
    const size_t crspq = (size_t)g->C * g->R * g->S * g->P * g->Q;
    if (crspq > INT_MAX || (size_t)g->C * g->H * g->W > INT_MAX ||
        (size_t)g->K * g->P * g->Q > INT_MAX)
        return FAIL(NN_ERR_UNSUPPORTED, "conv2d image too large for the CUDA kernels");
    return NN_OK;
}

/* The workspace the launcher gets: the caller's (which must be on the
 * device and hold one image's columns, the CPU's contract) or the context's,
 * whichever is larger, so that several images go per GEMM. */
static nn_status conv_workspace(const nn_cuda_ctx *c, const nn_cuda_conv_geom *g,
                                const nn_tensor *ws, nn_real **buf, size_t *elems,
                                char *err)
{
    const size_t need = (size_t)g->C * g->R * g->S * g->P * g->Q;
    if (!ws || !ws->data || ws->device != NN_DEVICE_CUDA)
        return FAIL(NN_ERR_ARG, "conv2d workspace is NULL or not in CUDA device memory");
    if (ws->size < need)
        return FAIL(NN_ERR_SHAPE, "conv2d workspace has %zu elements, needs %zu", ws->size,
                    need);
    *buf = ws->data;
    *elems = ws->size;
    if (c->ws_elems > ws->size) {
        *buf = c->ws;
        *elems = c->ws_elems;
    }
    return NN_OK;
}

static nn_status cuda_conv2d_fwd(void *vc, nn_tensor *out, const nn_tensor *inp,
                                 const nn_tensor *weight, const nn_tensor *bias,
                                 const nn_conv2d_params *p, nn_tensor *workspace, char *err)
{
    nn_cuda_ctx *c = vc;
    nn_cuda_conv_geom g;
    nn_real *ws;
    size_t ws_elems;
    NN_CUDA_TRY(conv_check(&g, out, inp, weight, p, "conv2d output", err));
    NN_CUDA_TRY(dcheck(bias, "conv2d bias", 1, (int[]){ g.K }, err));
    NN_CUDA_TRY(conv_workspace(c, &g, workspace, &ws, &ws_elems, err));
    NN_CUDA_TRY(enter(c, err));
    return nn_cuda_conv2d_forward(c, out->data, inp->data, weight->data, bias->data, &g, ws,
                                  ws_elems, err);
}

static nn_status cuda_conv2d_bwd(void *vc, nn_tensor *dinp, nn_tensor *dweight,
                                 nn_tensor *dbias, const nn_tensor *dout,
                                 const nn_tensor *inp, const nn_tensor *weight,
                                 const nn_conv2d_params *p, nn_tensor *workspace, char *err)
{
    nn_cuda_ctx *c = vc;
    nn_cuda_conv_geom g;
    nn_real *ws;
    size_t ws_elems;
    NN_CUDA_TRY(conv_check(&g, dout, inp, weight, p, "conv2d dout", err));
    if (dinp)
        NN_CUDA_TRY(dcheck(dinp, "conv2d dinp", 4, (int[]){ g.N, g.C, g.H, g.W }, err));
    NN_CUDA_TRY(dcheck(dweight, "conv2d dweight", 4, (int[]){ g.K, g.C, g.R, g.S }, err));
    NN_CUDA_TRY(dcheck(dbias, "conv2d dbias", 1, (int[]){ g.K }, err));
    NN_CUDA_TRY(conv_workspace(c, &g, workspace, &ws, &ws_elems, err));
    NN_CUDA_TRY(enter(c, err));
    return nn_cuda_conv2d_backward(c, dinp ? dinp->data : NULL, dweight->data, dbias->data,
                                   dout->data, inp->data, weight->data, &g, ws, ws_elems,
                                   err);
}

/* ---- max pooling ------------------------------------------------------ */

static nn_status pool_check(nn_cuda_pool_geom *g, const nn_tensor *out,
                            const nn_tensor *inp, const nn_pool_params *p,
                            const char *outname, char *err)
{
    NN_CUDA_TRY(nn_maxpool_geometry(g, out, inp, p, NN_DEVICE_CUDA, outname, err));
    if ((size_t)g->H * g->W > INT_MAX)
        return FAIL(NN_ERR_UNSUPPORTED, "maxpool plane too large for the CUDA kernels");
    return NN_OK;
}

static nn_status cuda_maxpool_fwd(void *vc, nn_tensor *out, const nn_tensor *inp,
                                  const nn_pool_params *p, char *err)
{
    nn_cuda_pool_geom g;
    NN_CUDA_TRY(pool_check(&g, out, inp, p, "maxpool output", err));
    NN_CUDA_TRY(enter(vc, err));
    return nn_cuda_maxpool_forward(vc, out->data, inp->data, &g, err);
}

static nn_status cuda_maxpool_bwd(void *vc, nn_tensor *dinp, const nn_tensor *dout,
                                  const nn_tensor *inp, const nn_pool_params *p, char *err)
{
    nn_cuda_pool_geom g;
    NN_CUDA_TRY(pool_check(&g, dout, inp, p, "maxpool dout", err));
    NN_CUDA_TRY(dcheck(dinp, "maxpool dinp", 4, (int[]){ g.N, g.C, g.H, g.W }, err));
    NN_CUDA_TRY(enter(vc, err));
    return nn_cuda_maxpool_backward(vc, dinp->data, dout->data, inp->data, &g, err);
}

/* ---- relu ------------------------------------------------------------- */

static nn_status cuda_relu_fwd(void *vc, nn_tensor *out, const nn_tensor *inp, char *err)
{
    NN_CUDA_TRY(dsame(out, "relu output", inp, "relu input", err));
    NN_CUDA_TRY(enter(vc, err));
    return nn_cuda_relu_forward(vc, out->data, inp->data, inp->size, err);
}

static nn_status cuda_relu_bwd(void *vc, nn_tensor *dinp, const nn_tensor *dout,
                               const nn_tensor *out, char *err)
{
    NN_CUDA_TRY(dsame(dinp, "relu dinp", dout, "relu dout", err));
    NN_CUDA_TRY(dsame(dinp, "relu dinp", out, "relu output", err));
    NN_CUDA_TRY(enter(vc, err));
    return nn_cuda_relu_backward(vc, dinp->data, dout->data, out->data, dinp->size, err);
}

/* ---- linear ----------------------------------------------------------- */

/* linear.c's linear_check: inp read as (N, D), weight (D, M). */
static nn_status linear_check(int *N, int *D, int *M, const nn_tensor *inp,
                              const nn_tensor *weight, char *err)
{
    if (!inp || !inp->data)
        return FAIL(NN_ERR_ARG, "linear input is NULL");
    if (inp->device != NN_DEVICE_CUDA)
        return FAIL(NN_ERR_ARG, "linear input is not in CUDA device memory");
    if (inp->ndim < 2 || inp->size == 0)
        return FAIL(NN_ERR_SHAPE, "linear input must have >= 2 dims (N, D...)");
    NN_CUDA_TRY(dcheck(weight, "linear weight", 2, NULL, err));
    *N = inp->shape[0];
    *D = (int)(inp->size / (size_t)*N);
    *M = weight->shape[1];
    if (weight->shape[0] != *D)
        return FAIL(NN_ERR_SHAPE, "linear weight has %d rows, input has %d features",
                    weight->shape[0], *D);
    return NN_OK;
}

static nn_status cuda_linear_fwd(void *vc, nn_tensor *out, const nn_tensor *inp,
                                 const nn_tensor *weight, const nn_tensor *bias, char *err)
{
    nn_cuda_ctx *c = vc;
    int N, D, M;
    NN_CUDA_TRY(linear_check(&N, &D, &M, inp, weight, err));
    NN_CUDA_TRY(dcheck(bias, "linear bias", 1, (int[]){ M }, err));
    NN_CUDA_TRY(dcheck(out, "linear output", 2, (int[]){ N, M }, err));
    NN_CUDA_TRY(enter(c, err));
    /* out = bias, then out += inp (N,D) @ weight (D,M), as on the CPU */
    NN_CUDA_TRY(nn_cuda_bias_fill(c, out->data, bias->data, N, M, 1, err));
    return nn_cuda_gemm(c, 0, 0, N, M, D, 1, inp->data, D, weight->data, M, 1, out->data, M,
                        err);
}

static nn_status cuda_linear_bwd(void *vc, nn_tensor *dinp, nn_tensor *dweight,
                                 nn_tensor *dbias, const nn_tensor *dout,
                                 const nn_tensor *inp, const nn_tensor *weight, char *err)
{
    nn_cuda_ctx *c = vc;
    int N, D, M;
    NN_CUDA_TRY(linear_check(&N, &D, &M, inp, weight, err));
    NN_CUDA_TRY(dcheck(dout, "linear dout", 2, (int[]){ N, M }, err));
    NN_CUDA_TRY(dcheck(dweight, "linear dweight", 2, (int[]){ D, M }, err));
    NN_CUDA_TRY(dcheck(dbias, "linear dbias", 1, (int[]){ M }, err));
    if (dinp) {
        NN_CUDA_TRY(dptr(dinp, "linear dinp", err));
        if (dinp->size != inp->size)
            return FAIL(NN_ERR_SHAPE, "linear dinp has %zu elements, input %zu", dinp->size,
                        inp->size);
    }
    NN_CUDA_TRY(enter(c, err));
    NN_CUDA_TRY(nn_cuda_bias_grad(c, dbias->data, dout->data, N, M, 1, err));
    /* dweight (D,M) += inp^T (D,N) @ dout (N,M) */
    NN_CUDA_TRY(nn_cuda_gemm(c, 1, 0, D, M, N, 1, inp->data, D, dout->data, M, 1,
                             dweight->data, M, err));
    if (dinp) /* dinp (N,D) += dout (N,M) @ weight^T (M,D) */
        NN_CUDA_TRY(nn_cuda_gemm(c, 0, 1, N, D, M, 1, dout->data, M, weight->data, M, 1,
                                 dinp->data, D, err));
    return NN_OK;
}

/* ---- softmax loss ----------------------------------------------------- */

static nn_status cuda_softmax_loss(void *vc, double *loss, nn_tensor *dscores,
                                   const nn_tensor *scores, const nn_tensor *labels,
                                   char *err)
{
    if (!loss || !labels || !scores)
        return FAIL(NN_ERR_ARG, "softmax loss: loss, scores or labels is NULL");
    NN_CUDA_TRY(dcheck(scores, "softmax scores", 2, NULL, err));
    const int N = scores->shape[0], M = scores->shape[1];
    NN_CUDA_TRY(dcheck(labels, "softmax labels", 1, (int[]){ N }, err));
    if (dscores)
        NN_CUDA_TRY(dcheck(dscores, "softmax dscores", 2, (int[]){ N, M }, err));
    NN_CUDA_TRY(enter(vc, err));
    return nn_cuda_softmax_loss(vc, loss, dscores ? dscores->data : NULL, scores->data,
                                labels->data, N, M, err);
}

/* ---- batch normalisation ---------------------------------------------- */

/* batchnorm.c's bn_check: inp (N,C) or (N,C,H,W) read as (N,C,L); `other`
 * (may be NULL) must have inp's shape. */
static nn_status bn_check(int *N, int *C, size_t *L, const nn_tensor *inp,
                          const nn_tensor *other, const char *othername, char *err)
{
    if (!inp || !inp->data)
        return FAIL(NN_ERR_ARG, "batchnorm input is NULL");
    if (inp->device != NN_DEVICE_CUDA)
        return FAIL(NN_ERR_ARG, "batchnorm input is not in CUDA device memory");
    if (inp->ndim != 2 && inp->ndim != 4)
        return FAIL(NN_ERR_SHAPE, "batchnorm input must be (N,C) or (N,C,H,W), has %d dims",
                    inp->ndim);
    if (inp->size == 0)
        return FAIL(NN_ERR_SHAPE, "batchnorm input is empty");
    *N = inp->shape[0];
    *C = inp->shape[1];
    *L = inp->size / ((size_t)*N * (size_t)*C);
    if (other) {
        NN_CUDA_TRY(dptr(other, othername, err));
        if (!nn_tensor_same_shape(other, inp))
            return FAIL(NN_ERR_SHAPE, "%s must have the input's shape", othername);
    }
    return NN_OK;
}

#define CHECK_VEC(t, name) NN_CUDA_TRY(dcheck(t, name, 1, (int[]){ C }, err))

static nn_status cuda_batchnorm_fwd(void *vc, nn_tensor *out, nn_tensor *save_mean,
                                    nn_tensor *save_invstd, nn_tensor *running_mean,
                                    nn_tensor *running_var, const nn_tensor *inp,
                                    const nn_tensor *gamma, const nn_tensor *beta,
                                    const nn_batchnorm_params *p, char *err)
{
    int N, C;
    size_t L;
    NN_CUDA_TRY(bn_check(&N, &C, &L, inp, out, "batchnorm output", err));
    if (!p)
        return FAIL(NN_ERR_ARG, "batchnorm params are NULL");
    if (!(p->eps > 0))
        return FAIL(NN_ERR_ARG, "batchnorm eps must be > 0, got %g", p->eps);
    if (!(p->momentum >= 0 && p->momentum <= 1))
        return FAIL(NN_ERR_ARG, "batchnorm momentum must be in [0,1], got %g", p->momentum);
    CHECK_VEC(gamma, "batchnorm gamma");
    CHECK_VEC(beta, "batchnorm beta");
    CHECK_VEC(running_mean, "batchnorm running_mean");
    CHECK_VEC(running_var, "batchnorm running_var");
    if (p->training) {
        CHECK_VEC(save_mean, "batchnorm save_mean");
        CHECK_VEC(save_invstd, "batchnorm save_invstd");
    }
    NN_CUDA_TRY(enter(vc, err));
    return nn_cuda_batchnorm_forward(vc, out->data, p->training ? save_mean->data : NULL,
                                     p->training ? save_invstd->data : NULL,
                                     running_mean->data, running_var->data, inp->data,
                                     gamma->data, beta->data, N, C, L, p->eps, p->momentum,
                                     p->training, err);
}

static nn_status cuda_batchnorm_bwd(void *vc, nn_tensor *dinp, nn_tensor *dgamma,
                                    nn_tensor *dbeta, const nn_tensor *dout,
                                    const nn_tensor *inp, const nn_tensor *gamma,
                                    const nn_tensor *save_mean, const nn_tensor *save_invstd,
                                    char *err)
{
    int N, C;
    size_t L;
    NN_CUDA_TRY(bn_check(&N, &C, &L, inp, dout, "batchnorm dout", err));
    if (dinp)
        NN_CUDA_TRY(bn_check(&N, &C, &L, inp, dinp, "batchnorm dinp", err));
    CHECK_VEC(dgamma, "batchnorm dgamma");
    CHECK_VEC(dbeta, "batchnorm dbeta");
    CHECK_VEC(gamma, "batchnorm gamma");
    CHECK_VEC(save_mean, "batchnorm save_mean");
    CHECK_VEC(save_invstd, "batchnorm save_invstd");
    NN_CUDA_TRY(enter(vc, err));
    return nn_cuda_batchnorm_backward(vc, dinp ? dinp->data : NULL, dgamma->data,
                                      dbeta->data, dout->data, inp->data, gamma->data,
                                      save_mean->data, save_invstd->data, N, C, L, err);
}

/* ---- dropout ---------------------------------------------------------- */

static nn_status cuda_dropout_fwd(void *vc, nn_tensor *out, nn_tensor *mask,
                                  const nn_tensor *inp, double p, uint64_t seed, char *err)
{
    if (!(p >= 0 && p < 1))
        return FAIL(NN_ERR_ARG, "dropout p must be in [0, 1), got %g", p);
    NN_CUDA_TRY(dsame(out, "dropout output", inp, "dropout input", err));
    NN_CUDA_TRY(dsame(mask, "dropout mask", inp, "dropout input", err));
    NN_CUDA_TRY(enter(vc, err));
    const nn_real keep = (nn_real)(1.0 / (1.0 - p)); /* dropout.c's rounding */
    return nn_cuda_dropout_forward(vc, out->data, mask->data, inp->data, inp->size, p, keep,
                                   seed, err);
}

static nn_status cuda_dropout_bwd(void *vc, nn_tensor *dinp, const nn_tensor *dout,
                                  const nn_tensor *mask, char *err)
{
    NN_CUDA_TRY(dsame(dinp, "dropout dinp", dout, "dropout dout", err));
    NN_CUDA_TRY(dsame(dinp, "dropout dinp", mask, "dropout mask", err));
    NN_CUDA_TRY(enter(vc, err));
    return nn_cuda_dropout_backward(vc, dinp->data, dout->data, mask->data, dinp->size, err);
}

/* ---- optimizers ------------------------------------------------------- */

static nn_status cuda_optim_step(void *vc, nn_tensor *param, nn_tensor *state,
                                 const nn_tensor *grad, const nn_optim_params *p, long t,
                                 char *err)
{
    /* optim.c's checks, in its order */
    if (!p)
        return FAIL(NN_ERR_ARG, "optimizer params are NULL");
    if ((unsigned)p->rule > NN_ADAM)
        return FAIL(NN_ERR_ARG, "unknown update rule %d", (int)p->rule);
    if (!(p->learning_rate > 0) || !isfinite(p->learning_rate))
        return FAIL(NN_ERR_ARG, "learning_rate must be > 0, got %g", p->learning_rate);
    if (!param || !grad || !param->data || !grad->data)
        return FAIL(NN_ERR_ARG, "optimizer param or grad is NULL");
    if (param->device != NN_DEVICE_CUDA || grad->device != NN_DEVICE_CUDA)
        return FAIL(NN_ERR_ARG, "optimizer tensors are not in CUDA device memory");
    if (param->size != grad->size)
        return FAIL(NN_ERR_SHAPE, "param has %zu elements, grad %zu", param->size,
                    grad->size);
    const size_t n = param->size;
    const int slots = nn_optim_state_slots(p->rule);
    if (slots) {
        if (!state || !state->data || state->device != NN_DEVICE_CUDA)
            return FAIL(NN_ERR_ARG, "%s needs optimizer state", nn_update_rule_name(p->rule));
        if (state->size < (size_t)slots * n)
            return FAIL(NN_ERR_SHAPE, "optimizer state has %zu elements, needs %zu",
                        state->size, (size_t)slots * n);
    }
    if (p->rule == NN_ADAM && t < 1)
        return FAIL(NN_ERR_ARG, "adam step number must be >= 1, got %ld", t);
    if (n == 0)
        return NN_OK;
    NN_CUDA_TRY(enter(vc, err));
    return nn_cuda_optim_step(vc, param->data, slots ? state->data : NULL, grad->data, n, p,
                              t, err);
}

static nn_status cuda_l2_reg(void *vc, double *sumsq, nn_tensor *grad,
                             const nn_tensor *param, double reg, char *err)
{
    if (!sumsq || !grad || !param || !grad->data || !param->data)
        return FAIL(NN_ERR_ARG, "l2 reg: NULL argument");
    if (grad->device != NN_DEVICE_CUDA || param->device != NN_DEVICE_CUDA)
        return FAIL(NN_ERR_ARG, "l2 reg tensors are not in CUDA device memory");
    if (grad->size != param->size)
        return FAIL(NN_ERR_SHAPE, "param has %zu elements, grad %zu", param->size,
                    grad->size);
    if (!(reg >= 0))
        return FAIL(NN_ERR_ARG, "reg must be >= 0, got %g", reg);
    if (param->size == 0) {
        *sumsq = 0;
        return NN_OK;
    }
    NN_CUDA_TRY(enter(vc, err));
    return nn_cuda_l2_reg(vc, sumsq, grad->data, param->data, param->size, reg, err);
}

/* ---- minibatch gather ---------------------------------------------------- */

static nn_status cuda_gather(void *vc, nn_tensor *x, nn_tensor *y, const nn_tensor *images,
                             const nn_tensor *labels, const nn_tensor *plan, char *err)
{
    nn_cuda_ctx *c = vc;
    NN_CUDA_TRY(dcheck(images, "gather images", 4, (int[]){ 0, 0, 0, 0 }, err));
    const int count = images->shape[0], C = images->shape[1], H = images->shape[2],
              W = images->shape[3];
    NN_CUDA_TRY(dcheck(labels, "gather labels", 1, (int[]){ count }, err));
    NN_CUDA_TRY(dcheck(x, "gather x", 4, (int[]){ 0, C, H, W }, err));
    const int n = x->shape[0];
    NN_CUDA_TRY(dcheck(y, "gather y", 1, (int[]){ n }, err));
    NN_CUDA_TRY(dcheck(plan, "gather plan", 2, (int[]){ n, 4 }, err));
    NN_CUDA_TRY(enter(c, err));
    return nn_cuda_gather(c, x->data, y->data, images->data, labels->data, plan->data, n,
                          count, C, H, W, err);
}

/* ---- the backend ------------------------------------------------------ */

static const nn_backend_ops cuda_ops = {
    .name = "cuda",
    .device = NN_DEVICE_CUDA,
    .alloc = cuda_alloc,
    .release = cuda_release,
    .copy_to_device = cuda_copy_to_device,
    .copy_to_host = cuda_copy_to_host,
    .synchronize = cuda_synchronize,
    .copy_on_device = cuda_copy_on_device,
    .zero = cuda_zero,
    .free_ctx = cuda_free_ctx,
    .conv2d_fwd = cuda_conv2d_fwd,
    .conv2d_bwd = cuda_conv2d_bwd,
    .maxpool_fwd = cuda_maxpool_fwd,
    .maxpool_bwd = cuda_maxpool_bwd,
    .relu_fwd = cuda_relu_fwd,
    .relu_bwd = cuda_relu_bwd,
    .linear_fwd = cuda_linear_fwd,
    .linear_bwd = cuda_linear_bwd,
    .softmax_loss = cuda_softmax_loss,
    .batchnorm_fwd = cuda_batchnorm_fwd,
    .batchnorm_bwd = cuda_batchnorm_bwd,
    .dropout_fwd = cuda_dropout_fwd,
    .dropout_bwd = cuda_dropout_bwd,
    .optim_step = cuda_optim_step,
    .l2_reg = cuda_l2_reg,
    .gather = cuda_gather,
};

nn_status nn_cuda_backend_create(int device, nn_backend **out, char *err)
{
    if (!out)
        return FAIL(NN_ERR_ARG, "out is NULL");
    *out = NULL;
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        return FAIL(NN_ERR_CUDA, "no CUDA device: cudaGetDeviceCount: %s (%s)",
                    cudaGetErrorString(e), cudaGetErrorName(e));
    }
    if (device < 0 || device >= count)
        return FAIL(NN_ERR_ARG, "CUDA device %d does not exist (%d found)", device, count);
    nn_cuda_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return FAIL(NN_ERR_NOMEM, "out of memory");
    c->device = device;
    nn_status s = ctx_init(c, err);
    if (s == NN_OK) {
        s = nn_backend_new(&cuda_ops, c, out);
        if (s != NN_OK)
            FAIL(s, "cannot create the backend object: %s", nn_status_str(s));
    }
    if (s != NN_OK)
        cuda_free_ctx(c);
    return s;
}
