// Stream tokens and their queued requests, groups, the collectives and send/recv of
// libpleat_host_nccl.so (what the library is: host_nccl.h).
#include <climits>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <set>
#include <unordered_map>
#include <vector>

#include "host_nccl.h"

using namespace pleat::host_nccl;

namespace {

struct Stream {
  std::vector<Pending> pending;  // started, not yet waited for
  std::set<uint64_t> waiting;    // tickets of batches a synchronize is waiting for
};

std::condition_variable batchDone;
std::unordered_map<uintptr_t, Stream> streams;
uint64_t nextTicket = 1;

enum Kind { kAllReduce, kAllGather, kReduceScatter, kReduce, kBroadcast, kSend, kRecv };
struct Op {  // root: the root of Reduce / Broadcast, the peer of Send / Recv
  Kind kind; const void* send; void* recv; size_t count; int dtype, redop, root; ncclComm_t comm; cudaStream_t stream;
};
thread_local int groupDepth = 0;
thread_local std::vector<Op> deferred;

uintptr_t keyOf(cudaStream_t s) { return reinterpret_cast<uintptr_t>(s); }

// Float16 (6), Bfloat16 (9) and ncclAvg (4) are not supported: MPI_DATATYPE_NULL / MPI_OP_NULL.
MPI_Datatype typeOf(int t) {
  const MPI_Datatype types[] = {MPI_INT8_T, MPI_UINT8_T, MPI_INT32_T, MPI_UINT32_T, MPI_INT64_T,
                                MPI_UINT64_T, MPI_DATATYPE_NULL, MPI_FLOAT, MPI_DOUBLE};
  return t >= 0 && t < 9 ? types[t] : MPI_DATATYPE_NULL;
}

MPI_Op opOf(int op) {
  const MPI_Op ops[] = {MPI_SUM, MPI_PROD, MPI_MAX, MPI_MIN};
  return op >= 0 && op < 4 ? ops[op] : MPI_OP_NULL;
}

void recordLocked(uint64_t comm, int rc) {
  auto it = live.find(comm);
  int none = MPI_SUCCESS;
  if (it != live.end()) it->second->mpiError.compare_exchange_strong(none, rc);
}

// Records the errors of a failed MPI_Waitall / MPI_Testall on the communicators concerned.
void recordLocked(const std::vector<Pending>& batch, int rc, const std::vector<MPI_Status>& st) {
  for (size_t i = 0; i < batch.size(); i++) {
    const int e = rc == MPI_ERR_IN_STATUS ? st[i].MPI_ERROR : rc;
    if (e != MPI_SUCCESS && e != MPI_ERR_PENDING) recordLocked(batch[i].comm, e);
  }
}

bool overlaps(const void* a, size_t na, const void* b, size_t nb) {
  const auto x = reinterpret_cast<uintptr_t>(a), y = reinterpret_cast<uintptr_t>(b);
  return x < y + nb && y < x + na;
}

// Starts one operation as a nonblocking MPI call and queues its request on the op's stream.
ncclResult_t post(const Op& o) {
  const MPI_Datatype type = typeOf(o.dtype);
  const MPI_Op op = opOf(o.redop);
  const int n = static_cast<int>(o.count);
  int elem = 0;
  MPI_Type_size(type, &elem);
  const size_t bytes = o.count * static_cast<size_t>(elem);
  const size_t whole = bytes * static_cast<size_t>(o.comm->size);
  const void* send = o.send;
  std::shared_ptr<void> keep;
  const auto stage = [&](size_t len) {  // a copy of the send data, for overlapping buffers
    auto copy = std::make_shared<std::vector<char>>(static_cast<const char*>(o.send), static_cast<const char*>(o.send) + len);
    send = copy->data();
    keep = copy;
  };
  const MPI_Comm c = o.comm->mpi;
  MPI_Request req = MPI_REQUEST_NULL;
  int rc = MPI_SUCCESS;
  switch (o.kind) {
    case kAllReduce: rc = MPI_Iallreduce(send == o.recv ? MPI_IN_PLACE : send, o.recv, n, type, op, c, &req); break;
    case kAllGather:  // NCCL's in place: sendbuff == recvbuff + rank * sendcount, MPI's too
      if (send == static_cast<char*>(o.recv) + bytes * o.comm->rank) send = MPI_IN_PLACE;
      else if (overlaps(send, bytes, o.recv, whole)) stage(bytes);
      rc = MPI_Iallgather(send, n, type, o.recv, n, type, c, &req);
      break;
    case kReduceScatter:  // NCCL's in place (recvbuff inside sendbuff) has no MPI_IN_PLACE twin
      if (overlaps(send, whole, o.recv, bytes)) stage(whole);
      rc = MPI_Ireduce_scatter_block(send, o.recv, n, type, op, c, &req);
      break;
    case kReduce:
      if (o.comm->rank == o.root && send == o.recv) send = MPI_IN_PLACE;
      rc = MPI_Ireduce(send, o.recv, n, type, op, o.root, c, &req);
      break;
    case kBroadcast:  // root reads sendbuff, every rank writes recvbuff
      if (o.comm->rank == o.root && send != o.recv) std::memmove(o.recv, send, bytes);
      rc = MPI_Ibcast(o.recv, n, type, o.root, c, &req);
      break;
    case kSend: rc = MPI_Isend(send, n, type, o.root, 0, c, &req); break;
    case kRecv: rc = MPI_Irecv(o.recv, n, type, o.root, 0, c, &req); break;
  }
  std::lock_guard<std::mutex> lock(mu);
  if (rc != MPI_SUCCESS) {
    recordLocked(o.comm->id, rc);
    return ncclSystemError;
  }
  streams[keyOf(o.stream)].pending.push_back({req, o.comm->id, std::move(keep)});
  return ncclSuccess;
}

// Checks an operation's arguments, then starts it, or defers it inside a group.
ncclResult_t enqueue(const Op& o) {
  if (o.comm == nullptr || typeOf(o.dtype) == MPI_DATATYPE_NULL) return ncclInvalidArgument;
  const bool reduces = o.kind == kAllReduce || o.kind == kReduceScatter || o.kind == kReduce;
  if (reduces && opOf(o.redop) == MPI_OP_NULL) return ncclInvalidArgument;
  const bool rooted = o.kind == kReduce || o.kind == kBroadcast || o.kind == kSend || o.kind == kRecv;
  if (rooted && (o.root < 0 || o.root >= o.comm->size)) return ncclInvalidArgument;
  if (o.count > static_cast<size_t>(INT_MAX)) return ncclInvalidArgument;
  if (o.count == 0) return ncclSuccess;
  const bool readsSend = o.kind != kRecv && (o.kind != kBroadcast || o.comm->rank == o.root);
  const bool writesRecv = o.kind != kSend && (o.kind != kReduce || o.comm->rank == o.root);
  if ((readsSend && o.send == nullptr) || (writesRecv && o.recv == nullptr)) return ncclInvalidArgument;
  if (groupDepth == 0) return post(o);
  deferred.push_back(o);
  return ncclSuccess;
}

}  // namespace

