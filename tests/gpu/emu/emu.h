/* emu.h: just enough CUDA C++ for g++ to compile nn_cuda's kernels as host
 * code. Force-included (-include) into each .cu file after rewrite.cmake
 * has turned its launches `k<<<grid, block, shmem, stream>>>(args)` into
 * `emu_launch(grid, block, k, args)`.
 *
 * Each block runs its blockDim.x threads (threads.cpp): kernels without
 * barriers as plain calls, one thread after another; kernels with
 * __syncthreads or warp shuffles as fibers that switch at each barrier, so
 * nn_cuda/src/reduce.cuh's block reductions run as written. Warps do not
 * run in lockstep here: code relying on that without a barrier is not
 * caught. The stream is lazy: launches, copies and GEMMs are
 * queued and run only when the host waits (stream or event synchronize,
 * cudaFree, cudaFreeHost), so host code that reads a result, or reuses a
 * buffer, before waiting sees what a real asynchronous GPU might show. */
#ifndef EMU_H
#define EMU_H

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>

struct emu_dim {
    unsigned x;
};
extern emu_dim blockIdx, threadIdx, blockDim, gridDim;

#define __global__
#define __device__
/* Blocks run one after another, so a block's shared memory can be static. */
#define __shared__ static
using std::min;

/* threads.cpp */
void emu_run_grid(unsigned grid, unsigned block, const std::function<void()> &kernel);
void emu_syncthreads();
double emu_shfl_down(double v, unsigned delta);

#define __syncthreads() emu_syncthreads()
template <typename T> T __shfl_down_sync(unsigned mask, T v, unsigned delta)
{
    (void)mask; /* nn_cuda always passes the full warp */
    return (T)emu_shfl_down((double)v, delta);
}

/* Appends job to the stream (queue.cpp). */
void emu_enqueue(std::function<void()> job);

/* block is checked as a real launch would, and as reduce.cuh's warp
 * reductions need (a multiple of 32). */
template <typename Kernel, typename... Args>
void emu_launch(unsigned grid, unsigned block, Kernel kernel, Args... args)
{
    if (grid == 0 || block == 0 || block > 1024 || block % 32 != 0) {
        fprintf(stderr, "emu: kernel launched with %u blocks of %u threads\n", grid, block);
        abort();
    }
    emu_enqueue([=] { emu_run_grid(grid, block, [&] { kernel(args...); }); });
}

#endif
