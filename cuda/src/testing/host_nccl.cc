// libpleat_host_nccl.so: a stand-in for NVIDIA's NCCL (libnccl.so.2) over MPI and host memory.
// pleat's NCCL backend (src/comm/nccl) dlopen()s NCCL and calls the entry points of NcclApi.ts;
// loading this library instead lets its tests run on machines without a GPU, under
// `mpirun -np N node ...`. What differs from real NCCL:
//   * "device buffers" are host pointers; cudaStream_t values are opaque tokens (any value, small
//     integers too), never dereferenced. Every operation starts at once as a nonblocking MPI call
//     (MPI_I*) whose request is queued under its stream token. Two extra exports stand in for
//     cudaStreamSynchronize / cudaStreamQuery and mark the library as pleat's host stand-in:
//     pleatHostNcclStreamSynchronize and pleatHostNcclStreamQuery. Operations on one stream are
//     not serialised against each other: one that reads what an earlier one writes must wait
//     for a synchronize first.
//   * The process has already called MPI_Init_thread(MPI_THREAD_MULTIPLE) (pleat_mpi.node, which
//     runs MPI on its own thread), so MPI is never initialised or finalised here, and nothing
//     collective runs on MPI_COMM_WORLD: ncclCommInitRank meets its peers point-to-point on
//     MPI_COMM_WORLD under tags reserved from the unique id (request 20000..23999, reply
//     24000..27999), then only the members call MPI_Comm_create_group (tag 28000..31999).
//   * Groups are per calling thread: the deferred calls start at the outermost ncclGroupEnd,
//     every receive first, then the sends, then the collectives in order.
//   * Float16, Bfloat16 and ncclAvg are rejected (ncclInvalidArgument).
// Calls may come from several threads at once (a libuv pool thread synchronising a stream while
// the main thread enqueues on another communicator): shared state is behind one mutex, and MPI
// calls that can block are made outside it.
#include <mpi.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <set>
#include <unordered_map>
#include <vector>

// ---- NCCL's types (nccl.h is not installed here) ---------------------------------------------
extern "C" {
typedef struct ncclComm* ncclComm_t;
#define NCCL_UNIQUE_ID_BYTES 128
typedef struct { char internal[NCCL_UNIQUE_ID_BYTES]; } ncclUniqueId;
typedef enum { ncclSuccess = 0, ncclUnhandledCudaError = 1, ncclSystemError = 2, ncclInternalError = 3,
               ncclInvalidArgument = 4, ncclInvalidUsage = 5, ncclRemoteError = 6, ncclInProgress = 7 } ncclResult_t;
typedef enum { ncclInt8 = 0, ncclUint8 = 1, ncclInt32 = 2, ncclUint32 = 3, ncclInt64 = 4, ncclUint64 = 5,
               ncclFloat16 = 6, ncclFloat32 = 7, ncclFloat64 = 8, ncclBfloat16 = 9 } ncclDataType_t;
typedef enum { ncclSum = 0, ncclProd = 1, ncclMax = 2, ncclMin = 3, ncclAvg = 4 } ncclRedOp_t;
typedef void* cudaStream_t;
}
#define NCCL_SPLIT_NOCOLOR (-1)
#define PLEAT_EXPORT extern "C" __attribute__((visibility("default")))

struct ncclComm {
  uint64_t id;                 // key of `live` and of the queued requests
  MPI_Comm mpi;                // members in NCCL rank order, MPI_ERRORS_RETURN
  int rank, size;
  std::atomic<int> mpiError{MPI_SUCCESS};  // the first MPI error seen on this communicator
};

