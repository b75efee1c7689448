// The NCCL calls of one member's part of a collective (src/comm/nccl/NcclPlan.ts makes the list;
// this file issues it). A plan arrives as a Float64Array of rows of kCallWidth numbers:
//   [fn, a, b, c, d]  with fn one of Fn and, in elements of the send / receive buffers,
//   GroupStart / GroupEnd    -
//   AllReduce                a count, b op
//   AllGather                a sendcount
//   ReduceScatter            a recvcount, b op
//   Reduce                   a sendOffset, b count, c op, d root
//   Broadcast                a count, b root
//   Send                     a sendOffset, b count, c peer
//   Recv                     a recvOffset, b count, c peer
//   Copy                     a sendOffset, b recvOffset, c count   (the rows a member keeps)
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "nccl_api.h"

namespace pleat {
namespace nccl {

enum class Fn : int { GroupStart = 0, GroupEnd, AllReduce, AllGather, ReduceScatter, Reduce, Broadcast, Send, Recv, Copy };

constexpr size_t kCallWidth = 5;

struct Call {
  Fn fn;
  double a, b, c, d;
};

// The calls of a plan for member `rank` of a communicator of `nranks`, or an error naming the
// first bad row (unknown fn, a negative or fractional number, a peer or root outside the
// communicator, a range past `send_length` / `recv_length` elements).
std::vector<Call> decode_plan(const double* rows, size_t length, int nranks, int rank, size_t send_length, size_t recv_length, std::string* why);

// Copies `bytes` from `src` to `dst` in stream order (a device copy, or memcpy on host memory).
using CopyFn = std::function<bool(void* dst, const void* src, size_t bytes, Stream)>;

// Issues `calls` on `comm` and `stream` over the send and receive buffers (elements of
// `element_bytes`). Returns an empty string, or the failed call's error text (NCCL's own).
std::string issue_plan(const Api& api, Comm comm, Stream stream, int datatype, size_t element_bytes, const void* send, void* recv,
                       const std::vector<Call>& calls, const CopyFn& copy);

}  // namespace nccl
}  // namespace pleat
