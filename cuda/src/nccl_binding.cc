// NCCL on pleat_cuda.node: the native side of the NCCL backend (src/comm/nccl/NcclTransport.ts).
//
//   ncclLoad(path) -> { path, version, hostMemory }    dlopen once per process (nccl/nccl_api.h);
//                                                      throws naming the file and what it lacks
//   ncclUniqueId() -> Uint8Array(128)                  a new communicator's id (on one member)
//   ncclCommInit(id, nranks, rank, device) -> Promise<handle>
//                    ncclCommInitRank on a thread of its own (it waits for every member, which
//                    on libuv's pool could starve it: thread_work.h); `device`:
//                    the rank's GPU, set on that thread first (-1 with the host stand-in)
//   ncclCommRun(handle, stream, calls, send, recv) -> Promise<void>
//                    one member's plan (nccl/nccl_plan.h) over Float32Arrays or Float64Arrays,
//                    or device arrays of them (device_array_binding.cc), send and recv of the
//                    same type and the same kind. Device arrays are used in place: the group's
//                    stream first waits (an event) for what stream 0, the compute stream, has
//                    queued so far, which wrote `send`; the Promise settles once the group's
//                    stream has run the plan, and compute queued after that reads `recv`. On
//                    the JS thread the calls
//                    are queued in issue order (NCCL's enqueue does not wait for the peers); the
//                    Promise settles from libuv's pool once the stream has run them. With a GPU
//                    the arrays are staged: copied into device blocks of the caching allocator
//                    on stream `stream`, the plan runs there, the receive block is copied back
//                    after the stream is done (a host-to-device copy from pageable memory may
//                    wait for the stream's earlier work: every member has queued that work,
//                    since the host agreed on it first). With the host stand-in the arrays are
//                    the buffers and `stream` is its token.
//   ncclCommError(handle) -> string | null             ncclCommGetAsyncError's text
//   ncclCommFree(handle, abort)                        ncclCommDestroy, or ncclCommAbort
#include "nccl_binding.h"

#include <cuda_runtime.h>

#include <cstring>
#include <memory>
#include <string>
#include <unordered_map>

#include "async_work.h"
#include "thread_work.h"
#include "device_buffers.h"
#include "device_memory_binding.h"
#include "napi_args.h"
#include "nccl/nccl_api.h"
#include "nccl/nccl_plan.h"

