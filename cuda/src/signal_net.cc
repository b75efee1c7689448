// signal_net (see signal_net.h): a chained SIGINT / SIGTERM handler and a watchdog thread.
#include "signal_net.h"

#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <mutex>
#include <system_error>
#include <thread>

namespace pleat {
namespace signal_net {
namespace {

constexpr int64_t kMs = 1000000;
// After JavaScript acknowledged a signal, its own timer ends the run at the grace; the net waits
// this much longer, so that it acts only when a native call holds the main thread.
constexpr int64_t kAfterSeenNs = 1000 * kMs;
// A further signal: JavaScript ends the run at once when its thread is free; the net waits this long.
constexpr int64_t kFurtherNs = 300 * kMs;
constexpr int kSlots = 8;

// A watched signal and the action the net displaced (libuv's handler).
struct Slot {
  int signo = 0;
  struct sigaction previous {};
  bool installed = false;
};

Slot g_slots[kSlots];
// Lock-free atomics only: the handler reads and writes them.
std::atomic<bool> g_armed{false};
std::atomic<int> g_count{0};
std::atomic<int> g_first{0};
std::atomic<int> g_last{0};
std::atomic<int64_t> g_deadline{0};
std::atomic<int64_t> g_grace{0};
sem_t g_wake;
std::once_flag g_started;
bool g_watching = false;
// The line's words: written by the main thread, read by the watchdog (never by the handler).
std::mutex g_text;
std::string g_prefix;
std::string g_activity;

int64_t now_ns() {
  timespec t{};
  clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<int64_t>(t.tv_sec) * 1000000000 + t.tv_nsec;
}

void on_signal(int signo, siginfo_t* info, void* context) {
  const int saved = errno;
  if (g_armed.load(std::memory_order_acquire)) {
    const int64_t now = now_ns();
    g_last.store(signo, std::memory_order_relaxed);
    if (g_count.fetch_add(1, std::memory_order_acq_rel) == 0) {
      g_first.store(signo, std::memory_order_relaxed);
      g_deadline.store(now + g_grace.load(std::memory_order_relaxed), std::memory_order_release);
    } else {
      int64_t due = g_deadline.load(std::memory_order_acquire);
      while (now + kFurtherNs < due && !g_deadline.compare_exchange_weak(due, now + kFurtherNs, std::memory_order_acq_rel)) {
      }
    }
    sem_post(&g_wake);
  }
  for (const Slot& slot : g_slots) {
    if (slot.signo != signo) continue;
    const struct sigaction& p = slot.previous;
    if ((p.sa_flags & SA_SIGINFO) != 0) {
      if (p.sa_sigaction != nullptr) p.sa_sigaction(signo, info, context);
    } else if (p.sa_handler != SIG_DFL && p.sa_handler != SIG_IGN) {
      p.sa_handler(signo);
    }
    break;
  }
  errno = saved;
}

bool is_ours(const struct sigaction& action) {
  return (action.sa_flags & SA_SIGINFO) != 0 && action.sa_sigaction == on_signal;
}

std::string name_of(int signo) {
  switch (signo) {
    case SIGINT:
      return "SIGINT";
    case SIGTERM:
      return "SIGTERM";
    case SIGHUP:
      return "SIGHUP";
    case SIGQUIT:
      return "SIGQUIT";
    default:
      return "signal " + std::to_string(signo);
  }
}

[[noreturn]] void end_process() {
  const int first = g_first.load();
  const int last = g_last.load();
  std::string line;
  {
    std::lock_guard<std::mutex> lock(g_text);
    line = g_prefix + name_of(first) + (g_activity.empty() ? "" : " " + g_activity);
  }
  const int64_t grace_s = g_grace.load() / (1000 * kMs);
  line += g_count.load() > 1 ? "; stopped at once by a second " + name_of(last) + " while native code held the main thread\n"
                             : "; native code held the main thread past the " + std::to_string(grace_s) + " s grace, stopped at once\n";
  for (size_t done = 0; done < line.size();) {
    const ssize_t n = write(STDERR_FILENO, line.data() + done, line.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  _exit(128 + first);
}

void watch() {
  // Signals go to the other threads (the handler runs on whichever thread takes one).
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, nullptr);
  for (;;) {
    while (sem_wait(&g_wake) != 0 && errno == EINTR) {
    }
    while (g_armed.load(std::memory_order_acquire) && g_count.load(std::memory_order_acquire) > 0) {
      const int64_t left = g_deadline.load(std::memory_order_acquire) - now_ns();
      if (left <= 0) end_process();
      const int64_t nap_ns = std::min<int64_t>(left, 20 * kMs);
      timespec nap{0, static_cast<long>(nap_ns)};
      nanosleep(&nap, nullptr);
    }
  }
}

// Starts the watchdog once; false when the thread could not be made.
bool start_watching() {
  std::call_once(g_started, [] {
    if (sem_init(&g_wake, 0, 0) != 0) return;
    try {
      std::thread(watch).detach();
      g_watching = true;
    } catch (const std::system_error&) {
    }
  });
  return g_watching;
}

Slot* slot_for(int signo) {
  for (Slot& slot : g_slots) {
    if (slot.signo == signo) return &slot;
  }
  for (Slot& slot : g_slots) {
    if (slot.signo == 0) return &slot;
  }
  return nullptr;
}

}  // namespace

std::vector<int> arm(const std::string& prefix, int grace_ms, const std::vector<int>& signals) {
  std::vector<int> watched;
  if (!start_watching()) return watched;
  g_armed.store(false, std::memory_order_release);
  g_count.store(0);
  g_deadline.store(0);
  g_grace.store(static_cast<int64_t>(std::max(0, grace_ms)) * kMs);
  {
    std::lock_guard<std::mutex> lock(g_text);
    g_prefix = prefix;
    g_activity.clear();
  }
  for (const int signo : signals) {
    struct sigaction current {};
    if (sigaction(signo, nullptr, &current) != 0) continue;
    if (is_ours(current)) {
      watched.push_back(signo);
      continue;
    }
    const bool handler = (current.sa_flags & SA_SIGINFO) != 0 ? current.sa_sigaction != nullptr
                                                              : current.sa_handler != SIG_DFL && current.sa_handler != SIG_IGN;
    Slot* slot = slot_for(signo);
    if (!handler || slot == nullptr) continue;
    // The handler reads the slot only once ours is installed for this signal.
    slot->signo = signo;
    slot->previous = current;
    struct sigaction mine {};
    mine.sa_sigaction = on_signal;
    mine.sa_mask = current.sa_mask;
    mine.sa_flags = SA_SIGINFO | SA_RESTART | (current.sa_flags & SA_ONSTACK);
    if (sigaction(signo, &mine, nullptr) != 0) continue;
    slot->installed = true;
    watched.push_back(signo);
  }
  g_armed.store(!watched.empty(), std::memory_order_release);
  return watched;
}

void seen() {
  if (g_count.load(std::memory_order_acquire) == 1) g_deadline.store(now_ns() + g_grace.load() + kAfterSeenNs, std::memory_order_release);
}

void describe(const std::string& text) {
  std::lock_guard<std::mutex> lock(g_text);
  g_activity = text;
}

void disarm() {
  g_armed.store(false, std::memory_order_release);
  for (Slot& slot : g_slots) {
    if (!slot.installed) continue;
    struct sigaction current {};
    // Node may have set its own action since (its last listener gone): leave that one alone.
    if (sigaction(slot.signo, nullptr, &current) == 0 && is_ours(current)) sigaction(slot.signo, &slot.previous, nullptr);
    slot.installed = false;
  }
}

}  // namespace signal_net
}  // namespace pleat
