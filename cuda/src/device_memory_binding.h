// The device memory of pleat_cuda.node (device_memory_binding.cc): the caching allocator over
// CUDA on device 0, one per process, made on first use, shared by the kernels' bindings.
#pragma once

#include <napi.h>

#include "device/caching_allocator.h"
#include "device/cuda_backend.h"

namespace pleat {

struct DeviceMemory {
  device::CudaBackend backend{0};
  device::CachingAllocator allocator{backend};
};

// The process's device memory; nullptr with a pending JS Error ("no device: ...") without a GPU.
DeviceMemory* device_memory(Napi::Env env);

void RegisterDeviceMemoryExports(Napi::Env env, Napi::Object exports);

}  // namespace pleat
