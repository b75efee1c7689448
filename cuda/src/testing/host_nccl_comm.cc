// Unique ids, the rendezvous of ncclCommInitRank and the communicators of libpleat_host_nccl.so
// (what the library is: host_nccl.h).
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "host_nccl.h"

namespace pleat::host_nccl {
std::mutex mu;
std::unordered_map<uint64_t, ncclComm*> live;  // the communicators not yet destroyed or aborted
}  // namespace pleat::host_nccl

using namespace pleat::host_nccl;

namespace {

// The unique id: magic, the root's MPI_COMM_WORLD rank, a nonce (high half per process, low
// half a per-process counter: 4000 consecutive ids of one root get distinct tag slots).
struct IdLayout { char magic[16]; int32_t root, unused; uint64_t nonce; };
static_assert(sizeof(IdLayout) <= NCCL_UNIQUE_ID_BYTES, "id layout");
constexpr char kMagic[] = "PLEATHOSTNCCL";
constexpr int kSlots = 4000, kTagRequest = 20000, kTagReply = 24000, kTagCreate = 28000;

uint64_t nextCommId = 1;
std::atomic<uint32_t> idCounter{0};

bool mpiReady() {
  int init = 0, fin = 0, level = 0;
  MPI_Initialized(&init);
  MPI_Finalized(&fin);
  return init && !fin && MPI_Query_thread(&level) == MPI_SUCCESS && level == MPI_THREAD_MULTIPLE;
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
