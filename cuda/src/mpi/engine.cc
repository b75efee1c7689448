// The MPI engine's thread; see engine.h.
#include "engine.h"

#include "../exit_later.h"
#include "errors.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace pleat::mpi {

namespace {

// MPI_Abort ends every process of the job at once. Should it neither do so nor return (a runtime
// half torn down by a finalize in progress), this process ends itself after this long, and the
// launcher ends the others on seeing it go without MPI_Finalize.
constexpr std::chrono::seconds kAbortFallback{10};

void abort_job(int code) {
  exit_later(code, kAbortFallback, "pleat: MPI_Abort did not end this process within " + std::to_string(kAbortFallback.count()) + " s: exiting\n");
  MPI_Abort(MPI_COMM_WORLD, code);
}

}  // namespace

std::string library_version() {
  char text[MPI_MAX_LIBRARY_VERSION_STRING];
  int length = 0;
  if (MPI_Get_library_version(text, &length) != MPI_SUCCESS) return "";
  std::string s(text, static_cast<size_t>(length));
  while (!s.empty() && (s.back() == '\n' || s.back() == '\0' || s.back() == ' ')) s.pop_back();
  return s;
}

Engine::~Engine() {
  if (running_) stop(-1, 0);
}

WorldInfo Engine::start() {
  std::unique_lock<std::mutex> lock(mutex_);
  if (running_ || ready_) return world_;
  thread_ = std::thread([this] { loop(); });
  ready_cv_.wait(lock, [this] { return ready_; });
  running_ = world_.error.empty();
  if (!running_ && thread_.joinable()) {
    lock.unlock();
    thread_.join();
  }
  return world_;
}

void Engine::submit(Command command) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    commands_.push_back(std::move(command));
  }
  wake_.notify_one();
}

void Engine::stop(int abort_code, int grace_ms) {
  if (!running_) return;
  if (abort_code >= 0) {
    // MPI_Abort from this thread: the engine's thread may be inside a call that never returns.
    abort_job(abort_code);
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
    abort_code_ = abort_code;
    grace_ms_ = grace_ms;
  }
  wake_.notify_one();
  // MPI_Finalize waits for every process of the job: one that never gets there (stuck, or never
  // told to end) would hold this one forever. After the grace and a minute more, abort the job.
  {
    std::unique_lock<std::mutex> lock(mutex_);
    const bool ended = ended_cv_.wait_for(lock, std::chrono::milliseconds(grace_ms + 60000), [this] { return ended_; });
    if (!ended) {
      lock.unlock();
      std::fprintf(stderr, "pleat: MPI_Finalize did not return within %d s (a process of the job never ended): aborting the job\n", (grace_ms + 60000) / 1000);
      abort_job(1);
    }
  }
  if (thread_.joinable()) thread_.join();
  running_ = false;
}

MPI_Comm Engine::comm_of(int id) const {
  auto it = comms_.find(id);
  return it == comms_.end() ? MPI_COMM_NULL : it->second;
}

void Engine::finish(uint32_t id, int code, bool fast) {
  auto* c = new Completion();
  c->id = id;
  c->fast = fast;
  if (code != MPI_SUCCESS) {
    c->status = error_class(code);
    c->error = error_text(code);
  }
  deliver_(c);
}

void Engine::fail(uint32_t id, int code, const std::string& what) {
  auto* c = new Completion();
  c->id = id;
  c->status = code;
  c->error = what;
  deliver_(c);
}

void Engine::poll() {
  for (auto it = active_.begin(); it != active_.end();) {
    int flag = 0;
    MPI_Status status;
    const int rc = MPI_Test(&it->request, &flag, &status);
    if (rc == MPI_SUCCESS && !flag) {
      ++it;
      continue;
    }
    if (it->checked && rc == MPI_SUCCESS) {
      // The signatures are in: if every member agreed (and said "fast"), run the data op now,
      // without a round trip to JS; else JS judges them.
      std::shared_ptr<Command> cmd = std::move(it->checked);
      if (agreed(*cmd)) {
        Command data = *cmd;
        data.kind = cmd->then;
        const int started = start_data(data, &it->request);
        if (started == MPI_SUCCESS) {
          it->fast = true;
          ++it;
          continue;
        }
        finish(it->id, started);
      } else {
        finish(it->id, MPI_SUCCESS, false);
      }
    } else {
      finish(it->id, rc, it->fast);
    }
    it = active_.erase(it);
  }
  deliver_inbound();
}

