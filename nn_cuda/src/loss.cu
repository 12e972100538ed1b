/* loss.cu: softmax cross-entropy, the head of the backward pass. One block
 * per row (grid-stride over rows), arithmetic in double as on the CPU; the
 * mean loss is folded on the device in a fixed order into a result slot
 * that reaches the host when the caller synchronises. Not here: other
 * losses. */
#include "reduce.cuh"

/* ---- kernels ---------------------------------------------------------- */

/* scores, dscores (N,M); labels (N) nn_real-coded. Block b handles rows b,
 * b + gridDim.x, ...; thread 0 adds their losses in row order into
 * part[b] and records the first bad row (or -1) in bad[b]. dscores, when
 * not NULL, is overwritten with (softmax - onehot) / N. */
__global__ void softmax_loss_kernel(double *part, double *bad, nn_real *dscores,
                                    const nn_real *scores, const nn_real *labels,
                                    int N, int M)
{
    double total = 0, first_bad = -1;
    for (int n = blockIdx.x; n < N; n += gridDim.x) {
        const double l = labels[n];
        /* The CPU's test: an integer in 0..M-1 (NaN fails it). */
        if (!(l >= 0 && l < M) || l != (double)(int)l) {
            if (first_bad < 0)
                first_bad = n;
            continue; /* uniform over the block: every thread skips */
        }
        const int label = (int)l;
        const nn_real *s = scores + (size_t)n * M;
        double mx = -INFINITY;
        for (int m = threadIdx.x; m < M; m += blockDim.x)
            mx = fmax(mx, (double)s[m]);
        mx = block_max(mx);
        double z = 0;
        for (int m = threadIdx.x; m < M; m += blockDim.x)
            z += exp(s[m] - mx);
        const double logz = log(block_sum(z));
        total += logz - (s[label] - mx);
        if (dscores) {
            nn_real *d = dscores + (size_t)n * M;
            for (int m = threadIdx.x; m < M; m += blockDim.x) {
                nn_real v = (nn_real)(exp(s[m] - mx - logz) / N);
                if (m == label)
                    v -= (nn_real)(1.0 / N);
                d[m] = v;
            }
        }
    }
    if (threadIdx.x == 0) {
        part[blockIdx.x] = total;
        bad[blockIdx.x] = first_bad;
    }
}

/* One thread: result = the mean loss, or -(first bad row + 1) when a label
 * was bad (the loss itself is never negative, so the sign tells). */
__global__ void softmax_finish_kernel(double *result, const double *part,
                                      const double *bad, int nparts, int N)
{
    if (threadIdx.x != 0 || blockIdx.x != 0)
        return;
    double total = 0, first_bad = -1;
    for (int b = 0; b < nparts; b++) {
        total += part[b];
        if (bad[b] >= 0 && (first_bad < 0 || bad[b] < first_bad))
            first_bad = bad[b];
    }
    *result = first_bad >= 0 ? -(first_bad + 1) : total / N;
}

/* ---- launcher --------------------------------------------------------- */

extern "C" nn_status nn_cuda_softmax_loss(nn_cuda_ctx *ctx, double *loss,
                                          nn_real *dscores, const nn_real *scores,
                                          const nn_real *labels, int N, int M,
                                          char *err)
{
    const int blocks = N < NN_CUDA_RED_PARTS ? N : NN_CUDA_RED_PARTS;
    /* Short rows (10 classes) leave most of a 256-thread block idle; 128 is
     * a compromise that keeps wide rows (1000 classes) fast too. */
    const int threads = M <= 128 ? 32 : 128;
    double *part = ctx->red, *bad = ctx->red + NN_CUDA_RED_PARTS, *result;
    NN_CUDA_TRY(nn_cuda_defer(ctx, &result, loss, M, err));
    softmax_loss_kernel<<<blocks, threads, 0, ctx->stream>>>(part, bad, dscores, scores,
                                                             labels, N, M);
    NN_CUDA_CHECK_LAUNCH();
    softmax_finish_kernel<<<1, 32, 0, ctx->stream>>>(result, part, bad, blocks, N);
    NN_CUDA_CHECK_LAUNCH();
    return NN_OK;
}