namespace pleat {

namespace {

struct CommEntry {
  nccl::Comm comm;
  int nranks;
  int rank;
  int device;  // -1: the host stand-in
};

std::unordered_map<int, CommEntry>& comms() {
  static std::unordered_map<int, CommEntry> table;
  return table;
}
int g_next_handle = 1;

nccl::Api* api_or_throw(Napi::Env env, const char* fn) {
  nccl::Api* api = nccl::loaded();
  if (api == nullptr) Napi::Error::New(env, std::string(fn) + ": NCCL is not loaded (ncclLoad first)").ThrowAsJavaScriptException();
  return api;
}

CommEntry* entry_or_throw(const Napi::CallbackInfo& info, const char* fn) {
  double handle = 0;
  if (!expect_whole(info, fn, 0, "handle", &handle)) return nullptr;
  const auto it = comms().find(static_cast<int>(handle));
  if (it == comms().end()) {
    Napi::RangeError::New(info.Env(), std::string(fn) + ": " + std::to_string(static_cast<int>(handle)) + " is not a live communicator").ThrowAsJavaScriptException();
    return nullptr;
  }
  return &it->second;
}

std::string cuda_text(const char* call, cudaError_t err) {
  (void)cudaGetLastError();
  return std::string(call) + " failed: " + cudaGetErrorName(err) + ": " + cudaGetErrorString(err);
}

Napi::Value NcclLoad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 1 || !info[0].IsString()) {
    throw_type_error(env, "ncclLoad(path: string)");
    return env.Undefined();
  }
  std::string why;
  nccl::Api* api = nccl::load(info[0].As<Napi::String>().Utf8Value(), &why);
  if (api == nullptr) {
    Napi::Error::New(env, why).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("path", api->path);
  out.Set("version", api->version);
  out.Set("hostMemory", api->host_memory());
  return out;
}

Napi::Value NcclUniqueId(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  nccl::Api* api = api_or_throw(env, "ncclUniqueId");
  if (api == nullptr) return env.Undefined();
  nccl::UniqueId id{};
  const int code = api->get_unique_id(&id);
  if (code != nccl::kSuccess) {
    Napi::Error::New(env, api->error_text("ncclGetUniqueId", code)).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Uint8Array out = Napi::Uint8Array::New(env, nccl::kUniqueIdBytes);
  std::memcpy(out.Data(), id.internal, nccl::kUniqueIdBytes);
  return out;
}

Napi::Value NcclCommInit(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::TypedArray id_array;
  double nranks = 0, rank = 0;
  if (!expect_arity(info, "ncclCommInit", 4) || !expect_typed_array(info, "ncclCommInit", 0, "id", &id_array) ||
      !expect_whole(info, "ncclCommInit", 1, "nranks", &nranks) || !expect_whole(info, "ncclCommInit", 2, "rank", &rank) || !info[3].IsNumber())
    return env.Undefined();
  const int device = info[3].As<Napi::Number>().Int32Value();
  if (id_array.ByteLength() != nccl::kUniqueIdBytes || nranks < 1 || rank >= nranks) {
    throw_range_error(env, "ncclCommInit: the id must be 128 bytes and 0 <= rank < nranks, got " + std::to_string(id_array.ByteLength()) + " bytes, rank " +
                               std::to_string(static_cast<int>(rank)) + " of " + std::to_string(static_cast<int>(nranks)));
    return env.Undefined();
  }
  nccl::Api* api = api_or_throw(env, "ncclCommInit");
  if (api == nullptr) return env.Undefined();
  if ((device < 0) != api->host_memory()) {
    throw_range_error(env, std::string("ncclCommInit: device ") + std::to_string(device) + (api->host_memory() ? " with the host stand-in (use -1)" : ": NCCL needs a GPU (0 or more)"));
    return env.Undefined();
  }
  auto id = std::make_shared<nccl::UniqueId>();
  std::memcpy(id->internal, view_bytes(id_array), nccl::kUniqueIdBytes);
  auto made = std::make_shared<nccl::Comm>(nullptr);
  const int n = static_cast<int>(nranks), r = static_cast<int>(rank);
  auto run = [api, id, made, n, r, device]() -> std::string {
    if (device >= 0) {
      const cudaError_t err = cudaSetDevice(device);
      if (err != cudaSuccess) return cuda_text("cudaSetDevice", err);
    }
    const int code = api->comm_init_rank(made.get(), n, *id, r);
    return code == nccl::kSuccess ? std::string() : api->error_text("ncclCommInitRank", code);
  };
  auto settle = [made, n, r, device](Napi::Env e, bool ok) -> Napi::Value {
    if (!ok) return e.Undefined();
    const int handle = g_next_handle++;
    comms()[handle] = CommEntry{*made, n, r, device};
    return Napi::Number::New(e, handle);
  };
  // On a thread of its own, not libuv's pool: it waits for every member (thread_work.h).
  return start_on_own_thread(env, "ncclCommInit", run, settle);
}

// The element size and NCCL datatype of a float32 / float64 argument.
void element_of(const ArrayArg& a, size_t* bytes, int* datatype) {
  if (a.type == napi_float64_array) *bytes = 8, *datatype = 8;
  else *bytes = 4, *datatype = 7;
}

// Queues `calls` on stream `stream_id` over device memory (the arrays resident, or staged blocks):
// the stream waits for stream 0's work so far first. Returns why it failed, or "".
std::string issue_on_device(nccl::Api& api, DeviceMemory& memory, nccl::Comm comm, int stream_id, int datatype, size_t element, uint8_t* d_send,
                            uint8_t* d_recv, const std::vector<nccl::Call>& calls) {
  cudaStream_t cs = memory.backend.stream(stream_id);
  cudaStream_t compute = memory.backend.stream(0);
  if (cs == nullptr || compute == nullptr) return "cannot create stream " + std::to_string(stream_id);
  cudaEvent_t written = nullptr;
  cudaError_t err = cudaEventCreateWithFlags(&written, cudaEventDisableTiming);
  if (err == cudaSuccess) err = cudaEventRecord(written, compute);
  if (err == cudaSuccess) err = cudaStreamWaitEvent(cs, written, 0);
  if (written != nullptr) (void)cudaEventDestroy(written);  // released once the wait is past
  if (err != cudaSuccess) return cuda_text("ordering the NCCL stream after the compute stream", err);
  const auto copy = [](void* dst, const void* src, size_t bytes, nccl::Stream s) {
    return bytes == 0 || cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, static_cast<cudaStream_t>(s)) == cudaSuccess;
  };
  return nccl::issue_plan(api, comm, cs, datatype, element, d_send, d_recv, calls, copy);
}

Napi::Value NcclCommRun(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* fn = "ncclCommRun";
  if (!expect_arity(info, fn, 5)) return env.Undefined();
  CommEntry* entry = entry_or_throw(info, fn);
  double stream_number = 0;
  Napi::TypedArray calls_array;
  ArrayArg send, recv;
  if (entry == nullptr || !expect_whole(info, fn, 1, "stream", &stream_number) || !expect_typed_array(info, fn, 2, "calls", &calls_array) ||
      !expect_array(info, fn, 3, "send", {napi_float32_array, napi_float64_array}, &send) ||
      !expect_array(info, fn, 4, "recv", {napi_float32_array, napi_float64_array}, &recv))
    return env.Undefined();
  if (calls_array.TypedArrayType() != napi_float64_array || send.type != recv.type || send.resident != recv.resident) {
    throw_type_error(env, std::string(fn) + ": calls must be a Float64Array and send / recv of one type, both host arrays or both device arrays, got " + describe(calls_array) +
                              ", " + (send.resident ? "a device array of " : "") + typed_array_name(send.type) + ", " + (recv.resident ? "a device array of " : "") +
                              typed_array_name(recv.type));
    return env.Undefined();
  }
  size_t element = 0;
  int datatype = 0;
  element_of(send, &element, &datatype);
  nccl::Api* api = api_or_throw(env, fn);
  if (api == nullptr) return env.Undefined();
  if (send.resident && api->host_memory()) {
    throw_type_error(env, std::string(fn) + ": the host stand-in cannot reach device memory: pass host arrays");
    return env.Undefined();
  }
  std::string why;
  const std::vector<nccl::Call> calls = nccl::decode_plan(reinterpret_cast<const double*>(view_bytes(calls_array)), calls_array.ElementLength(), entry->nranks,
                                                          entry->rank, send.length, recv.length, &why);
  if (!why.empty()) {
    throw_range_error(env, std::string(fn) + ": " + why);
    return env.Undefined();
  }
  const size_t send_bytes = send.bytes(), recv_bytes = recv.bytes();
  const int stream_id = static_cast<int>(stream_number);
  const nccl::Comm comm = entry->comm;
  const std::vector<Napi::Value> keep = {send.value, recv.value, calls_array};
  if (api->host_memory()) {
    nccl::Stream token = reinterpret_cast<nccl::Stream>(static_cast<uintptr_t>(stream_id) + 1);
    const auto copy = [](void* dst, const void* src, size_t bytes, nccl::Stream) {
      if (bytes > 0) std::memmove(dst, src, bytes);
      return true;
    };
    const std::string failed = nccl::issue_plan(*api, comm, token, datatype, element, send.data, recv.data, calls, copy);
    if (!failed.empty()) {
      Napi::Error::New(env, failed).ThrowAsJavaScriptException();
      return env.Undefined();
    }
    auto run = [api, token]() -> std::string {
      const int rc = api->host_stream_synchronize(token);
      return rc == 0 ? std::string() : "the host stand-in's stream failed with MPI error " + std::to_string(rc);
    };
    auto* work = new KernelWork(env, fn, run, keep);
    work->Queue();
    return work->Promise();
  }
  DeviceMemory* memory = device_memory(env);
  if (memory == nullptr) return env.Undefined();
  cudaStream_t cs = memory->backend.stream(stream_id);
  const int device = memory->backend.device();
  if (send.resident) {
    // In place: no staging, nothing copied back; the arrays stay referenced until the run settles.
    const std::string failed = issue_on_device(*api, *memory, comm, stream_id, datatype, element, send.data, recv.data, calls);
    if (!failed.empty()) {
      Napi::Error::New(env, failed).ThrowAsJavaScriptException();
      return env.Undefined();
    }
    auto run = [cs, device]() -> std::string {
      cudaError_t e = cudaSetDevice(device);
      if (e == cudaSuccess) e = cudaStreamSynchronize(cs);
      return e == cudaSuccess ? std::string() : cuda_text("the NCCL run on device arrays", e);
    };
    auto* work = new KernelWork(env, fn, run, keep);
    work->Queue();
    return work->Promise();
  }
  // The staged blocks go back to the allocator when the run's KernelWork is deleted on the JS
  // thread after it settled, or here when queuing fails.
  auto blocks = std::make_shared<DeviceBuffers>(memory, stream_id);
  uint8_t* d_send = send_bytes > 0 ? blocks->make<uint8_t>(send_bytes) : nullptr;
  uint8_t* d_recv = recv_bytes > 0 ? blocks->make<uint8_t>(recv_bytes) : nullptr;
  if (cs == nullptr || (send_bytes > 0 && d_send == nullptr) || (recv_bytes > 0 && d_recv == nullptr)) {
    Napi::Error::New(env, std::string(fn) + ": " + (cs == nullptr ? "cannot create stream " + std::to_string(stream_id) : "the device is out of memory for the staged buffers"))
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  cudaError_t err = send_bytes > 0 ? cudaMemcpyAsync(d_send, send.data, send_bytes, cudaMemcpyHostToDevice, cs) : cudaSuccess;
  if (err != cudaSuccess) {
    Napi::Error::New(env, cuda_text("cudaMemcpyAsync (host to device)", err)).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const std::string failed = issue_on_device(*api, *memory, comm, stream_id, datatype, element, d_send, d_recv, calls);
  if (!failed.empty()) {
    Napi::Error::New(env, failed).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  uint8_t* host_recv = recv.data;
  auto run = [cs, device, blocks, d_recv, host_recv, recv_bytes]() -> std::string {
    cudaError_t e = cudaSetDevice(device);
    if (e == cudaSuccess) e = cudaStreamSynchronize(cs);
    if (e == cudaSuccess && recv_bytes > 0) e = cudaMemcpy(host_recv, d_recv, recv_bytes, cudaMemcpyDeviceToHost);
    return e == cudaSuccess ? std::string() : cuda_text("the staged NCCL run", e);
  };
  auto* work = new KernelWork(env, fn, run, keep);
  work->Queue();
  return work->Promise();
}

Napi::Value NcclCommError(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CommEntry* entry = entry_or_throw(info, "ncclCommError");
  nccl::Api* api = entry == nullptr ? nullptr : api_or_throw(env, "ncclCommError");
  if (api == nullptr) return env.Undefined();
  int async = nccl::kSuccess;
  const int code = api->comm_get_async_error(entry->comm, &async);
  if (code != nccl::kSuccess) return Napi::String::New(env, api->error_text("ncclCommGetAsyncError", code));
  return async == nccl::kSuccess ? env.Null() : Napi::String::New(env, api->error_text("the communicator", async)).As<Napi::Value>();
}

Napi::Value NcclCommFree(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CommEntry* entry = entry_or_throw(info, "ncclCommFree");
  nccl::Api* api = entry == nullptr ? nullptr : api_or_throw(env, "ncclCommFree");
  if (api == nullptr) return env.Undefined();
  const bool abort = info[1].ToBoolean().Value();
  const int code = abort ? api->comm_abort(entry->comm) : api->comm_destroy(entry->comm);
  comms().erase(static_cast<int>(info[0].As<Napi::Number>().Int32Value()));
  if (code != nccl::kSuccess) Napi::Error::New(env, api->error_text(abort ? "ncclCommAbort" : "ncclCommDestroy", code)).ThrowAsJavaScriptException();
  return env.Undefined();
}

}  // namespace

void RegisterNcclExports(Napi::Env env, Napi::Object exports) {
  exports.Set("ncclLoad", Napi::Function::New(env, NcclLoad, "ncclLoad"));
  exports.Set("ncclUniqueId", Napi::Function::New(env, NcclUniqueId, "ncclUniqueId"));
  exports.Set("ncclCommInit", Napi::Function::New(env, NcclCommInit, "ncclCommInit"));
  exports.Set("ncclCommRun", Napi::Function::New(env, NcclCommRun, "ncclCommRun"));
  exports.Set("ncclCommError", Napi::Function::New(env, NcclCommError, "ncclCommError"));
  exports.Set("ncclCommFree", Napi::Function::New(env, NcclCommFree, "ncclCommFree"));
}

}  // namespace pleat
