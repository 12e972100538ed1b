/* runtime.c: the emulated CUDA runtime and cuBLAS that tests/gpu/emu links
 * nn_cuda against: one device, host memory as device memory (filled with
 * 0xA5 bytes, as uninitialised GPU memory holds garbage), and a lazy stream
 * (emu.h). Copies, memsets and GEMMs are queued like kernels; waits run
 * the queue (an event wait, up to its marker). Copies are checked against
 * their kind. GEMMs are column-major reference loops that check cuBLAS's
 * leading-dimension rules and read alpha and beta at the call, as cuBLAS
 * does with host scalars. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cublas_v2.h"
#include "cuda_runtime_api.h"

#include <stdbool.h>

void emu_enqueue_c(void (*fn)(void *), void *arg); /* queue.cpp */
bool emu_run_one(void);
void emu_drain(void);

static cudaError_t last = cudaSuccess;

static cudaError_t fail(cudaError_t e)
{
    last = e;
    return e;
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "emu: out of host memory\n");
        abort();
    }
    return p;
}

/* ---- device, streams, events ------------------------------------------ */

cudaError_t cudaGetDeviceCount(int *n)
{
    *n = 1;
    return cudaSuccess;
}

cudaError_t cudaSetDevice(int d)
{
    return d == 0 ? cudaSuccess : fail(cudaErrorInvalidValue);
}

cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *p, int d)
{
    if (d != 0)
        return fail(cudaErrorInvalidValue);
    memset(p, 0, sizeof *p);
    strcpy(p->name, "Emulated GPU (tests/gpu/emu, on the CPU)");
    p->major = 9;
    p->minor = 0;
    p->multiProcessorCount = 1;
    p->totalGlobalMem = (size_t)1 << 30;
    return cudaSuccess;
}

cudaError_t cudaStreamCreate(cudaStream_t *s)
{
    *s = xmalloc(1);
    return cudaSuccess;
}

cudaError_t cudaStreamDestroy(cudaStream_t s)
{
    emu_drain();
    free(s);
    return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t s)
{
    (void)s;
    emu_drain();
    return cudaSuccess;
}

/* An event is a marker queued in the stream: waiting for it runs the queue
 * up to the marker and no further, so work queued after the record is
 * still pending, as on a device that has just got there. An event never
 * recorded is complete at once. */
struct emu_event {
    long pending; /* markers queued and not yet reached */
};

static void reach(void *arg)
{
    ((struct emu_event *)arg)->pending--;
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned flags)
{
    (void)flags;
    *e = xmalloc(sizeof **e);
    (*e)->pending = 0;
    return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s)
{
    (void)s;
    e->pending++;
    emu_enqueue_c(reach, e);
    return cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t e)
{
    while (e->pending > 0 && emu_run_one()) {
    }
    return cudaSuccess;
}

cudaError_t cudaEventDestroy(cudaEvent_t e)
{
    emu_drain(); /* its markers must not reach freed memory */
    free(e);
    return cudaSuccess;
}

/* ---- memory ------------------------------------------------------------ */

/* Device allocations, so that a copy can be checked against its kind. */
static struct range {
    const char *p;
    size_t n;
} *device;
static size_t ndevice, capdevice;

static int on_device(const void *p, size_t n)
{
    for (size_t i = 0; i < ndevice; i++)
        if ((const char *)p >= device[i].p && (const char *)p + n <= device[i].p + device[i].n)
            return 1;
    return 0;
}

cudaError_t cudaMalloc(void **p, size_t n)
{
    if (ndevice == capdevice) {
        struct range *d = realloc(device, sizeof *d * (capdevice ? 2 * capdevice : 64));
        if (!d)
            return fail(cudaErrorMemoryAllocation);
        device = d;
        capdevice = capdevice ? 2 * capdevice : 64;
    }
    *p = malloc(n ? n : 1);
    if (!*p)
        return fail(cudaErrorMemoryAllocation);
    memset(*p, 0xA5, n);
    device[ndevice++] = (struct range){ *p, n ? n : 1 };
    return cudaSuccess;
}