namespace {

// The unique id: magic, the root's MPI_COMM_WORLD rank, a nonce (high half per process, low
// half a per-process counter: 4000 consecutive ids of one root get distinct tag slots).
struct IdLayout { char magic[16]; int32_t root, unused; uint64_t nonce; };
static_assert(sizeof(IdLayout) <= NCCL_UNIQUE_ID_BYTES, "id layout");
constexpr char kMagic[] = "PLEATHOSTNCCL";
constexpr int kSlots = 4000, kTagRequest = 20000, kTagReply = 24000, kTagCreate = 28000;

struct Pending { MPI_Request request; uint64_t comm; std::shared_ptr<void> keep; };  // keep: a staging copy it reads
struct Stream {
  std::vector<Pending> pending;  // started, not yet waited for
  std::set<uint64_t> waiting;    // tickets of batches a synchronize is waiting for
};

std::mutex mu;
std::condition_variable batchDone;
std::unordered_map<uintptr_t, Stream> streams;
std::unordered_map<uint64_t, ncclComm*> live;
uint64_t nextCommId = 1, nextTicket = 1;
std::atomic<uint32_t> idCounter{0};

enum Kind { kAllReduce, kAllGather, kReduceScatter, kReduce, kBroadcast, kSend, kRecv };
struct Op {  // root: the root of Reduce / Broadcast, the peer of Send / Recv
  Kind kind; const void* send; void* recv; size_t count; int dtype, redop, root; ncclComm_t comm; cudaStream_t stream;
};
thread_local int groupDepth = 0;
thread_local std::vector<Op> deferred;

uintptr_t keyOf(cudaStream_t s) { return reinterpret_cast<uintptr_t>(s); }

bool mpiReady() {
  int init = 0, fin = 0, level = 0;
  MPI_Initialized(&init);
  MPI_Finalized(&fin);
  return init && !fin && MPI_Query_thread(&level) == MPI_SUCCESS && level == MPI_THREAD_MULTIPLE;
}

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

ncclResult_t adopt(MPI_Comm made, ncclComm_t* out) {
  MPI_Comm_set_errhandler(made, MPI_ERRORS_RETURN);
  auto* c = new ncclComm();
  c->mpi = made;
  MPI_Comm_rank(made, &c->rank);
  MPI_Comm_size(made, &c->size);
  std::lock_guard<std::mutex> lock(mu);
  c->id = nextCommId++;
  live[c->id] = c;
  *out = c;
  return ncclSuccess;
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

// ---- Version, ids, communicators -------------------------------------------------------------
PLEAT_EXPORT ncclResult_t ncclGetVersion(int* version) {
  if (version == nullptr) return ncclInvalidArgument;
  *version = 21805;  // NCCL 2.18.5
  return ncclSuccess;
}

PLEAT_EXPORT ncclResult_t ncclGetUniqueId(ncclUniqueId* id) {
  if (id == nullptr) return ncclInvalidArgument;
  if (!mpiReady()) return ncclSystemError;
  static const uint64_t high = (static_cast<uint64_t>(getpid()) * 0x9E3779B97F4A7C15ull) ^
                               static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  IdLayout h{};
  std::memcpy(h.magic, kMagic, sizeof kMagic);
  MPI_Comm_rank(MPI_COMM_WORLD, &h.root);
  h.nonce = (high << 32) | idCounter.fetch_add(1);
  std::memset(id->internal, 0, sizeof id->internal);
  std::memcpy(id->internal, &h, sizeof h);
  return ncclSuccess;
}

PLEAT_EXPORT ncclResult_t ncclCommInitRank(ncclComm_t* out, int nranks, ncclUniqueId id, int rank) {
  if (out == nullptr || nranks < 1 || rank < 0 || rank >= nranks) return ncclInvalidArgument;
  *out = nullptr;
  if (!mpiReady()) return ncclSystemError;
  IdLayout h;
  std::memcpy(&h, id.internal, sizeof h);
  int me = 0, worldSize = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &me);
  MPI_Comm_size(MPI_COMM_WORLD, &worldSize);
  if (std::memcmp(h.magic, kMagic, sizeof kMagic) != 0 || h.root < 0 || h.root >= worldSize) return ncclInvalidArgument;
  if ((rank == 0) != (h.root == me)) return ncclInvalidUsage;  // nccl rank 0 is the id's maker
  const int slot = static_cast<int>(h.nonce % kSlots);
  std::vector<int> members(nranks, -1);  // world ranks in nccl rank order; members[0] < 0: refused
  members[0] = me;
  if (nranks > 1 && rank == 0) {
    // Root: one {nonce, world rank, nccl rank, nranks} from every other member, then the list back.
    std::vector<int> senders;
    bool ok = true;
    for (int i = 1; i < nranks; i++) {
      long long msg[4];
      MPI_Status st;
      if (MPI_Recv(msg, 4, MPI_LONG_LONG, MPI_ANY_SOURCE, kTagRequest + slot, MPI_COMM_WORLD, &st) != MPI_SUCCESS) return ncclSystemError;
      senders.push_back(st.MPI_SOURCE);
      const long long r = msg[2];
      if (static_cast<uint64_t>(msg[0]) != h.nonce || msg[1] != st.MPI_SOURCE || msg[3] != nranks || r < 1 || r >= nranks || members[r] >= 0) ok = false;
      else members[r] = st.MPI_SOURCE;
    }
    if (!ok) members[0] = -1;
    for (int to : senders)
      if (MPI_Send(members.data(), nranks, MPI_INT, to, kTagReply + slot, MPI_COMM_WORLD) != MPI_SUCCESS) return ncclSystemError;
    if (!ok) return ncclInvalidUsage;
  } else if (nranks > 1) {
    long long msg[4] = {static_cast<long long>(h.nonce), me, rank, nranks};
    if (MPI_Send(msg, 4, MPI_LONG_LONG, h.root, kTagRequest + slot, MPI_COMM_WORLD) != MPI_SUCCESS ||
        MPI_Recv(members.data(), nranks, MPI_INT, h.root, kTagReply + slot, MPI_COMM_WORLD, MPI_STATUS_IGNORE) != MPI_SUCCESS)
      return ncclSystemError;
    if (members[0] < 0) return ncclInvalidUsage;
  }
  MPI_Group world = MPI_GROUP_NULL, group = MPI_GROUP_NULL;
  MPI_Comm made = MPI_COMM_NULL;
  int rc = MPI_Comm_group(MPI_COMM_WORLD, &world);
  if (rc == MPI_SUCCESS) rc = MPI_Group_incl(world, nranks, members.data(), &group);
  if (rc == MPI_SUCCESS) rc = MPI_Comm_create_group(MPI_COMM_WORLD, group, kTagCreate + (slot + 97 * h.root) % kSlots, &made);
  if (group != MPI_GROUP_NULL) MPI_Group_free(&group);
  if (world != MPI_GROUP_NULL) MPI_Group_free(&world);
  if (rc != MPI_SUCCESS || made == MPI_COMM_NULL) return ncclSystemError;
  return adopt(made, out);
}

PLEAT_EXPORT ncclResult_t ncclCommSplit(ncclComm_t comm, int color, int key, ncclComm_t* newcomm, void* /*config*/) {
  if (comm == nullptr || newcomm == nullptr || color < NCCL_SPLIT_NOCOLOR) return ncclInvalidArgument;
  *newcomm = nullptr;
  MPI_Comm made = MPI_COMM_NULL;
  if (MPI_Comm_split(comm->mpi, color == NCCL_SPLIT_NOCOLOR ? MPI_UNDEFINED : color, key, &made) != MPI_SUCCESS) return ncclSystemError;
  return made == MPI_COMM_NULL ? ncclSuccess : adopt(made, newcomm);
}

PLEAT_EXPORT ncclResult_t ncclCommCount(const ncclComm_t comm, int* count) {
  if (comm == nullptr || count == nullptr) return ncclInvalidArgument;
  *count = comm->size;
  return ncclSuccess;
}

PLEAT_EXPORT ncclResult_t ncclCommUserRank(const ncclComm_t comm, int* rank) {
  if (comm == nullptr || rank == nullptr) return ncclInvalidArgument;
  *rank = comm->rank;
  return ncclSuccess;
}

PLEAT_EXPORT ncclResult_t ncclCommGetAsyncError(ncclComm_t comm, ncclResult_t* asyncError) {
  if (comm == nullptr || asyncError == nullptr) return ncclInvalidArgument;
  *asyncError = comm->mpiError.load() == MPI_SUCCESS ? ncclSuccess : ncclSystemError;
  return ncclSuccess;
}

PLEAT_EXPORT const char* ncclGetErrorString(ncclResult_t result) {
  static const char* const text[] = {"no error", "unhandled cuda error", "unhandled system error (MPI, pleat's host NCCL)",
                                     "internal error", "invalid argument", "invalid usage",
                                     "remote process exited or there was a network error", "NCCL operation in progress"};
  return result >= 0 && result < 8 ? text[result] : "unknown result code";
}

PLEAT_EXPORT ncclResult_t ncclCommDestroy(ncclComm_t comm) {
  if (comm == nullptr) return ncclInvalidArgument;
  std::vector<Pending> mine = release(comm->id);
  const int rc = waitBatch(mine);
  MPI_Comm_free(&comm->mpi);  // requests another thread still waits for complete normally
  delete comm;
  return rc == MPI_SUCCESS ? ncclSuccess : ncclSystemError;
}

// Drops the communicator without waiting: its requests and MPI communicator are leaked, since
// MPI_Comm_free may block on pending operations in some MPIs.
PLEAT_EXPORT ncclResult_t ncclCommAbort(ncclComm_t comm) {
  if (comm == nullptr) return ncclInvalidArgument;
  release(comm->id);
  delete comm;
  return ncclSuccess;
}

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
