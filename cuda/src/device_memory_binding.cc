// Device memory of pleat_cuda.node: the caching allocator (device/caching_allocator.h) over
// CUDA (device/cuda_backend.h) on one device per process, made on first use.
//
//   deviceSelect(index) -> index            the process's device (a rank's GPU under mpirun),
//                                           before the first allocation; 0 when never called
//   deviceAllocate(bytes, stream) -> address (a number) or null when the device is full
//   deviceFree(address) -> boolean          deviceRecordStream(address, stream) -> boolean
//   deviceCopyIn(address, src, stream)      src: a typed array, into the block's first bytes
//   deviceCopyOut(address, dst, stream)     the block's first dst.byteLength bytes into dst
//   deviceAllocatorStats() -> { allocatedBytes, reservedBytes, peakAllocatedBytes, segments,
//                               deviceAllocations, deviceReleases, pendingBlocks }
// Copies are queued on the stream and waited for (a first step: the asynchronous completion
// the GPU issue asks for comes with device tensors). Without a device every call throws
// "no device: ...". An address that is not a live block, or a copy longer than the block, is a
// RangeError naming it.
#include "device_memory_binding.h"

#include "device/stats_object.h"
#include "napi_args.h"

#include <cuda_runtime.h>

#include <memory>
#include <string>

namespace pleat {

namespace {

std::unique_ptr<DeviceMemory>& memory() {
  static std::unique_ptr<DeviceMemory> m;
  return m;
}

int g_device = 0;

}  // namespace

int selected_device() { return g_device; }

DeviceMemory* device_memory_if_made() { return memory().get(); }

DeviceMemory* device_memory(Napi::Env env) {
  if (memory() != nullptr) return memory().get();
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess || count == 0) {
    const std::string why = err != cudaSuccess ? std::string(cudaGetErrorName(err)) + ": " + cudaGetErrorString(err) : "no CUDA device";
    (void)cudaGetLastError();
    Napi::Error::New(env, "no device: " + why).ThrowAsJavaScriptException();
    return nullptr;
  }
  if (g_device >= count) {
    Napi::RangeError::New(env, "no device: device " + std::to_string(g_device) + " was selected, this machine has " + std::to_string(count)).ThrowAsJavaScriptException();
    return nullptr;
  }
  memory() = std::make_unique<DeviceMemory>(g_device);
  return memory().get();
}