cudaError_t cudaFree(void *p)
{
    emu_drain(); /* cudaFree waits for the device */
    for (size_t i = 0; p && i < ndevice; i++)
        if (device[i].p == p) {
            device[i] = device[--ndevice];
            break;
        }
    if (ndevice == 0) {
        free(device);
        device = NULL;
        capdevice = 0;
    }
    free(p);
    return cudaSuccess;
}

cudaError_t cudaMallocHost(void **p, size_t n)
{
    *p = malloc(n ? n : 1);
    return *p ? cudaSuccess : fail(cudaErrorMemoryAllocation);
}

cudaError_t cudaFreeHost(void *p)
{
    emu_drain();
    free(p);
    return cudaSuccess;
}

typedef struct copy_job {
    void *dst;
    const void *src;
    size_t n;
    int value; /* memset: the byte; copy: -1 */
} copy_job;

static void run_copy(void *arg)
{
    copy_job *j = arg;
    if (j->value < 0)
        memmove(j->dst, j->src, j->n);
    else
        memset(j->dst, j->value, j->n);
    free(j);
}

static void queue_copy(void *dst, const void *src, size_t n, int value)
{
    copy_job *j = xmalloc(sizeof *j);
    *j = (copy_job){ dst, src, n, value };
    emu_enqueue_c(run_copy, j);
}

/* Both ends must be where kind says: a mix-up that host memory standing in
 * for device memory would hide. */
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n, enum cudaMemcpyKind kind,
                            cudaStream_t s)
{
    (void)s;
    const int want_dst = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
    const int want_src = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
    if (n > 0 && (on_device(dst, n) != want_dst || on_device(src, n) != want_src)) {
        fprintf(stderr, "emu: cudaMemcpyAsync kind %d from %s to %s memory\n", (int)kind,
                on_device(src, n) ? "device" : "host", on_device(dst, n) ? "device" : "host");
        return fail(cudaErrorInvalidValue);
    }
    queue_copy(dst, src, n, -1);
    return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void *dst, int v, size_t n, cudaStream_t s)
{
    (void)s;
    if (n > 0 && !on_device(dst, n)) {
        fprintf(stderr, "emu: cudaMemsetAsync on host memory\n");
        return fail(cudaErrorInvalidValue);
    }
    queue_copy(dst, NULL, n, v & 0xff);
    return cudaSuccess;
}

cudaError_t cudaGetLastError(void)
{
    cudaError_t e = last;
    last = cudaSuccess;
    return e;
}

const char *cudaGetErrorString(cudaError_t e)
{
    return e == cudaErrorMemoryAllocation ? "out of memory (emulated)" : "emulated error";
}

const char *cudaGetErrorName(cudaError_t e)
{
    return e == cudaErrorMemoryAllocation ? "cudaErrorMemoryAllocation" : "cudaErrorEmulated";
}

/* ---- cuBLAS ------------------------------------------------------------ */

