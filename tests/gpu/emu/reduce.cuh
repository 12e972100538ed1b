/* reduce.cuh (emulated): stands in for nn_cuda/src/reduce.cuh, whose block
 * reductions use warp shuffles. With one thread per block (emu.h) a block's
 * sum or max is the thread's own value. grid_for and GRID_STRIDE_LOOP are
 * the real file's. */
#ifndef NN_CUDA_REDUCE_CUH
#define NN_CUDA_REDUCE_CUH

#include <math.h>
#include "common.h"

static inline unsigned grid_for(size_t n)
{
    size_t b = (n + NN_CUDA_BLOCK - 1) / NN_CUDA_BLOCK;
    return (unsigned)(b > 65536 ? 65536 : b);
}

#define GRID_STRIDE_LOOP(i, n)                                                 \
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n);    \
         i += (size_t)gridDim.x * blockDim.x)

static inline double block_sum(double v)
{
    return v;
}

static inline double block_max(double v)
{
    return v;
}

#endif
