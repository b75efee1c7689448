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
//
// The library is two files around this header, which holds NCCL's types and what both use:
// host_nccl_comm.cc makes the unique ids, runs the rendezvous and owns the communicators;
// host_nccl_ops.cc queues the operations on their stream tokens, runs the groups and waits for
// the streams.
#pragma once

#include <mpi.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
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

// ---- Shared by the two files -----------------------------------------------------------------
// Hidden: the library exports NCCL's entry points and the two stream calls only.
#pragma GCC visibility push(hidden)
namespace pleat::host_nccl {

struct Pending { MPI_Request request; uint64_t comm; std::shared_ptr<void> keep; };  // keep: a staging copy it reads

// Defined in host_nccl_comm.cc. `mu` also guards the streams' queues of host_nccl_ops.cc.
extern std::mutex mu;
extern std::unordered_map<uint64_t, ncclComm*> live;

// Defined in host_nccl_ops.cc, for ncclCommDestroy / ncclCommAbort: release takes a communicator
// out of `live` and its queued requests out of the streams; waitBatch waits for requests taken
// out (outside the mutex), records their errors and returns MPI_Waitall's code.
int waitBatch(std::vector<Pending>& batch);
std::vector<Pending> release(uint64_t comm);

}  // namespace pleat::host_nccl
#pragma GCC visibility pop
