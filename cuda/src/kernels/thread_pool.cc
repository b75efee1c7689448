// Persistent thread pool (see thread_pool.h).
#include "thread_pool.h"

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

namespace pleat {

namespace {

// One caller's job. Its slot is taken under Pool::m and given back once the caller closed the job
// and every worker that joined it has left.
struct Job {
  const std::function<void(unsigned)>* fn = nullptr;
  unsigned tasks = 0;
  unsigned cap = 0;    // workers that may be in it at once (tasks - 1: the caller takes one)
  bool used = false;   // the slot holds a job
  bool open = false;   // a worker may still join; closed once the caller ran out of tasks
  std::atomic<unsigned> next{0};    // the next task to hand out
  std::atomic<unsigned> active{0};  // workers in the job now
};

// Jobs in flight at once: one per caller in kernels (the ranks' threads of a threads job, libuv's
// threads running async kernels). A caller finding every slot taken runs its tasks alone.
constexpr unsigned kSlots = 32;

struct Pool {
  std::mutex resize;  // one set_pool_threads at a time
  std::mutex m;       // guards everything below but the atomics
  std::condition_variable wake;  // workers: a job was posted, a core came free, the size changed
  std::condition_variable done;  // callers: their job's workers left; a resize: a slot came free
  std::vector<std::thread> workers;
  // Workers that should exist (threads - 1); a worker above it exits. Written under m, read by
  // working threads without it (stepping_aside).
  std::atomic<unsigned> wanted{0};
  bool started = false;
  bool resizing = false;  // callers run their tasks alone until the resize is done
  unsigned used = 0;      // slots holding a job
  // Bumped under m by every posted job, so that spinning threads can poll it without the lock.
  std::atomic<uint64_t> generation{0};
  Job jobs[kSlots];
};

// How long a thread polls before it blocks: a worker after its job waiting for the next one, and
// the caller waiting for the workers. Waking a blocked thread costs 25 us back to back and up to
// 200 us after an idle millisecond on the 2-vCPU VM this was measured on (the idle vCPU halts
// and the host must reschedule it); kernels of one training step follow each other within far
// less, so a short poll keeps them off that path, for at most this much CPU per job.
constexpr std::chrono::microseconds kSpin{50};

// Callers inside pool_run now (their own thread computes: it holds a core). All but one take a
// core the pool's workers would otherwise use, so that many workers step aside (the highest
// indices stop taking tasks, between tasks, and do not poll): the threads in kernels never
// outnumber the pool's threads. Without this, on 2 cores a GEMM of one rank ran on 3 threads (its
// caller, a pool worker, the other rank's GEMM on its own thread) and both ranks' kernels slowed.
std::atomic<unsigned> callers{0};

// Threads outside the pool that hold a core now (pool_add_busy): awake workers of a threads job
// other than the caller. A caller in kernels is one of them, so the two counts overlap: the
// larger one is how many cores the pool's workers leave.
std::atomic<int> busy_outside{0};

// Whether the running thread is inside a task: a kernel a task calls runs its own tasks inline
// (the pool's threads are already spread over the jobs, and a nested job would count its thread
// twice).
thread_local bool t_in_task = false;

// The cores the pool's workers leave when `in_kernels` callers are in kernels (see callers).
unsigned cores_taken(unsigned in_kernels) {
  const int busy = busy_outside.load(std::memory_order_relaxed);
  const unsigned others = in_kernels > 1 ? in_kernels - 1 : 0;
  return busy > static_cast<int>(others) ? static_cast<unsigned>(busy) : others;
}

// Whether worker `index` should leave the cores to callers and busy threads.
bool stepping_aside(const Pool* p, unsigned index) {
  return index + cores_taken(callers.load(std::memory_order_relaxed)) >= p->wanted.load(std::memory_order_relaxed);
}

// The open job with tasks left that has the fewest workers (the lowest slot among equals), so the
// workers spread evenly over the callers in kernels; null when none. With p->m held.
Job* pick_job(Pool* p) {
  Job* best = nullptr;
  unsigned fewest = 0;
  for (Job& j : p->jobs) {
    if (!j.used || !j.open || j.next.load(std::memory_order_relaxed) >= j.tasks) continue;
    const unsigned in_it = j.active.load(std::memory_order_relaxed);
    if (in_it >= j.cap) continue;
    if (best == nullptr || in_it < fewest) {
      best = &j;
      fewest = in_it;
    }
  }
  return best;
}

// Polls `done()` (with pause) for up to kSpin; true when it became true.
template <typename Done>
bool spin_until(Done done) {
  const auto until = std::chrono::steady_clock::now() + kSpin;
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      if (done()) return true;
      _mm_pause();
    }
    if (std::chrono::steady_clock::now() >= until) return false;
  }
}

