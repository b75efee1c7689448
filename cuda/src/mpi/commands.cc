// The MPI engine's commands: starting the op each command asks for (engine.h), creating
// communicators on a thread of their own, and the one-round-trip path of a checked collective
// (an allgather of signature rows, then the data op at once when every row agrees).
#include "engine.h"

#include "errors.h"

namespace pleat::mpi {

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
    MessageType message;
    rc = message_type(cmd.bytes, message_bytes_, &message);
    if (rc == MPI_SUCCESS) rc = MPI_Isend(cmd.send, message.count, message.type, cmd.dest, cmd.tag, p2p_, &a.request);
    if (message.derived) MPI_Type_free(&message.type);  // a started send completes normally
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

}  // namespace pleat::mpi
