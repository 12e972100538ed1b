/* emu.h: just enough CUDA C++ for g++ to compile nn_cuda's kernels as host
 * code. Force-included (-include) into each .cu file after rewrite.cmake
 * has turned its launches `k<<<grid, block, shmem, stream>>>(args)` into
 * `emu_launch(grid, block, k, args)`.
 *
 * The emulated device runs every block with ONE thread (blockDim.x == 1),
 * so kernels are checked for their index arithmetic and their results, not
 * for races between threads; reduce.cuh here stands in for the warp-shuffle
 * block reductions. The stream is lazy: launches, copies and GEMMs are
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
#define __shared__ static
using std::min;

/* Appends job to the stream (queue.cpp). */
void emu_enqueue(std::function<void()> job);

/* block is checked as a real launch would (and as reduce.cuh's warp
 * reductions need: a multiple of 32), then each block runs on one thread. */
template <typename Kernel, typename... Args>
void emu_launch(unsigned grid, unsigned block, Kernel kernel, Args... args)
{
    if (grid == 0 || block == 0 || block > 1024 || block % 32 != 0) {
        fprintf(stderr, "emu: kernel launched with %u blocks of %u threads\n", grid, block);
        abort();
    }
    emu_enqueue([=] {
        gridDim.x = grid;
        blockDim.x = 1;
        threadIdx.x = 0;
        for (unsigned b = 0; b < grid; b++) {
            blockIdx.x = b;
            kernel(args...);
        }
    });
}

#endif