// Never destroyed: workers sleep on its members, and joining threads from a static destructor
// at process exit can deadlock inside the Node runtime. The OS reclaims the threads.
Pool& pool() {
  static Pool* p = [] {
    auto* created = new Pool;
    const unsigned hw = std::thread::hardware_concurrency();
    created->wanted = (hw == 0 ? 1 : hw) - 1;
    return created;
  }();
  return *p;
}

// Runs job's tasks until none is left or the worker must step aside.
void take_tasks(Pool* p, unsigned index, Job* job) {
  t_in_task = true;
  while (!stepping_aside(p, index)) {
    const unsigned t = job->next.fetch_add(1, std::memory_order_relaxed);
    if (t >= job->tasks) break;
    (*job->fn)(t);
  }
  t_in_task = false;
}

void worker_loop(Pool* p, unsigned index) {
  std::unique_lock<std::mutex> lk(p->m);
  for (;;) {
    Job* job = nullptr;
    const auto ready = [&] {
      if (index >= p->wanted) return true;
      if (stepping_aside(p, index)) return false;
      job = pick_job(p);
      return job != nullptr;
    };
    if (!ready()) {
      // Nothing to join: poll for the next job a while, then sleep until one is posted or a
      // core comes free (pool_add_busy, a caller leaving).
      const uint64_t seen = p->generation.load();
      lk.unlock();
      spin_until([&] { return p->generation.load(std::memory_order_acquire) != seen || stepping_aside(p, index); });
      lk.lock();
      p->wake.wait(lk, ready);
    }
    if (index >= p->wanted) return;
    // Joining happens under the lock, before the caller closes the job, or not at all: a worker
    // that wakes late (its core busy with another process) must not hold the caller up.
    job->active.fetch_add(1, std::memory_order_relaxed);
    lk.unlock();
    take_tasks(p, index, job);
    lk.lock();
    if (job->active.fetch_sub(1, std::memory_order_acq_rel) == 1 && !job->open) p->done.notify_all();
  }
}

// Starts workers up to `wanted`; with p->m held. A thread the OS refuses lowers `wanted`.
void grow(Pool* p) {
  while (p->workers.size() < p->wanted) {
    try {
      p->workers.emplace_back(worker_loop, p, static_cast<unsigned>(p->workers.size()));
    } catch (const std::system_error&) {
      p->wanted = static_cast<unsigned>(p->workers.size());
    }
  }
  p->started = true;
}

// A caller leaves pool_run: one core fewer is taken, so a worker that stepped aside may take up
// the tasks of another caller's job. Under the lock, so that no waiting worker misses it.
// With p->m held. True when the workers should be woken, after unlocking: other jobs are in
// flight and the caller's leaving frees a core (not when a threads job's busy count still holds
// it: on 2 cores each kernel's end would wake a worker only for it to step aside again).
bool leave_locked(Pool* p) {
  const unsigned before = callers.fetch_sub(1, std::memory_order_relaxed);
  return p->used > 0 && cores_taken(before - 1) < cores_taken(before);
}

void leave(Pool* p) {
  bool others;
  {
    std::lock_guard<std::mutex> lk(p->m);
    others = leave_locked(p);
  }
  if (others) p->wake.notify_all();
}

// Takes a free slot for a job of `tasks` tasks and posts it, or returns null (no workers, a
// resize under way, every slot taken).
Job* post(Pool* p, unsigned tasks, const std::function<void(unsigned)>& fn) {
  std::lock_guard<std::mutex> lk(p->m);
  if (!p->started) grow(p);
  if (p->resizing || p->workers.empty()) return nullptr;
  for (Job& j : p->jobs) {
    if (j.used) continue;
    j.used = true;
    j.fn = &fn;
    j.tasks = tasks;
    j.cap = tasks - 1;
    j.next.store(0, std::memory_order_relaxed);
    j.active.store(0, std::memory_order_relaxed);
    j.open = true;
    ++p->used;
    p->generation.fetch_add(1, std::memory_order_release);
    return &j;
  }
  return nullptr;
}

}  // namespace

