// Issuing a member's NCCL plan (nccl_plan.h).
#include "nccl_plan.h"

#include <cmath>
#include <cstdint>

namespace pleat {
namespace nccl {

namespace {

bool whole(double v) { return v >= 0 && std::floor(v) == v && v < 9007199254740992.0; }

const char* fn_name(Fn fn) {
  switch (fn) {
    case Fn::GroupStart: return "ncclGroupStart";
    case Fn::GroupEnd: return "ncclGroupEnd";
    case Fn::AllReduce: return "ncclAllReduce";
    case Fn::AllGather: return "ncclAllGather";
    case Fn::ReduceScatter: return "ncclReduceScatter";
    case Fn::Reduce: return "ncclReduce";
    case Fn::Broadcast: return "ncclBroadcast";
    case Fn::Send: return "ncclSend";
    case Fn::Recv: return "ncclRecv";
    case Fn::Copy: return "copy";
  }
  return "?";
}

// The [offset, offset + count) ranges a call touches in the send and receive buffers.
struct Span {
  double send_end, recv_end;
};

Span span_of(const Call& c, int nranks, int rank) {
  switch (c.fn) {
    case Fn::AllReduce: return {c.a, c.a};
    case Fn::AllGather: return {c.a, c.a * nranks};
    case Fn::ReduceScatter: return {c.a * nranks, c.a};
    case Fn::Reduce: return {c.a + c.b, c.d == rank ? c.b : 0};
    case Fn::Broadcast: return {c.b == rank ? c.a : 0, c.a};
    case Fn::Send: return {c.a + c.b, 0};
    case Fn::Recv: return {0, c.a + c.b};
    case Fn::Copy: return {c.a + c.c, c.b + c.c};
    default: return {0, 0};
  }
}

}  // namespace

std::vector<Call> decode_plan(const double* rows, size_t length, int nranks, int rank, size_t send_length, size_t recv_length, std::string* why) {
  std::vector<Call> calls;
  if (length % kCallWidth != 0) {
    *why = "a plan is rows of " + std::to_string(kCallWidth) + " numbers, got " + std::to_string(length);
    return {};
  }
  for (size_t i = 0; i < length; i += kCallWidth) {
    const double* r = rows + i;
    const size_t row = i / kCallWidth;
    if (!whole(r[0]) || r[0] > static_cast<double>(Fn::Copy)) {
      *why = "plan row " + std::to_string(row) + ": unknown call " + std::to_string(r[0]);
      return {};
    }
    for (size_t k = 1; k < kCallWidth; ++k) {
      if (!whole(r[k])) {
        *why = "plan row " + std::to_string(row) + ": field " + std::to_string(k) + " is " + std::to_string(r[k]) + ", not a whole number";
        return {};
      }
    }
    const Call c{static_cast<Fn>(static_cast<int>(r[0])), r[1], r[2], r[3], r[4]};
    const bool peer = c.fn == Fn::Send || c.fn == Fn::Recv;
    const double party = peer ? c.c : c.fn == Fn::Reduce ? c.d : c.fn == Fn::Broadcast ? c.b : 0;
    if (party >= nranks) {
      *why = "plan row " + std::to_string(row) + " (" + fn_name(c.fn) + ") names member " + std::to_string(static_cast<int>(party)) + " of a communicator of " + std::to_string(nranks);
      return {};
    }
    const Span s = span_of(c, nranks, rank);
    if (s.send_end > static_cast<double>(send_length) || s.recv_end > static_cast<double>(recv_length)) {
      *why = "plan row " + std::to_string(row) + " (" + fn_name(c.fn) + ") reaches element " +
             std::to_string(static_cast<uint64_t>(s.send_end > static_cast<double>(send_length) ? s.send_end : s.recv_end)) + " of a " +
             (s.send_end > static_cast<double>(send_length) ? "send buffer of " + std::to_string(send_length) : "receive buffer of " + std::to_string(recv_length));
      return {};
    }
    calls.push_back(c);
  }
  return calls;
}

std::string issue_plan(const Api& api, Comm comm, Stream stream, int datatype, size_t element_bytes, const void* send, void* recv,
                       const std::vector<Call>& calls, const CopyFn& copy) {
  const char* s = static_cast<const char*>(send);
  char* r = static_cast<char*>(recv);
  const auto at = [&](double offset) { return static_cast<size_t>(offset) * element_bytes; };
  const auto n = [](double v) { return static_cast<size_t>(v); };
  const auto i = [](double v) { return static_cast<int>(v); };
  int depth = 0;
  for (const Call& c : calls) {
    int code = kSuccess;
    switch (c.fn) {
      case Fn::GroupStart:
        code = api.group_start();
        if (code == kSuccess) ++depth;
        break;
      case Fn::GroupEnd:
        code = api.group_end();
        if (code == kSuccess) --depth;
        break;
      case Fn::AllReduce: code = api.all_reduce(s, r, n(c.a), datatype, i(c.b), comm, stream); break;
      case Fn::AllGather: code = api.all_gather(s, r, n(c.a), datatype, comm, stream); break;
      case Fn::ReduceScatter: code = api.reduce_scatter(s, r, n(c.a), datatype, i(c.b), comm, stream); break;
      case Fn::Reduce: code = api.reduce(s + at(c.a), r, n(c.b), datatype, i(c.c), i(c.d), comm, stream); break;
      case Fn::Broadcast: code = api.broadcast(s, r, n(c.a), datatype, i(c.b), comm, stream); break;
      case Fn::Send: code = api.send(s + at(c.a), n(c.b), datatype, i(c.c), comm, stream); break;
      case Fn::Recv: code = api.recv(r + at(c.a), n(c.b), datatype, i(c.c), comm, stream); break;
      case Fn::Copy:
        if (!copy(r + at(c.b), s + at(c.a), at(c.c), stream)) {
          while (depth-- > 0) api.group_end();
          return "the copy of the kept rows failed";
        }
        break;
    }
    if (code != kSuccess) {
      // A group left open would swallow the next collective's calls on this thread.
      while (depth-- > 0) api.group_end();
      return api.error_text(fn_name(c.fn), code);
    }
  }
  while (depth-- > 0) api.group_end();
  return {};
}

}  // namespace nccl
}  // namespace pleat