void Engine::idle(unsigned rounds) {
  // Spin (yielding the core) for a while after the last progress: a collective's peers or a
  // reply usually arrive within it. Then sleep in growing steps, shorter while ops are in flight.
  const auto now = std::chrono::steady_clock::now();
  if (rounds == 1) idle_since_ = now;
  if (now - idle_since_ < std::chrono::microseconds(spin_us_)) {
    std::this_thread::yield();
    return;
  }
  const long cap = active_.empty() && inbound_.empty() && wanted_ == 0 ? 500 : 50;
  const long step = std::min<long>(cap, 10L << std::min<unsigned>(10, rounds / 64));
  std::unique_lock<std::mutex> lock(mutex_);
  wake_.wait_for(lock, std::chrono::microseconds(step), [this] { return !commands_.empty() || stopping_; });
}

void Engine::loop() {
  if (const char* spin = std::getenv("PLEAT_MPI_SPIN_US"); spin != nullptr) spin_us_ = std::max(0L, std::atol(spin));
  message_bytes_ = message_bytes_from_env();
  int provided = 0;
  const int rc = MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (rc != MPI_SUCCESS) {
      world_.error = "MPI_Init_thread failed (error " + std::to_string(rc) + ")";
    } else {
      MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
      MPI_Comm_rank(MPI_COMM_WORLD, &world_.rank);
      MPI_Comm_size(MPI_COMM_WORLD, &world_.size);
      world_.provided = provided;
      MPI_Comm_dup(MPI_COMM_WORLD, &p2p_);
      MPI_Comm_set_errhandler(p2p_, MPI_ERRORS_RETURN);
    }
    ready_ = true;
  }
  ready_cv_.notify_all();
  if (rc != MPI_SUCCESS) return;
  unsigned rounds = 0;
  std::chrono::steady_clock::time_point stop_at{};
  bool stop_seen = false;
  for (;;) {
    std::deque<Command> batch;
    bool stopping = false;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      batch.swap(commands_);
      stopping = stopping_;
    }
    for (auto& cmd : batch) begin(cmd);
    const size_t before = active_.size() + inbound_.size();
    if (!active_.empty() || !inbound_.empty()) poll();
    bool progress = !batch.empty() || active_.size() + inbound_.size() != before;
    if (stopping) {
      if (!stop_seen) {
        stop_seen = true;
        stop_at = std::chrono::steady_clock::now() + std::chrono::milliseconds(grace_ms_);
      }
      if ((active_.empty() && inbound_.empty() && creating_.empty()) || std::chrono::steady_clock::now() >= stop_at) break;
    } else {
      const size_t was = inbound_.size();
      probe();
      progress = progress || inbound_.size() != was;
    }
    rounds = progress ? 0 : rounds + 1;
    if (!progress) idle(rounds);
  }
  const bool clean = active_.empty() && inbound_.empty() && creators_ == 0 && creating_.empty();
  for (auto& [id, comm] : comms_) {
    if (clean && comm != MPI_COMM_NULL) MPI_Comm_free(&comm);
  }
  comms_.clear();
  if (!clean) {
    // Requests that never completed (a peer that died or never arrived): MPI_Finalize would
    // wait for them forever, so the job is aborted instead.
    abort_job(1);
  }
  if (p2p_ != MPI_COMM_NULL) MPI_Comm_free(&p2p_);
  MPI_Finalize();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    ended_ = true;
  }
  ended_cv_.notify_all();
}

}  // namespace pleat::mpi
