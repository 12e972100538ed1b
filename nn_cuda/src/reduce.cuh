/* reduce.cuh: private device helpers shared by the .cu files: the grid size
 * of a grid-stride loop, and block-wide sum and max.
 *
 * The block reductions need blockDim.x to be a multiple of 32 (all launchers
 * use NN_CUDA_BLOCK) and must be reached by every thread of the block. Their
 * order of operations is fixed by the block size, so results are
 * deterministic run to run. */
#ifndef NN_CUDA_REDUCE_CUH
#define NN_CUDA_REDUCE_CUH

#include <math.h>
#include "common.h"

/* Blocks for n items at NN_CUDA_BLOCK threads, capped: kernels loop with a
 * grid stride, so any n works. Callers never pass n == 0. */
static inline unsigned grid_for(size_t n)
{
    size_t b = (n + NN_CUDA_BLOCK - 1) / NN_CUDA_BLOCK;
    return (unsigned)(b > 65536 ? 65536 : b);
}

#define GRID_STRIDE_LOOP(i, n)                                                 \
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n);    \
         i += (size_t)gridDim.x * blockDim.x)

/* The sum of v over the block, returned to every thread. */
static __device__ inline double block_sum(double v)
{
    __shared__ double part[32];
    __shared__ double total;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_down_sync(0xffffffffu, v, o);
    if (lane == 0)
        part[warp] = v;
    __syncthreads();
    if (warp == 0) {
        const int nwarps = (int)(blockDim.x >> 5);
        v = lane < nwarps ? part[lane] : 0.0;
        for (int o = 16; o > 0; o >>= 1)
            v += __shfl_down_sync(0xffffffffu, v, o);
        if (lane == 0)
            total = v;
    }
    __syncthreads();
    v = total;
    __syncthreads(); /* part and total may be reused by the next call */
    return v;
}

/* The maximum of v over the block, returned to every thread. Threads with
 * nothing to contribute pass -INFINITY. */
static __device__ inline double block_max(double v)
{
    __shared__ double part[32];
    __shared__ double total;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    for (int o = 16; o > 0; o >>= 1)
        v = fmax(v, __shfl_down_sync(0xffffffffu, v, o));
    if (lane == 0)
        part[warp] = v;
    __syncthreads();
    if (warp == 0) {
        const int nwarps = (int)(blockDim.x >> 5);
        v = lane < nwarps ? part[lane] : -INFINITY;
        for (int o = 16; o > 0; o >>= 1)
            v = fmax(v, __shfl_down_sync(0xffffffffu, v, o));
        if (lane == 0)
            total = v;
    }
    __syncthreads();
    v = total;
    __syncthreads();
    return v;
}

#endif