cublasStatus_t cublasCreate(cublasHandle_t *h)
{
    *h = xmalloc(1);
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasDestroy(cublasHandle_t h)
{
    free(h);
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t s)
{
    (void)h;
    (void)s;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetMathMode(cublasHandle_t h, cublasMath_t m)
{
    (void)h;
    (void)m;
    return CUBLAS_STATUS_SUCCESS;
}

const char *cublasGetStatusString(cublasStatus_t s)
{
    return s == CUBLAS_STATUS_INVALID_VALUE ? "an invalid value (emulated)" : "emulated";
}

const char *cublasGetStatusName(cublasStatus_t s)
{
    return s == CUBLAS_STATUS_INVALID_VALUE ? "CUBLAS_STATUS_INVALID_VALUE" : "EMULATED";
}

static int max1(int v)
{
    return v > 1 ? v : 1;
}

/* cuBLAS's argument rules for column-major C (m,n) = op(A) (m,k) op(B) (k,n). */
static cublasStatus_t gemm_args(cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                                int k, int lda, int ldb, int ldc, int batch)
{
    const char *bad = m < 0 || n < 0 || k < 0 || batch < 0                    ? "a size"
                      : lda < (ta == CUBLAS_OP_N ? max1(m) : max1(k))           ? "lda"
                      : ldb < (tb == CUBLAS_OP_N ? max1(k) : max1(n))           ? "ldb"
                      : ldc < max1(m)                                           ? "ldc"
                                                                                : NULL;
    if (!bad)
        return CUBLAS_STATUS_SUCCESS;
    fprintf(stderr, "emu: GEMM with a bad %s (m %d n %d k %d lda %d ldb %d ldc %d)\n", bad, m,
            n, k, lda, ldb, ldc);
    return CUBLAS_STATUS_INVALID_VALUE;
}

#define EMU_GEMM(T, name, name_batched)                                                   \
    typedef struct name##_job {                                                           \
        cublasOperation_t ta, tb;                                                         \
        int m, n, k, lda, ldb, ldc, batch;                                                \
        T alpha, beta;                                                                    \
        const T *A, *B;                                                                   \
        T *C;                                                                             \
        long long sA, sB, sC;                                                             \
    } name##_job;                                                                         \
    static void name##_run(void *arg)                                                     \
    {                                                                                     \
        const name##_job *g = arg;                                                        \
        for (int b = 0; b < g->batch; b++) {                                              \
            const T *a = g->A + b * g->sA, *bm = g->B + b * g->sB;                        \
            T *c = g->C + b * g->sC;                                                      \
            for (int j = 0; j < g->n; j++)                                                \
                for (int i = 0; i < g->m; i++) {                                          \
                    double s = 0;                                                         \
                    for (int l = 0; l < g->k; l++) {                                      \
                        const T av = g->ta == CUBLAS_OP_N ? a[i + (size_t)l * g->lda]     \
                                                          : a[l + (size_t)i * g->lda];    \
                        const T bv = g->tb == CUBLAS_OP_N ? bm[l + (size_t)j * g->ldb]    \
                                                          : bm[j + (size_t)l * g->ldb];   \
                        s += (double)av * bv;                                             \
                    }                                                                     \
                    T *cv = &c[i + (size_t)j * g->ldc];                                   \
                    /* beta == 0: C is not read (it may hold NaN garbage) */              \
                    *cv = (T)(g->alpha * s + (g->beta == 0 ? 0 : g->beta * (double)*cv)); \
                }                                                                         \
        }                                                                                 \
        free(arg);                                                                        \
    }                                                                                     \
    cublasStatus_t name_batched(cublasHandle_t h, cublasOperation_t ta,                   \
                                cublasOperation_t tb, int m, int n, int k,                \
                                const T *alpha, const T *A, int lda, long long sA,        \
                                const T *B, int ldb, long long sB, const T *beta, T *C,   \
                                int ldc, long long sC, int batch)                         \
    {                                                                                     \
        (void)h;                                                                          \
        cublasStatus_t st = gemm_args(ta, tb, m, n, k, lda, ldb, ldc, batch);             \
        if (st != CUBLAS_STATUS_SUCCESS)                                                  \
            return st;                                                                    \
        name##_job *g = xmalloc(sizeof *g);                                               \
        *g = (name##_job){ ta, tb, m, n, k, lda, ldb, ldc, batch, *alpha, *beta,          \
                           A, B, C, sA, sB, sC };                                         \
        emu_enqueue_c(name##_run, g);                                                     \
        return CUBLAS_STATUS_SUCCESS;                                                     \
    }                                                                                     \
    cublasStatus_t name(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb,     \
                        int m, int n, int k, const T *alpha, const T *A, int lda,         \
                        const T *B, int ldb, const T *beta, T *C, int ldc)                \
    {                                                                                     \
        return name_batched(h, ta, tb, m, n, k, alpha, A, lda, 0, B, ldb, 0, beta, C,    \
                            ldc, 0, 1);                                                   \
    }

EMU_GEMM(float, cublasSgemm, cublasSgemmStridedBatched)
EMU_GEMM(double, cublasDgemm, cublasDgemmStridedBatched)