unsigned pool_threads() {
  Pool& p = pool();
  std::lock_guard<std::mutex> lk(p.m);
  return p.wanted + 1;
}

unsigned set_pool_threads(unsigned n) {
  if (n < 1) n = 1;
  if (n > 1024) n = 1024;
  Pool& p = pool();
  std::lock_guard<std::mutex> one(p.resize);
  std::vector<std::thread> leaving;
  {
    // No job in flight while the workers change: callers meanwhile run their tasks alone.
    std::unique_lock<std::mutex> lk(p.m);
    p.resizing = true;
    p.done.wait(lk, [&] { return p.used == 0; });
    p.wanted = n - 1;
    if (p.started) grow(&p);
    while (p.workers.size() > p.wanted) {
      leaving.push_back(std::move(p.workers.back()));
      p.workers.pop_back();
    }
    p.resizing = false;
  }
  p.wake.notify_all();
  for (auto& t : leaving) t.join();
  return pool_threads();
}

int pool_add_busy(int delta) {
  const int now = busy_outside.fetch_add(delta, std::memory_order_relaxed) + delta;
  if (delta < 0) {
    // A core came free: a worker that stepped aside may take up a job's remaining tasks
    // (worker_loop). Under the lock, so that no waiting worker misses it.
    Pool& p = pool();
    { std::lock_guard<std::mutex> lk(p.m); }
    p.wake.notify_all();
  }
  return now;
}

void pool_run(unsigned tasks, const std::function<void(unsigned)>& fn) {
  if (tasks == 0) return;
  if (tasks == 1 || t_in_task) {
    for (unsigned t = 0; t < tasks; ++t) fn(t);
    return;
  }
  Pool& p = pool();
  callers.fetch_add(1, std::memory_order_relaxed);
  Job* job = post(&p, tasks, fn);
  if (job == nullptr) {
    t_in_task = true;
    for (unsigned t = 0; t < tasks; ++t) fn(t);
    t_in_task = false;
    return leave(&p);
  }
  // Wakes the workers unless every one of them steps aside (a threads job on 2 cores: the other
  // rank holds the second core); they are woken when a core comes free (pool_add_busy, leave).
  if (!stepping_aside(&p, 0)) p.wake.notify_all();
  t_in_task = true;
  for (unsigned t; (t = job->next.fetch_add(1, std::memory_order_relaxed)) < tasks;) fn(t);
  t_in_task = false;
  {
    // Every task is taken: close the job, then wait only for the workers that joined it.
    std::lock_guard<std::mutex> lk(p.m);
    job->open = false;
  }
  spin_until([&] { return job->active.load(std::memory_order_acquire) == 0; });
  bool others;
  {
    std::unique_lock<std::mutex> lk(p.m);
    p.done.wait(lk, [&] { return job->active.load(std::memory_order_acquire) == 0; });
    job->used = false;
    job->fn = nullptr;
    if (--p.used == 0 && p.resizing) p.done.notify_all();
    others = leave_locked(&p);
  }
  if (others) p.wake.notify_all();
}

void pool_run_largest_first(unsigned tasks, const std::function<size_t(unsigned)>& size, const std::function<void(unsigned)>& fn) {
  std::vector<unsigned> order(tasks);
  for (unsigned t = 0; t < tasks; ++t) order[t] = t;
  std::stable_sort(order.begin(), order.end(), [&](unsigned x, unsigned y) { return size(x) > size(y); });
  pool_run(tasks, [&](unsigned task) { fn(order[task]); });
}

void pool_for(size_t n, size_t bytes, const std::function<void(size_t, size_t)>& fn) {
  if (n == 0) return;
  // Four ranges per thread: a thread that starts late (its core busy elsewhere) then leaves
  // ranges for the others instead of one big share that everyone waits for.
  const size_t threads = pool_threads();
  size_t tasks = bytes < kPoolMinBytes || threads == 1 ? 1 : 4 * threads;
  if (tasks > n) tasks = n;
  if (tasks <= 1) return fn(0, n);
  pool_run(static_cast<unsigned>(tasks), [&](unsigned t) { fn(n * t / tasks, n * (t + 1) / tasks); });
}

}  // namespace pleat
