// NCCL, loaded at run time (dlopen): the entry points pleat's NCCL backend calls, declared here
// with nccl.h's signatures because the headers are not installed where pleat builds (the
// library is found on GPU machines only, often in a Python environment's nvidia packages).
// Streams are `void*` (a cudaStream_t) so that this file needs no CUDA header.
//
// The same loader takes pleat's host stand-in (cuda/src/testing/host_nccl.h, NCCL's entry
// points over MPI on host memory, for the backend's tests on machines without a GPU): a library
// that also exports `pleatHostNcclStreamSynchronize` is the stand-in, its buffers are host
// memory and its streams are tokens that only it understands.
#pragma once

#include <cstddef>
#include <string>

namespace pleat {
namespace nccl {

constexpr int kSuccess = 0;
constexpr int kUniqueIdBytes = 128;  // NCCL_UNIQUE_ID_BYTES

// ncclUniqueId, passed by value to ncclCommInitRank.
struct UniqueId {
  char internal[kUniqueIdBytes];
};

using Comm = void*;    // ncclComm_t
using Stream = void*;  // cudaStream_t

struct Api {
  int (*get_version)(int*) = nullptr;
  int (*get_unique_id)(UniqueId*) = nullptr;
  int (*comm_init_rank)(Comm*, int nranks, UniqueId id, int rank) = nullptr;
  int (*group_start)() = nullptr;
  int (*group_end)() = nullptr;
  int (*all_reduce)(const void* send, void* recv, size_t count, int datatype, int op, Comm, Stream) = nullptr;
  int (*all_gather)(const void* send, void* recv, size_t sendcount, int datatype, Comm, Stream) = nullptr;
  int (*reduce_scatter)(const void* send, void* recv, size_t recvcount, int datatype, int op, Comm, Stream) = nullptr;
  int (*reduce)(const void* send, void* recv, size_t count, int datatype, int op, int root, Comm, Stream) = nullptr;
  int (*broadcast)(const void* send, void* recv, size_t count, int datatype, int root, Comm, Stream) = nullptr;
  int (*send)(const void* send, size_t count, int datatype, int peer, Comm, Stream) = nullptr;
  int (*recv)(void* recv, size_t count, int datatype, int peer, Comm, Stream) = nullptr;
  int (*comm_get_async_error)(Comm, int*) = nullptr;
  const char* (*get_error_string)(int) = nullptr;
  int (*comm_abort)(Comm) = nullptr;
  int (*comm_destroy)(Comm) = nullptr;
  // The host stand-in's own: waits for / polls what was queued on a stream token.
  int (*host_stream_synchronize)(Stream) = nullptr;
  int (*host_stream_query)(Stream) = nullptr;
  std::string path;
  int version = 0;

  // Buffers are host memory and streams are the stand-in's tokens.
  bool host_memory() const { return host_stream_synchronize != nullptr; }
  // "ncclAllReduce failed: <NCCL's text> (code 2)".
  std::string error_text(const char* call, int code) const;
};

// Loads NCCL from `path` once per process; later calls return the loaded one and fail when they
// name another file. Null with `why` set when the file does not load or lacks an entry point.
Api* load(const std::string& path, std::string* why);

// The loaded NCCL, or null.
Api* loaded();

}  // namespace nccl
}  // namespace pleat
