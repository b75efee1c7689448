// Device arrays: a block of the process's caching allocator owned by a JS value (an External),
// what src/tensor/device/CudaRuntime.ts keeps a tensor's values in on the GPU.
//
//   deviceArrayNew(length, dtype) -> array       dtype "float32" or "float64"; uninitialised;
//                                                null when the device is full
//   deviceArrayZero(array)                       every byte 0
//   deviceArrayCopyIn(array, src)                src: a host typed array of the same bytes
//   deviceArrayCopyOut(array, dst)               into a host typed array of the same bytes
//                                                (waits for the device)
//   deviceArrayCopyOutAsync(array, dst) -> Promise  the same copy without waiting: queued on
//                                                stream 0 now into pinned staging memory; a
//                                                thread of its own waits for it, then the JS
//                                                thread moves the bytes into dst and resolves
//   deviceArrayCopy(dst, src)                    device to device, same bytes
//   deviceArrayCopyRange(dst, dstOffset, src, srcOffset, length)
//                                                elements [srcOffset, +length) of src into
//                                                [dstOffset, +length) of dst, device to device:
//                                                one dtype, both ranges inside their arrays, not
//                                                overlapping when dst is src (a bucket's slices)
//   deviceArrayAdd(a, b, out)                    out = a + b, float32 device arrays of one length
//                                                (a copy and axpy's one fused a * 1 + b per
//                                                element: one rounding, the host's sum)
//
// Every kernel binding of this addon takes a device array wherever it takes a Float32Array or
// Float64Array (napi_args.h's expect_array asks this file's reader): the kernel then runs on it
// in place, with no copy in or out (device_staging.h). Only float arrays are made, so an
// argument the bindings read on the host (indices, counts: Int32Array) is never one.
//
// The block is freed when the JS value is collected (the allocator keeps it for reuse on its
// stream; every kernel of the addon runs on stream 0), and V8 is told its size, so device memory
// in use counts toward collection as ArrayBuffers do. Work is queued on stream 0; a plain copy
// out waits for it, an async one (what a training step uses) does not.
#include "device_array_binding.h"

#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <unordered_set>

#include "device_memory_binding.h"
#include "kernels/axpy_cuda.h"
#include "napi_args.h"
#include "thread_work.h"

