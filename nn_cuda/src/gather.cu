/* gather.cu: minibatches from a data set kept in device memory, so a
 * training step uploads its (n,4) plan instead of its images. The images
 * were normalised on the host when uploaded; this only permutes, shifts and
 * mirrors them, so a batch matches nn_dataset_gather's bit for bit. */
#include "reduce.cuh"

/* x (n,C,H,W), y (n); images (count,C,H,W), labels (count); plan (n,4):
 * index, dy, dx, flip. total = n*C*H*W. Plan entries are tested as floats
 * before any conversion, so a bad entry gives zeros (and label -1), never
 * a read outside images. */
__global__ void gather_kernel(nn_real *x, nn_real *y, const nn_real *images,
                              const nn_real *labels, const nn_real *plan, int count,
                              int C, int H, int W, size_t total)
{
    const size_t hw = (size_t)H * W, chw = (size_t)C * hw;
    GRID_STRIDE_LOOP(e, total) {
        const size_t j = e / chw, r = e - j * chw;
        const int c = (int)(r / hw), rem = (int)(r - (size_t)c * hw);
        const int row = rem / W, col = rem - row * W;
        const nn_real *p = plan + 4 * j;
        const nn_real fi = p[0];
        const int known = fi >= 0 && fi < (nn_real)count; /* false for NaN */
        const int from_col = p[3] != 0 ? W - 1 - col : col; /* mirror after the shift */
        const nn_real sy = (nn_real)row + p[1], sx = (nn_real)from_col + p[2];
        nn_real v = 0;
        if (known && sy >= 0 && sy < (nn_real)H && sx >= 0 && sx < (nn_real)W)
            v = images[(size_t)(int)fi * chw + (size_t)c * hw + (size_t)(int)sy * W +
                       (int)sx];
        x[e] = v;
        if (r == 0)
            y[j] = known ? labels[(int)fi] : (nn_real)-1;
    }
}

extern "C" nn_status nn_cuda_gather(nn_cuda_ctx *ctx, nn_real *x, nn_real *y,
                                    const nn_real *images, const nn_real *labels,
                                    const nn_real *plan, int n, int count, int C, int H,
                                    int W, char *err)
{
    const size_t total = (size_t)n * C * H * W;
    gather_kernel<<<grid_for(total), NN_CUDA_BLOCK, 0, ctx->stream>>>(x, y, images, labels,
                                                                      plan, count, C, H, W,
                                                                      total);
    NN_CUDA_CHECK_LAUNCH();
    return NN_OK;
}