namespace pleat::host_nccl {

int waitBatch(std::vector<Pending>& batch) {
  if (batch.empty()) return MPI_SUCCESS;
  std::vector<MPI_Request> reqs;
  for (auto& p : batch) reqs.push_back(p.request);
  std::vector<MPI_Status> st(batch.size());
  const int rc = MPI_Waitall(static_cast<int>(reqs.size()), reqs.data(), st.data());
  if (rc != MPI_SUCCESS) {
    std::lock_guard<std::mutex> lock(mu);
    recordLocked(batch, rc, st);
  }
  return rc;
}

// Forgets a communicator and takes its queued requests out of every stream's list.
std::vector<Pending> release(uint64_t comm) {
  std::vector<Pending> mine;
  std::lock_guard<std::mutex> lock(mu);
  live.erase(comm);
  for (auto& [key, s] : streams) {
    std::vector<Pending> rest;
    for (auto& p : s.pending) (p.comm == comm ? mine : rest).push_back(std::move(p));
    s.pending.swap(rest);
  }
  return mine;
}

}  // namespace pleat::host_nccl

// ---- Groups and operations -------------------------------------------------------------------
PLEAT_EXPORT ncclResult_t ncclGroupStart(void) {
  groupDepth++;
  return ncclSuccess;
}

PLEAT_EXPORT ncclResult_t ncclGroupEnd(void) {
  if (groupDepth == 0) return ncclInvalidUsage;
  if (--groupDepth > 0) return ncclSuccess;
  std::vector<Op> ops;
  ops.swap(deferred);
  ncclResult_t first = ncclSuccess;
  const auto start = [&](auto wanted) {
    for (const Op& o : ops) {
      if (!wanted(o)) continue;
      const ncclResult_t r = post(o);
      if (first == ncclSuccess) first = r;
    }
  };
  start([](const Op& o) { return o.kind == kRecv; });  // every receive before any send
  start([](const Op& o) { return o.kind == kSend; });
  start([](const Op& o) { return o.kind != kRecv && o.kind != kSend; });
  return first;
}

