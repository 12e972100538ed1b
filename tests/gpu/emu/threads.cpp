/* threads.cpp: runs a grid of blocks of blockDim.x threads each, for emu.h.
 *
 * A launch first runs thread 0 of block 0 as a fiber. If it finishes
 * without reaching a barrier (__syncthreads, a warp shuffle), the kernel is
 * taken as barrier-free and every other thread runs as a plain call, one
 * after another. Otherwise every thread of every block runs as a fiber,
 * round robin: a fiber runs until it waits at a barrier, and a barrier
 * opens when all the threads it names wait there. A barrier reached by only
 * some of them (the others returned), or reached in a kernel taken as
 * barrier-free, is a bug: the emulator says so and aborts.
 *
 * Fibers are made once (makecontext) and reused by every block and launch;
 * switches are _setjmp/_longjmp, with no system call, and are announced to
 * AddressSanitizer when it is on. */
#undef _FORTIFY_SOURCE /* its longjmp check refuses jumps between stacks */
#include <setjmp.h>
#include <ucontext.h>
#include <cstring>
#include <memory>
#include <vector>
#include "emu.h"

#if defined(__SANITIZE_ADDRESS__)
#define EMU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define EMU_ASAN 1
#endif
#endif
#ifdef EMU_ASAN
#include <sanitizer/common_interface_defs.h>
#endif