namespace {

void* address(double v) { return reinterpret_cast<void*>(static_cast<uintptr_t>(v)); }

Napi::Value DeviceSelect(const Napi::CallbackInfo& info) {
  double index = 0;
  if (!expect_whole(info, "deviceSelect", 0, "index", &index)) return info.Env().Undefined();
  if (memory() != nullptr && static_cast<int>(index) != g_device) {
    Napi::Error::New(info.Env(), "deviceSelect: this process's device memory is already on device " + std::to_string(g_device) + "; select the device before the first allocation")
        .ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  g_device = static_cast<int>(index);
  // The JS thread's current device too: what it queues (copies, NCCL's calls) goes to this GPU.
  if (const cudaError_t err = cudaSetDevice(g_device); err != cudaSuccess) {
    (void)cudaGetLastError();
    Napi::Error::New(info.Env(), std::string("deviceSelect: cudaSetDevice(") + std::to_string(g_device) + ") failed: " + cudaGetErrorName(err) + ": " + cudaGetErrorString(err))
        .ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  return Napi::Number::New(info.Env(), g_device);
}

Napi::Value DeviceAllocate(const Napi::CallbackInfo& info) {
  double bytes = 0, stream = 0;
  if (!expect_whole(info, "deviceAllocate", 0, "bytes", &bytes) || !expect_whole(info, "deviceAllocate", 1, "stream", &stream)) return info.Env().Undefined();
  DeviceMemory* m = device_memory(info.Env());
  if (m == nullptr) return info.Env().Undefined();
  void* p = m->allocator.allocate(static_cast<size_t>(bytes), static_cast<int>(stream));
  if (p == nullptr) return info.Env().Null();
  return Napi::Number::New(info.Env(), static_cast<double>(reinterpret_cast<uintptr_t>(p)));
}

Napi::Value DeviceFree(const Napi::CallbackInfo& info) {
  double at = 0;
  if (!expect_whole(info, "deviceFree", 0, "address", &at)) return info.Env().Undefined();
  DeviceMemory* m = device_memory(info.Env());
  if (m == nullptr) return info.Env().Undefined();
  return Napi::Boolean::New(info.Env(), m->allocator.free(address(at)));
}

Napi::Value DeviceRecordStream(const Napi::CallbackInfo& info) {
  double at = 0, stream = 0;
  if (!expect_whole(info, "deviceRecordStream", 0, "address", &at) || !expect_whole(info, "deviceRecordStream", 1, "stream", &stream)) return info.Env().Undefined();
  DeviceMemory* m = device_memory(info.Env());
  if (m == nullptr) return info.Env().Undefined();
  return Napi::Boolean::New(info.Env(), m->allocator.record_stream(address(at), static_cast<int>(stream)));
}

// deviceCopyIn / deviceCopyOut: `in` copies host -> device.
Napi::Value Copy(const Napi::CallbackInfo& info, bool in) {
  const char* fn = in ? "deviceCopyIn" : "deviceCopyOut";
  double at = 0, stream = 0;
  if (!expect_whole(info, fn, 0, "address", &at) || !expect_whole(info, fn, 2, "stream", &stream)) return info.Env().Undefined();
  if (!info[1].IsTypedArray()) {
    Napi::TypeError::New(info.Env(), std::string(fn) + ": the host array must be a typed array").ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  DeviceMemory* m = device_memory(info.Env());
  if (m == nullptr) return info.Env().Undefined();
  const Napi::TypedArray host = info[1].As<Napi::TypedArray>();
  const size_t bytes = host.ByteLength();
  const size_t block = m->allocator.block_size(address(at));
  if (block == 0 || bytes > block) {
    Napi::RangeError::New(info.Env(), std::string(fn) + ": address " + std::to_string(static_cast<uint64_t>(at)) +
                                          (block == 0 ? " is not a live device block" : " holds " + std::to_string(block) + " bytes, the copy is " + std::to_string(bytes)))
        .ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  char* data = static_cast<char*>(host.ArrayBuffer().Data()) + host.ByteOffset();
  cudaStream_t s = m->backend.stream(static_cast<int>(stream));
  const cudaError_t err = in ? cudaMemcpyAsync(address(at), data, bytes, cudaMemcpyHostToDevice, s) : cudaMemcpyAsync(data, address(at), bytes, cudaMemcpyDeviceToHost, s);
  const cudaError_t done = err == cudaSuccess ? cudaStreamSynchronize(s) : err;
  if (done != cudaSuccess) {
    (void)cudaGetLastError();
    Napi::Error::New(info.Env(), std::string("CUDA error: ") + fn + " failed: " + cudaGetErrorName(done) + ": " + cudaGetErrorString(done)).ThrowAsJavaScriptException();
  }
  return info.Env().Undefined();
}

Napi::Value DeviceCopyIn(const Napi::CallbackInfo& info) { return Copy(info, true); }
Napi::Value DeviceCopyOut(const Napi::CallbackInfo& info) { return Copy(info, false); }

Napi::Value DeviceAllocatorStats(const Napi::CallbackInfo& info) {
  DeviceMemory* m = device_memory(info.Env());
  if (m == nullptr) return info.Env().Undefined();
  return device::stats_object(info.Env(), m->allocator.stats());
}

}  // namespace

void RegisterDeviceMemoryExports(Napi::Env env, Napi::Object exports) {
  exports.Set("deviceSelect", Napi::Function::New(env, DeviceSelect, "deviceSelect"));
  exports.Set("deviceAllocate", Napi::Function::New(env, DeviceAllocate, "deviceAllocate"));
  exports.Set("deviceFree", Napi::Function::New(env, DeviceFree, "deviceFree"));
  exports.Set("deviceRecordStream", Napi::Function::New(env, DeviceRecordStream, "deviceRecordStream"));
  exports.Set("deviceCopyIn", Napi::Function::New(env, DeviceCopyIn, "deviceCopyIn"));
  exports.Set("deviceCopyOut", Napi::Function::New(env, DeviceCopyOut, "deviceCopyOut"));
  exports.Set("deviceAllocatorStats", Napi::Function::New(env, DeviceAllocatorStats, "deviceAllocatorStats"));
}

}  // namespace pleat