PLEAT_EXPORT ncclResult_t ncclAllReduce(const void* sendbuff, void* recvbuff, size_t count, ncclDataType_t datatype, ncclRedOp_t op,
                                        ncclComm_t comm, cudaStream_t stream) {
  return enqueue({kAllReduce, sendbuff, recvbuff, count, datatype, op, 0, comm, stream});
}
PLEAT_EXPORT ncclResult_t ncclAllGather(const void* sendbuff, void* recvbuff, size_t sendcount, ncclDataType_t datatype, ncclComm_t comm,
                                        cudaStream_t stream) {
  return enqueue({kAllGather, sendbuff, recvbuff, sendcount, datatype, ncclSum, 0, comm, stream});
}
PLEAT_EXPORT ncclResult_t ncclReduceScatter(const void* sendbuff, void* recvbuff, size_t recvcount, ncclDataType_t datatype,
                                            ncclRedOp_t op, ncclComm_t comm, cudaStream_t stream) {
  return enqueue({kReduceScatter, sendbuff, recvbuff, recvcount, datatype, op, 0, comm, stream});
}
PLEAT_EXPORT ncclResult_t ncclReduce(const void* sendbuff, void* recvbuff, size_t count, ncclDataType_t datatype, ncclRedOp_t op,
                                     int root, ncclComm_t comm, cudaStream_t stream) {
  return enqueue({kReduce, sendbuff, recvbuff, count, datatype, op, root, comm, stream});
}
PLEAT_EXPORT ncclResult_t ncclBroadcast(const void* sendbuff, void* recvbuff, size_t count, ncclDataType_t datatype, int root,
                                        ncclComm_t comm, cudaStream_t stream) {
  return enqueue({kBroadcast, sendbuff, recvbuff, count, datatype, ncclSum, root, comm, stream});
}
PLEAT_EXPORT ncclResult_t ncclSend(const void* sendbuff, size_t count, ncclDataType_t datatype, int peer, ncclComm_t comm,
                                   cudaStream_t stream) {
  return enqueue({kSend, sendbuff, nullptr, count, datatype, ncclSum, peer, comm, stream});
}
PLEAT_EXPORT ncclResult_t ncclRecv(void* recvbuff, size_t count, ncclDataType_t datatype, int peer, ncclComm_t comm,
                                   cudaStream_t stream) {
  return enqueue({kRecv, nullptr, recvbuff, count, datatype, ncclSum, peer, comm, stream});
}

// ---- Streams (pleat's extra exports) ---------------------------------------------------------
// Waits for everything queued on the stream token, including batches other threads took out
// before this call; 0 or the MPI error code.
PLEAT_EXPORT int pleatHostNcclStreamSynchronize(void* stream) {
  const uintptr_t key = keyOf(stream);
  std::vector<Pending> batch;
  uint64_t ticket = 0;
  {
    std::lock_guard<std::mutex> lock(mu);
    Stream& s = streams[key];
    batch.swap(s.pending);
    ticket = nextTicket++;
    s.waiting.insert(ticket);
  }
  const int rc = waitBatch(batch);
  std::unique_lock<std::mutex> lock(mu);
  streams[key].waiting.erase(ticket);
  batchDone.notify_all();
  batchDone.wait(lock, [&] {
    const std::set<uint64_t>& w = streams[key].waiting;
    return w.empty() || *w.begin() > ticket;
  });
  auto it = streams.find(key);
  if (it != streams.end() && it->second.pending.empty() && it->second.waiting.empty()) streams.erase(it);
  return rc;
}

// 0: everything queued on the stream token has completed; 1: some is pending; < 0: MPI error.
PLEAT_EXPORT int pleatHostNcclStreamQuery(void* stream) {
  std::lock_guard<std::mutex> lock(mu);
  auto it = streams.find(keyOf(stream));
  if (it == streams.end()) return 0;
  if (!it->second.waiting.empty()) return 1;
  std::vector<Pending>& pending = it->second.pending;
  if (pending.empty()) return 0;
  std::vector<MPI_Request> reqs;
  for (auto& p : pending) reqs.push_back(p.request);
  std::vector<MPI_Status> st(pending.size());
  int flag = 0;
  const int rc = MPI_Testall(static_cast<int>(reqs.size()), reqs.data(), &flag, st.data());
  if (rc != MPI_SUCCESS) {
    recordLocked(pending, rc, st);
    std::vector<Pending> rest;  // requests that failed or completed are freed by MPI
    for (size_t i = 0; i < pending.size(); i++)
      if (reqs[i] != MPI_REQUEST_NULL) rest.push_back({reqs[i], pending[i].comm, pending[i].keep});
    pending.swap(rest);
    return rc > 0 ? -rc : -1;
  }
  if (!flag) return 1;
  streams.erase(it);
  return 0;
}