namespace {

enum state { RUNNING, AT_BLOCK_BARRIER, AT_WARP_BARRIER, DONE };

const size_t STACK = 256 << 10; /* a kernel's frames, with a sanitizer's redzones */

struct fiber {
    jmp_buf at;  /* where it resumes */
    state st;
    void *fake;  /* ASan's save slot while it is switched out */
    std::vector<char> stack;
};

std::vector<std::unique_ptr<fiber>> fibers; /* thread index -> its fiber, made on first use */
jmp_buf scheduler;
void *sched_fake;            /* ASan's save slot for the scheduler */
const void *sched_bottom;    /* the scheduler's stack, for ASan */
size_t sched_size;
ucontext_t spawn_from, parked;
const std::function<void()> *body;
unsigned current;            /* the fiber running now */
bool in_fiber;
/* Warp shuffle values, [call parity][warp][lane]: consecutive shuffles use
 * alternate halves, so one barrier per shuffle is enough (a lane can only
 * write a half again after every lane has read it). */
double slots[2][32][32];
unsigned shuffles[1024];     /* per thread: shuffles done in this block */

[[noreturn]] void die(const char *what)
{
    fprintf(stderr, "emu: block %u thread %u: %s\n", blockIdx.x, threadIdx.x, what);
    abort();
}

/* ASan keeps a shadow of each stack: tell it before and after every switch. */
void switching(void **fake, const void *bottom, size_t size)
{
#ifdef EMU_ASAN
    __sanitizer_start_switch_fiber(fake, bottom, size);
#else
    (void)fake, (void)bottom, (void)size;
#endif
}

void switched(void *fake, const void **bottom, size_t *size)
{
#ifdef EMU_ASAN
    __sanitizer_finish_switch_fiber(fake, bottom, size);
#else
    (void)fake, (void)bottom, (void)size;
#endif
}

/* From the running fiber back to the scheduler; returns when resumed.
 * What changes between _setjmp and _longjmp lives in globals or the fiber,
 * never in locals (their values are not kept across the jump). */
void yield()
{
    fiber *f = fibers[current].get();
    if (!_setjmp(f->at)) {
        switching(&f->fake, sched_bottom, sched_size);
        _longjmp(scheduler, 1);
    }
    f = fibers[current].get();
    switched(f->fake, &sched_bottom, &sched_size);
}

/* From the scheduler into fiber t until it yields. */
void resume(unsigned t)
{
    current = t;
    threadIdx.x = t;
    if (!_setjmp(scheduler)) {
        switching(&sched_fake, fibers[t]->stack.data(), STACK);
        _longjmp(fibers[t]->at, 1);
    }
    switched(sched_fake, nullptr, nullptr);
}

void fiber_main()
{
    const unsigned me = current;
    switched(nullptr, &sched_bottom, &sched_size);
    /* Made: park back in spawn() until first resumed. */
    if (!_setjmp(fibers[me]->at)) {
        switching(&fibers[me]->fake, sched_bottom, sched_size);
        swapcontext(&parked, &spawn_from); /* never resumed through `parked` */
    }
    switched(fibers[me]->fake, &sched_bottom, &sched_size);
    for (;;) {
        (*body)();
        fibers[me]->st = DONE;
        yield(); /* resumed for the next block's thread `me` */
    }
}

void spawn(unsigned t)
{
    fibers[t].reset(new fiber);
    fiber *f = fibers[t].get();
    f->stack.resize(STACK);
    f->st = DONE;
    ucontext_t uc;
    getcontext(&uc);
    uc.uc_stack.ss_sp = f->stack.data();
    uc.uc_stack.ss_size = STACK;
    uc.uc_link = nullptr;
    makecontext(&uc, fiber_main, 0);
    current = t;
    switching(&sched_fake, f->stack.data(), STACK);
    swapcontext(&spawn_from, &uc);
    switched(sched_fake, nullptr, nullptr);
}

/* Readies threads 0..n-1 (making fibers as needed), except those below
 * `from`, which are already under way. */
void ready(unsigned from, unsigned n)
{
    if (fibers.size() < n)
        fibers.resize(n);
    for (unsigned t = from; t < n; t++) {
        if (!fibers[t])
            spawn(t);
        fibers[t]->st = RUNNING;
        shuffles[t] = 0;
    }
}

void wait(state s)
{
    if (!in_fiber)
        die("a barrier in a kernel whose thread 0 finished without one");
    fibers[current]->st = s;
    yield();
}

/* Opens the barriers every thread they name has reached; false: none. */
bool open_barriers(unsigned n)
{
    bool opened = false;
    for (unsigned w = 0; w * 32 < n; w++) {
        unsigned waiting = 0, done = 0;
        for (unsigned t = w * 32; t < w * 32 + 32; t++) {
            waiting += fibers[t]->st == AT_WARP_BARRIER;
            done += fibers[t]->st == DONE;
        }
        if (waiting == 32) {
            for (unsigned t = w * 32; t < w * 32 + 32; t++)
                fibers[t]->st = RUNNING;
            opened = true;
        } else if (waiting > 0 && waiting + done == 32) {
            die("a warp shuffle that some lanes of the warp never reach");
        }
    }
    if (opened)
        return true;
    unsigned at_block = 0, done = 0;
    for (unsigned t = 0; t < n; t++) {
        at_block += fibers[t]->st == AT_BLOCK_BARRIER;
        done += fibers[t]->st == DONE;
    }
    if (at_block == 0 || at_block + done < n)
        return false;
    if (done > 0)
        die("__syncthreads that some threads of the block never reach");
    for (unsigned t = 0; t < n; t++)
        fibers[t]->st = RUNNING;
    return true;
}

/* Runs the ready fibers 0..n-1 until all are done. */
void run_block(unsigned n)
{
    in_fiber = true;
    for (;;) {
        bool ran = false, all_done = true;
        for (unsigned t = 0; t < n; t++) {
            if (fibers[t]->st == RUNNING) {
                resume(t);
                ran = true;
            }
            all_done = all_done && fibers[t]->st == DONE;
        }
        if (all_done)
            break;
        if (!ran && !open_barriers(n))
            die("deadlock: threads wait at barriers that cannot open");
    }
    in_fiber = false;
}

} // namespace

void emu_run_grid(unsigned grid, unsigned block, const std::function<void()> &kernel)
{
    body = &kernel;
    gridDim.x = grid;
    blockDim.x = block;
    blockIdx.x = 0;
    ready(0, 1); /* the probe: thread 0 of block 0 */
    in_fiber = true;
    resume(0);
    in_fiber = false;
    const bool plain = fibers[0]->st == DONE;
    for (unsigned b = 0; b < grid; b++) {
        blockIdx.x = b;
        if (plain) {
            for (unsigned t = b == 0 ? 1 : 0; t < block; t++) {
                threadIdx.x = t;
                kernel();
            }
            continue;
        }
        ready(b == 0 ? 1 : 0, block); /* block 0's thread 0 waits at a barrier */
        run_block(block);
    }
}

void emu_syncthreads()
{
    wait(AT_BLOCK_BARRIER);
}

double emu_shfl_down(double v, unsigned delta)
{
    const unsigned lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const unsigned half = shuffles[threadIdx.x]++ & 1;
    slots[half][warp][lane] = v;
    wait(AT_WARP_BARRIER); /* every lane has written */
    return lane + delta < 32 ? slots[half][warp][lane + delta] : v;
}