namespace pleat {

namespace {

struct DeviceBlock {
  void* data = nullptr;
  size_t length = 0;
  napi_typedarray_type type = napi_float32_array;
  size_t bytes() const { return length * (type == napi_float64_array ? 8 : 4); }
};

// The live blocks: what makes an External a device array (and not any other External).
std::unordered_set<const DeviceBlock*>& live() {
  static std::unordered_set<const DeviceBlock*> blocks;
  return blocks;
}

const DeviceBlock* block_of(const Napi::Value& value) {
  if (!value.IsExternal()) return nullptr;
  const auto* b = value.As<Napi::External<DeviceBlock>>().Data();
  return live().count(b) != 0 ? b : nullptr;
}

bool read_device_array(const Napi::Value& value, napi_typedarray_type* type, size_t* length, uint8_t** data) {
  const DeviceBlock* b = block_of(value);
  if (b == nullptr) return false;
  *type = b->type;
  *length = b->length;
  *data = static_cast<uint8_t*>(b->data);
  return true;
}

void release(Napi::Env env, DeviceBlock* b) {
  live().erase(b);
  if (DeviceMemory* m = device_memory_if_made(); m != nullptr) m->allocator.free(b->data);
  Napi::MemoryManagement::AdjustExternalMemory(env, -static_cast<int64_t>(b->bytes()));
  delete b;
}

const DeviceBlock* expect_block(const Napi::CallbackInfo& info, const char* fn, size_t index, const char* name) {
  const DeviceBlock* b = block_of(info[index]);
  if (b == nullptr) throw_type_error(info.Env(), std::string(fn) + ": " + name + " must be a device array (deviceArrayNew), got " + describe(info[index]));
  return b;
}

cudaError_t finish(Napi::Env env, const char* fn, cudaError_t queued, bool wait) {
  DeviceMemory* m = device_memory_if_made();
  const cudaError_t err = queued != cudaSuccess ? queued : wait && m != nullptr ? cudaStreamSynchronize(m->backend.stream(0)) : cudaSuccess;
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    Napi::Error::New(env, std::string("CUDA error: ") + fn + " failed: " + cudaGetErrorName(err) + ": " + cudaGetErrorString(err)).ThrowAsJavaScriptException();
  }
  return err;
}

Napi::Value DeviceArrayNew(const Napi::CallbackInfo& info) {
  const char* fn = "deviceArrayNew";
  Napi::Env env = info.Env();
  double length = 0;
  if (!expect_whole(info, fn, 0, "length", &length)) return env.Undefined();
  const std::string dtype = info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "";
  if (dtype != "float32" && dtype != "float64") {
    throw_type_error(env, std::string(fn) + ": dtype must be \"float32\" or \"float64\", got " + describe(info[1]));
    return env.Undefined();
  }
  DeviceMemory* m = device_memory(env);
  if (m == nullptr) return env.Undefined();
  auto* b = new DeviceBlock{nullptr, static_cast<size_t>(length), dtype == "float64" ? napi_float64_array : napi_float32_array};
  // At least one element's bytes, so that an empty array still has an address of its own.
  b->data = m->allocator.allocate(b->bytes() > 0 ? b->bytes() : 8, 0);
  if (b->data == nullptr) {
    delete b;
    return env.Null();
  }
  live().insert(b);
  Napi::MemoryManagement::AdjustExternalMemory(env, static_cast<int64_t>(b->bytes()));
  return Napi::External<DeviceBlock>::New(env, b, release);
}

Napi::Value DeviceArrayZero(const Napi::CallbackInfo& info) {
  const DeviceBlock* b = expect_block(info, "deviceArrayZero", 0, "array");
  if (b == nullptr) return info.Env().Undefined();
  finish(info.Env(), "deviceArrayZero", cudaMemsetAsync(b->data, 0, b->bytes(), device_memory_if_made()->backend.stream(0)), false);
  return info.Env().Undefined();
}

// deviceArrayCopyIn / deviceArrayCopyOut: `in` copies host -> device.
Napi::Value CopyHost(const Napi::CallbackInfo& info, bool in) {
  const char* fn = in ? "deviceArrayCopyIn" : "deviceArrayCopyOut";
  Napi::Env env = info.Env();
  const DeviceBlock* b = expect_block(info, fn, 0, "array");
  if (b == nullptr) return env.Undefined();
  ArrayArg host;
  if (!expect_array(info, fn, 1, in ? "src" : "dst", {b->type}, &host)) return env.Undefined();
  if (host.resident || host.length != b->length) {
    throw_range_error(env, std::string(fn) + ": the host array must be a typed array of the device array's " + std::to_string(b->length) + " elements");
    return env.Undefined();
  }
  if (b->bytes() == 0) return env.Undefined();
  cudaStream_t s = device_memory_if_made()->backend.stream(0);
  // A copy in is queued (the host array's bytes are read before cudaMemcpyAsync returns for
  // pageable memory); a copy out waits, since the caller reads the host array next.
  const cudaError_t err = in ? cudaMemcpyAsync(b->data, host.data, b->bytes(), cudaMemcpyHostToDevice, s) : cudaMemcpyAsync(host.data, b->data, b->bytes(), cudaMemcpyDeviceToHost, s);
  finish(env, fn, err, !in);
  return env.Undefined();
}

// Pinned staging buffers for async copies out, reused (page-locking memory is slow and
// serialises the device's streams), keyed by capacity; touched on the JS thread only.
std::multimap<size_t, void*>& idle_staging() {
  static std::multimap<size_t, void*> buffers;
  return buffers;
}

cudaError_t take_staging(size_t bytes, void** out, size_t* capacity) {
  auto& idle = idle_staging();
  if (auto it = idle.lower_bound(bytes); it != idle.end() && it->first <= 2 * bytes + 4096) {
    *capacity = it->first;
    *out = it->second;
    idle.erase(it);
    return cudaSuccess;
  }
  *capacity = bytes;
  return cudaMallocHost(out, bytes);
}

Napi::Value DeviceArrayCopyOutAsync(const Napi::CallbackInfo& info) {
  const char* fn = "deviceArrayCopyOutAsync";
  Napi::Env env = info.Env();
  const DeviceBlock* b = expect_block(info, fn, 0, "array");
  if (b == nullptr) return env.Undefined();
  ArrayArg host;
  if (!expect_array(info, fn, 1, "dst", {b->type}, &host)) return env.Undefined();
  if (host.resident || host.length != b->length) {
    throw_range_error(env, std::string(fn) + ": dst must be a host typed array of the device array's " + std::to_string(b->length) + " elements");
    return env.Undefined();
  }
  if (b->bytes() == 0) {
    auto deferred = Napi::Promise::Deferred::New(env);
    deferred.Resolve(env.Undefined());
    return deferred.Promise();
  }
  DeviceMemory* m = device_memory_if_made();
  cudaStream_t s = m->backend.stream(0);
  const size_t bytes = b->bytes();
  void* staging = nullptr;
  size_t capacity = 0;
  cudaEvent_t copied = nullptr;
  // A blocking-sync event: the waiting thread sleeps instead of spinning a core per read.
  cudaError_t err = take_staging(bytes, &staging, &capacity);
  if (err == cudaSuccess) err = cudaEventCreateWithFlags(&copied, cudaEventDisableTiming | cudaEventBlockingSync);
  bool queued = false;
  if (err == cudaSuccess) queued = (err = cudaMemcpyAsync(staging, b->data, bytes, cudaMemcpyDeviceToHost, s)) == cudaSuccess;
  if (err == cudaSuccess) err = cudaEventRecord(copied, s);
  if (err != cudaSuccess) {
    if (copied != nullptr) (void)cudaEventDestroy(copied);
    // A copy already queued may still write the staging memory: it is not reused (leaked).
    if (staging != nullptr && !queued) idle_staging().emplace(capacity, staging);
    finish(env, fn, err, false);
    return env.Undefined();
  }
  // The device array (its block is reused once collected) and dst live until the copy is done;
  // the references are deleted on the JS thread in `settle` (leaked if the environment is gone).
  auto* source = new Napi::Reference<Napi::Value>(Napi::Persistent(info[0]));
  auto* target = new Napi::Reference<Napi::Value>(Napi::Persistent(info[1]));
  const int device = m->backend.device();
  return start_on_own_thread(
      env, fn,
      [copied, device]() -> std::string {
        cudaError_t e = cudaSetDevice(device);
        if (e == cudaSuccess) e = cudaEventSynchronize(copied);
        if (e == cudaSuccess) return "";
        return std::string("CUDA error: deviceArrayCopyOutAsync failed: ") + cudaGetErrorName(e) + ": " + cudaGetErrorString(e);
      },
      [copied, staging, capacity, bytes, source, target](Napi::Env e, bool ok) -> Napi::Value {
        if (ok) {
          // dst's bytes now (napi_get_typedarray_info: the first element's address; null when
          // the buffer was detached meanwhile): a dst that no longer holds them rejects.
          napi_typedarray_type type = napi_float32_array;
          size_t length = 0, offset = 0;
          void* data = nullptr;
          napi_value buffer = nullptr;
          const napi_status got = napi_get_typedarray_info(e, target->Value(), &type, &length, &data, &buffer, &offset);
          const size_t element = type == napi_float64_array ? 8 : 4;
          if (got != napi_ok || data == nullptr || length * element != bytes)
            Napi::Error::New(e, "deviceArrayCopyOutAsync: dst no longer holds the array's " + std::to_string(bytes) + " bytes (detached?)").ThrowAsJavaScriptException();
          else
            std::memcpy(data, staging, bytes);
        }
        (void)cudaEventDestroy(copied);
        // Reused only when the copy is known to be done.
        if (ok) idle_staging().emplace(capacity, staging);
        delete source;
        delete target;
        return e.Undefined();
      });
}

Napi::Value DeviceArrayCopyIn(const Napi::CallbackInfo& info) { return CopyHost(info, true); }
Napi::Value DeviceArrayCopyOut(const Napi::CallbackInfo& info) { return CopyHost(info, false); }

Napi::Value DeviceArrayCopy(const Napi::CallbackInfo& info) {
  const char* fn = "deviceArrayCopy";
  Napi::Env env = info.Env();
  const DeviceBlock* dst = expect_block(info, fn, 0, "dst");
  if (dst == nullptr) return env.Undefined();
  const DeviceBlock* src = expect_block(info, fn, 1, "src");
  if (src == nullptr) return env.Undefined();
  if (dst->bytes() != src->bytes()) {
    throw_range_error(env, std::string(fn) + ": dst holds " + std::to_string(dst->bytes()) + " bytes, src " + std::to_string(src->bytes()));
    return env.Undefined();
  }
  if (dst->bytes() == 0) return env.Undefined();
  finish(env, fn, cudaMemcpyAsync(dst->data, src->data, dst->bytes(), cudaMemcpyDeviceToDevice, device_memory_if_made()->backend.stream(0)), false);
  return env.Undefined();
}

Napi::Value DeviceArrayCopyRange(const Napi::CallbackInfo& info) {
  const char* fn = "deviceArrayCopyRange";
  Napi::Env env = info.Env();
  if (!expect_arity(info, fn, 5)) return env.Undefined();
  const DeviceBlock* dst = expect_block(info, fn, 0, "dst");
  if (dst == nullptr) return env.Undefined();
  const DeviceBlock* src = expect_block(info, fn, 2, "src");
  if (src == nullptr) return env.Undefined();
  double dst_offset = 0, src_offset = 0, length = 0;
  if (!expect_whole(info, fn, 1, "dstOffset", &dst_offset) || !expect_whole(info, fn, 3, "srcOffset", &src_offset) || !expect_whole(info, fn, 4, "length", &length))
    return env.Undefined();
  const size_t n = static_cast<size_t>(length), d0 = static_cast<size_t>(dst_offset), s0 = static_cast<size_t>(src_offset);
  if (dst->type != src->type) {
    throw_type_error(env, std::string(fn) + ": dst and src must hold one dtype, got " + typed_array_name(dst->type) + " and " + typed_array_name(src->type));
    return env.Undefined();
  }
  if (d0 + n > dst->length || s0 + n > src->length || (dst == src && d0 < s0 + n && s0 < d0 + n)) {
    throw_range_error(env, std::string(fn) + ": [" + std::to_string(s0) + ", " + std::to_string(s0 + n) + ") of " + std::to_string(src->length) + " into [" +
                               std::to_string(d0) + ", " + std::to_string(d0 + n) + ") of " + std::to_string(dst->length) +
                               " elements: each range must lie inside its array, and not overlap the other in one array");
    return env.Undefined();
  }
  if (n == 0) return env.Undefined();
  const size_t element = dst->bytes() / (dst->length == 0 ? 1 : dst->length);
  uint8_t* to = static_cast<uint8_t*>(dst->data) + d0 * element;
  const uint8_t* from = static_cast<const uint8_t*>(src->data) + s0 * element;
  finish(env, fn, cudaMemcpyAsync(to, from, n * element, cudaMemcpyDeviceToDevice, device_memory_if_made()->backend.stream(0)), false);
  return env.Undefined();
}

Napi::Value DeviceArrayAdd(const Napi::CallbackInfo& info) {
  const char* fn = "deviceArrayAdd";
  Napi::Env env = info.Env();
  const DeviceBlock* a = expect_block(info, fn, 0, "a");
  if (a == nullptr) return env.Undefined();
  const DeviceBlock* b = expect_block(info, fn, 1, "b");
  if (b == nullptr) return env.Undefined();
  const DeviceBlock* out = expect_block(info, fn, 2, "out");
  if (out == nullptr) return env.Undefined();
  if (a->type != napi_float32_array || b->type != napi_float32_array || out->type != napi_float32_array || a->length != b->length || out->length != a->length ||
      out == b) {
    throw_range_error(env, std::string(fn) + ": a, b and out must be float32 device arrays of one length, out not b");
    return env.Undefined();
  }
  if (a->length == 0) return env.Undefined();
  cudaStream_t s = device_memory_if_made()->backend.stream(0);
  cudaError_t err = out == a ? cudaSuccess : cudaMemcpyAsync(out->data, a->data, a->bytes(), cudaMemcpyDeviceToDevice, s);
  if (err == cudaSuccess) err = axpy_f32_launch(1.0f, static_cast<const float*>(b->data), static_cast<float*>(out->data), a->length, s);
  finish(env, fn, err, false);
  return env.Undefined();
}

}  // namespace

void RegisterDeviceArrayExports(Napi::Env env, Napi::Object exports) {
  device_array_reader() = read_device_array;
  exports.Set("deviceArrayNew", Napi::Function::New(env, DeviceArrayNew, "deviceArrayNew"));
  exports.Set("deviceArrayZero", Napi::Function::New(env, DeviceArrayZero, "deviceArrayZero"));
  exports.Set("deviceArrayCopyIn", Napi::Function::New(env, DeviceArrayCopyIn, "deviceArrayCopyIn"));
  exports.Set("deviceArrayCopyOut", Napi::Function::New(env, DeviceArrayCopyOut, "deviceArrayCopyOut"));
  exports.Set("deviceArrayCopyOutAsync", Napi::Function::New(env, DeviceArrayCopyOutAsync, "deviceArrayCopyOutAsync"));
  exports.Set("deviceArrayCopy", Napi::Function::New(env, DeviceArrayCopy, "deviceArrayCopy"));
  exports.Set("deviceArrayCopyRange", Napi::Function::New(env, DeviceArrayCopyRange, "deviceArrayCopyRange"));
  exports.Set("deviceArrayAdd", Napi::Function::New(env, DeviceArrayAdd, "deviceArrayAdd"));
}

}  // namespace pleat
