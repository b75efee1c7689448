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

struct Pool {
  std::mutex job_mutex;  // held by the caller for the whole of a pooled job
  std::mutex m;          // guards everything below
  std::condition_variable wake;
  std::condition_variable done;
  std::vector<std::thread> workers;
  unsigned wanted = 0;  // workers that should exist (threads - 1); a worker above it exits
  bool started = false;
  // Atomic so that spinning threads can poll them without the lock; written under m.
  std::atomic<uint64_t> generation{0};
  std::atomic<unsigned> active{0};  // workers that joined the current job and are not done
  const std::function<void(unsigned)>* job = nullptr;
  unsigned tasks = 0;
  unsigned helpers = 0;  // workers that may join the current job (the lowest indices)
  bool open = false;     // a worker may still join; closed once the caller ran out of tasks
  std::atomic<unsigned> next{0};
};

// How long a thread polls before it blocks: a worker after its job waiting for the next one, and
// the caller waiting for the workers. Waking a blocked thread costs 25 us back to back and up to
// 200 us after an idle millisecond on the 2-vCPU VM this was measured on (the idle vCPU halts
// and the host must reschedule it); kernels of one training step follow each other within far
// less, so a short poll keeps them off that path, for at most this much CPU per job.
constexpr std::chrono::microseconds kSpin{50};

// Callers running a job on their own thread because the pool was busy with another caller's
// (two ranks of a threads job in kernels at once). Each takes a core, so that many pool workers
// step aside (the highest indices stop taking tasks and do not poll): the pooled job's caller and
// its remaining workers finish it, and the threads in kernels never outnumber the cores. Without
// this, on 2 cores a GEMM of one rank ran on 3 threads (its caller, a pool worker, the other
// rank's inline GEMM) and both ranks' kernels slowed down.
std::atomic<unsigned> inline_callers{0};

// Threads outside the pool that hold a core now (pool_add_busy): awake workers of a threads job
// other than the caller. An inline caller is one of them, so the two counts overlap: the larger
// one is how many cores the pool's workers leave.
std::atomic<int> busy_outside{0};

// Whether worker `index` should leave the cores to callers running inline or to busy threads.
bool stepping_aside(const Pool* p, unsigned index) {
  const int busy = busy_outside.load(std::memory_order_relaxed);
  const unsigned inline_now = inline_callers.load(std::memory_order_relaxed);
  const unsigned taken = busy > static_cast<int>(inline_now) ? static_cast<unsigned>(busy) : inline_now;
  return index + taken >= p->wanted;
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

// Whether worker `index`, which stepped aside from the job of generation `seen`, may take up its
// tasks again: the job is still open with tasks left and the core it left is free again (a
// threads job's worker fell asleep: pool_add_busy). With p->m held.
bool may_rejoin(const Pool* p, unsigned index, uint64_t seen) {
  return p->generation.load() == seen && p->open && index < p->helpers && p->next.load(std::memory_order_relaxed) < p->tasks &&
         !stepping_aside(p, index);
}

// `seen`: the generation when the thread was created (read under p->m by grow), so a job posted
// before the new thread first takes the lock is not missed.
void worker_loop(Pool* p, unsigned index, uint64_t seen) {
  // Whether this worker left the job of generation `seen` to step aside (not for want of tasks).
  bool stepped_aside = false;
  for (;;) {
    spin_until([&] { return p->generation.load(std::memory_order_acquire) != seen || stepping_aside(p, index); });
    std::unique_lock<std::mutex> lk(p->m);
    p->wake.wait(lk, [&] { return index >= p->wanted || p->generation.load() != seen || (stepped_aside && may_rejoin(p, index, seen)); });
    if (index >= p->wanted) return;
    seen = p->generation.load();
    stepped_aside = false;
    // Joining happens under the lock, before the caller closes the job, or not at all: a worker
    // that wakes late (its core busy with another process) must not hold the caller up.
    if (!p->open || index >= p->helpers) continue;
    p->active.fetch_add(1);
    const auto* fn = p->job;
    const unsigned n = p->tasks;
    lk.unlock();
    for (;;) {
      if (stepping_aside(p, index)) {
        stepped_aside = true;
        break;
      }
      const unsigned t = p->next.fetch_add(1, std::memory_order_relaxed);
      if (t >= n) break;
      (*fn)(t);
    }
    lk.lock();
    if (p->active.fetch_sub(1) == 1) p->done.notify_one();
  }
}

// Starts workers up to `wanted`; with p->m held. A thread the OS refuses lowers `wanted`.
void grow(Pool* p) {
  while (p->workers.size() < p->wanted) {
    try {
      p->workers.emplace_back(worker_loop, p, static_cast<unsigned>(p->workers.size()),
                              p->generation.load());
    } catch (const std::system_error&) {
      p->wanted = static_cast<unsigned>(p->workers.size());
    }
  }
  p->started = true;
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
  std::lock_guard<std::mutex> job(p.job_mutex);
  std::vector<std::thread> leaving;
  {
    std::lock_guard<std::mutex> lk(p.m);
    p.wanted = n - 1;
    if (p.started) grow(&p);
    while (p.workers.size() > p.wanted) {
      leaving.push_back(std::move(p.workers.back()));
      p.workers.pop_back();
    }
  }
  p.wake.notify_all();
  for (auto& t : leaving) t.join();
  return pool_threads();
}

int pool_add_busy(int delta) {
  const int now = busy_outside.fetch_add(delta, std::memory_order_relaxed) + delta;
  if (delta < 0) {
    // A core came free: a worker that stepped aside from the job in flight may take up its
    // remaining tasks (worker_loop). Under the lock, so that no waiting worker misses it.
    Pool& p = pool();
    { std::lock_guard<std::mutex> lk(p.m); }
    p.wake.notify_all();
  }
  return now;
}

void pool_run(unsigned tasks, const std::function<void(unsigned)>& fn) {
  if (tasks == 0) return;
  Pool& p = pool();
  std::unique_lock<std::mutex> job(p.job_mutex, std::defer_lock);
  if (tasks == 1) return fn(0);
  if (!job.try_lock()) {
    // The pool is busy with another caller's job: run inline, and have a pool worker step aside.
    inline_callers.fetch_add(1, std::memory_order_relaxed);
    for (unsigned t = 0; t < tasks; ++t) fn(t);
    inline_callers.fetch_sub(1, std::memory_order_relaxed);
    return;
  }
  {
    std::lock_guard<std::mutex> lk(p.m);
    if (!p.started) grow(&p);
    const unsigned workers = static_cast<unsigned>(p.workers.size());
    p.helpers = workers < tasks - 1 ? workers : tasks - 1;
    if (p.helpers == 0) {
      p.started = true;
    } else {
      p.job = &fn;
      p.tasks = tasks;
      p.open = true;
      p.next.store(0, std::memory_order_relaxed);
      p.generation.fetch_add(1, std::memory_order_release);
    }
  }
  if (p.helpers == 0) {
    for (unsigned t = 0; t < tasks; ++t) fn(t);
    return;
  }
  p.wake.notify_all();
  for (unsigned t; (t = p.next.fetch_add(1, std::memory_order_relaxed)) < tasks;) fn(t);
  {
    // Every task is taken: close the job, then wait only for the workers that joined it.
    std::lock_guard<std::mutex> lk(p.m);
    p.open = false;
  }
  spin_until([&] { return p.active.load(std::memory_order_acquire) == 0; });
  std::unique_lock<std::mutex> lk(p.m);
  p.done.wait(lk, [&] { return p.active.load() == 0; });
  p.job = nullptr;
  p.helpers = 0;
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
