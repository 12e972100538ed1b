/* queue.cpp: the emulated device's one stream, a FIFO of jobs run in order
 * when the host waits (see emu.h). */
#include <deque>
#include "emu.h"

emu_dim blockIdx, threadIdx, blockDim, gridDim;

static std::deque<std::function<void()>> queue;

void emu_enqueue(std::function<void()> job)
{
    queue.push_back(std::move(job));
}

/* For runtime.c: copies, memsets and GEMMs. */
extern "C" void emu_enqueue_c(void (*fn)(void *), void *arg)
{
    emu_enqueue([=] { fn(arg); });
}

/* Runs the oldest job; false when there is none. */
extern "C" bool emu_run_one(void)
{
    if (queue.empty())
        return false;
    std::function<void()> job = std::move(queue.front());
    queue.pop_front();
    job();
    return true;
}

extern "C" void emu_drain(void)
{
    while (emu_run_one()) {
    }
}
