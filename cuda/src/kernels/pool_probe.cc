// pool_probe (see pool_probe.h).
#include "pool_probe.h"

#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <thread>

#include "thread_pool.h"

namespace pleat {

PoolProbeResult pool_probe(unsigned tasks, unsigned micros) {
  std::mutex m;
  std::set<std::thread::id> ids;
  std::atomic<unsigned> runs{0}, running{0}, peak{0};
  pool_run(tasks, [&](unsigned) {
    {
      std::lock_guard<std::mutex> lk(m);
      ids.insert(std::this_thread::get_id());
    }
    const unsigned now = running.fetch_add(1) + 1;
    for (unsigned seen = peak.load(); now > seen && !peak.compare_exchange_weak(seen, now);) {
    }
    std::this_thread::sleep_for(std::chrono::microseconds(micros));
    running.fetch_sub(1);
    runs.fetch_add(1);
  });
  return PoolProbeResult{static_cast<unsigned>(ids.size()), runs.load(), peak.load()};
}

}  // namespace pleat
