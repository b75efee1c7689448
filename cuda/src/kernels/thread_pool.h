// A small persistent thread pool for the CPU kernels.
//
// Why persistent: creating threads costs tens of microseconds each, as much as a mid-sized
// matmul, so workers are started once. Between jobs a worker polls for 50 us (the next kernel
// of a step usually comes sooner, and waking a sleeping thread costs 25-200 us on a VM), then
// sleeps on a condition variable: a worker never spins for long, since on a 2-core machine it
// would take the core the JS thread or another process needs.
//
// Several jobs at once: run() is called from the JS thread (sync kernels), from libuv's thread
// pool (async kernels) and from every worker thread of a threads job. Each caller posts its job
// and takes part in it; a pool worker joins the open job with the fewest workers, so the pool's
// threads spread evenly over the callers in kernels (before the thirty-sixth session one job ran
// at a time and a second caller ran its tasks alone: on 16 cores, of two ranks of a threads job
// one computed on 15 threads and the other on 1). Every caller in kernels holds a core, so that
// many workers step aside. Tasks are handed out dynamically, so a worker that wakes late simply
// finds no task left. Results never depend on which thread ran a task (kernels split work so
// that every output element is computed by one task in a fixed order).
#pragma once

#include <cstddef>
#include <functional>

namespace pleat {

// Threads a job may use, the calling thread included. Default: the number of cores.
unsigned pool_threads();

// Sets the thread count (1..1024) and returns the count now in effect, which is lower than
// asked when the OS refuses to start a thread. Waits for the jobs in flight to finish (callers
// meanwhile run their tasks alone).
unsigned set_pool_threads(unsigned n);

// Adds `delta` to the threads outside the pool that hold a core now (the other workers of a threads
// job that are awake: runtime/threads/KernelThreads.ts). That many pool workers step aside, as for
// callers running inline; a worker of a threads job that sleeps on its bell gives its core back,
// and a pool worker that stepped aside from the job in flight takes up its tasks left.
int pool_add_busy(int delta);

// Runs fn(t) for every t in [0, tasks) on up to pool_threads() threads, the caller included,
// and returns when all have finished. fn must not throw. Called from inside a task, it runs its
// tasks on the calling thread.
void pool_run(unsigned tasks, const std::function<void(unsigned)>& fn);

// pool_run over tasks of unequal size, the largest first (the longest-processing-time rule): the
// pool hands tasks out in order as threads come free, so a large task taken last would leave the
// other threads waiting for it. fn(t) for every t in [0, tasks), `size(t)` its relative work.
void pool_run_largest_first(unsigned tasks, const std::function<size_t(unsigned)>& size, const std::function<void(unsigned)>& fn);

// Memory-bound kernels moving fewer bytes than this stay on one thread: below it the wake-up of a
// pool thread (tens of microseconds) costs more than the second core's bandwidth saves.
constexpr size_t kPoolMinBytes = size_t{1} << 20;

// Calls fn(begin, end) on contiguous ranges covering [0, n), a few per thread, when `bytes` (the
// traffic of the whole call) is at least kPoolMinBytes; otherwise fn(0, n) on the caller.
void pool_for(size_t n, size_t bytes, const std::function<void(size_t, size_t)>& fn);

}  // namespace pleat
