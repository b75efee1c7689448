// The MPI engine's thread; see engine.h.
#include "engine.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>

namespace pleat::mpi {

namespace {

std::string error_text(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  if (MPI_Error_string(code, text, &length) != MPI_SUCCESS) return "MPI error " + std::to_string(code);
  return std::string(text, static_cast<size_t>(length));
}

int error_class(int code) {
  int cls = code;
  MPI_Error_class(code, &cls);
  return cls == MPI_SUCCESS ? 1 : cls;
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
    MPI_Abort(MPI_COMM_WORLD, abort_code);
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
      MPI_Abort(MPI_COMM_WORLD, 1);
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

void Engine::begin(Command& cmd) {
  if (cmd.kind == Kind::CommCreate) {
    creating_[cmd.comm];
    const auto create = [this, cmd]() {
      MPI_Group world_group = MPI_GROUP_NULL;
      MPI_Group group = MPI_GROUP_NULL;
      MPI_Comm made = MPI_COMM_NULL;
      int rc = MPI_Comm_group(MPI_COMM_WORLD, &world_group);
      if (rc == MPI_SUCCESS) rc = MPI_Group_incl(world_group, static_cast<int>(cmd.ranks.size()), cmd.ranks.data(), &group);
      if (rc == MPI_SUCCESS) rc = MPI_Comm_create_group(MPI_COMM_WORLD, group, cmd.tag, &made);
      if (group != MPI_GROUP_NULL) MPI_Group_free(&group);
      if (world_group != MPI_GROUP_NULL) MPI_Group_free(&world_group);
      Command ready;
      ready.kind = Kind::CommReady;
      ready.id = cmd.id;
      ready.comm = cmd.comm;
      ready.made = made;
      ready.rc = rc;
      submit(std::move(ready));
    };
    if (world_.provided < MPI_THREAD_MULTIPLE) {
      create();  // MPI allows no second thread: create here (a missing member then blocks everything)
      return;
    }
    creators_++;
    std::thread([this, create] {
      create();
      creators_--;
    }).detach();
    return;
  }
  if (cmd.kind == Kind::CommReady) {
    std::deque<Command> waiting;
    auto it = creating_.find(cmd.comm);
    if (it != creating_.end()) {
      waiting.swap(it->second);
      creating_.erase(it);
    }
    if (cmd.rc == MPI_SUCCESS) {
      MPI_Comm_set_errhandler(cmd.made, MPI_ERRORS_RETURN);
      comms_[cmd.comm] = cmd.made;
      for (auto& w : waiting) begin(w);
    } else {
      for (auto& w : waiting) finish(w.id, cmd.rc);
    }
    return finish(cmd.id, cmd.rc);
  }
  if (creating_.count(cmd.comm) != 0 && cmd.kind != Kind::Send) {
    creating_[cmd.comm].push_back(std::move(cmd));
    return;
  }
  if (cmd.kind == Kind::CommFree) {
    auto it = comms_.find(cmd.comm);
    int rc = MPI_SUCCESS;
    if (it != comms_.end()) {
      rc = MPI_Comm_free(&it->second);
      comms_.erase(it);
    }
    return finish(cmd.id, rc);
  }
  Active a;
  a.id = cmd.id;
  int rc = MPI_SUCCESS;
  if (cmd.kind == Kind::Send) {
    rc = MPI_Isend(cmd.send, cmd.count, MPI_BYTE, cmd.dest, cmd.tag, p2p_, &a.request);
  } else {
    MPI_Comm comm = comm_of(cmd.comm);
    if (comm == MPI_COMM_NULL) return fail(cmd.id, MPI_ERR_COMM, "no communicator " + std::to_string(cmd.comm) + " on this rank");
    if (cmd.kind == Kind::Checked) {
      rc = MPI_Iallgather(cmd.header, cmd.header_length, MPI_DOUBLE, cmd.headers, cmd.header_length, MPI_DOUBLE, comm, &a.request);
      a.checked = std::make_shared<Command>(cmd);
    } else {
      rc = start_data(cmd, &a.request);
    }
  }
  if (rc != MPI_SUCCESS) return finish(cmd.id, rc);
  active_.push_back(std::move(a));
}

int Engine::start_data(const Command& cmd, MPI_Request* request) {
  MPI_Comm comm = comm_of(cmd.comm);
  switch (cmd.kind) {
    case Kind::AllGather:
      return MPI_Iallgather(cmd.send, cmd.count, cmd.type, cmd.recv, cmd.count, cmd.type, comm, request);
    case Kind::AllGatherV:
      return MPI_Iallgatherv(cmd.send, cmd.count, cmd.type, cmd.recv, cmd.recv_counts.data(), cmd.recv_displs.data(), cmd.type, comm, request);
    case Kind::AllReduce:
      return MPI_Iallreduce(cmd.send, cmd.recv, cmd.count, cmd.type, cmd.op, comm, request);
    case Kind::ReduceScatter:
      return MPI_Ireduce_scatter(cmd.send, cmd.recv, cmd.recv_counts.data(), cmd.type, cmd.op, comm, request);
    case Kind::AllToAllV:
      return MPI_Ialltoallv(cmd.send, cmd.send_counts.data(), cmd.send_displs.data(), cmd.type, cmd.recv, cmd.recv_counts.data(), cmd.recv_displs.data(), cmd.type, comm,
                            request);
    case Kind::Bcast:
      return MPI_Ibcast(cmd.recv, cmd.count, cmd.type, cmd.root, comm, request);
    case Kind::Barrier:
      return MPI_Ibarrier(comm, request);
    default:
      return MPI_ERR_OTHER;
  }
}

bool Engine::agreed(const Command& cmd) const {
  int members = 0;
  MPI_Comm_size(comm_of(cmd.comm), &members);
  const int n = cmd.header_length;
  const double* first = cmd.headers;
  if (n <= kFast || first[kFast] != 1.0) return false;
  for (int g = 1; g < members; g++) {
    const double* row = cmd.headers + static_cast<size_t>(g) * n;
    for (int i = 0; i < n; i++) {
      if (i == kBufferLength || i == kBufferType) continue;
      if (row[i] != first[i]) return false;
    }
  }
  return true;
}

void Engine::probe() {
  int flag = 0;
  MPI_Message message = MPI_MESSAGE_NULL;
  MPI_Status status;
  if (MPI_Improbe(MPI_ANY_SOURCE, MPI_ANY_TAG, p2p_, &flag, &message, &status) != MPI_SUCCESS || !flag) return;
  int count = 0;
  MPI_Get_count(&status, MPI_BYTE, &count);
  Active a;
  a.message = true;
  a.source = status.MPI_SOURCE;
  a.tag = status.MPI_TAG;
  a.bytes.resize(static_cast<size_t>(count));
  const int rc = MPI_Imrecv(a.bytes.data(), count, MPI_BYTE, &message, &a.request);
  if (rc != MPI_SUCCESS) {
    auto* c = new Completion();
    c->message = true;
    c->source = a.source;
    c->tag = a.tag;
    c->status = error_class(rc);
    c->error = error_text(rc);
    deliver_(c);
    return;
  }
  inbound_.push_back(std::move(a));
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
    } else if (it->message) {
      auto* c = new Completion();
      c->message = true;
      c->source = it->source;
      c->tag = it->tag;
      if (rc != MPI_SUCCESS) {
        c->status = error_class(rc);
        c->error = error_text(rc);
      }
      c->bytes = std::move(it->bytes);
      deliver_(c);
    } else {
      finish(it->id, rc, it->fast);
    }
    it = active_.erase(it);
  }
  // Received messages reach JS in the order MPI matched them (MPI's order per sender): a small
  // message matched after a large one may finish first, and must wait for it.
  for (auto& in : inbound_) {
    if (in.request == MPI_REQUEST_NULL) continue;
    int flag = 0;
    MPI_Status status;
    const int rc = MPI_Test(&in.request, &flag, &status);
    if (rc != MPI_SUCCESS) {
      in.request = MPI_REQUEST_NULL;
      in.error = rc;
    }
  }
  while (!inbound_.empty() && inbound_.front().request == MPI_REQUEST_NULL) {
    Active& in = inbound_.front();
    auto* c = new Completion();
    c->message = true;
    c->source = in.source;
    c->tag = in.tag;
    if (in.error != MPI_SUCCESS) {
      c->status = error_class(in.error);
      c->error = error_text(in.error);
    }
    c->bytes = std::move(in.bytes);
    deliver_(c);
    inbound_.pop_front();
  }
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
    MPI_Abort(MPI_COMM_WORLD, 1);
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
