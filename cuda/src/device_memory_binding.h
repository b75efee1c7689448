// The device memory of pleat_cuda.node (device_memory_binding.cc): the caching allocator over
// CUDA on the process's device (0 unless deviceSelect chose another before first use), one per
// process, made on first use, shared by the kernels' and NCCL's bindings.
#pragma once

#include <napi.h>

#include "device/caching_allocator.h"
#include "device/cuda_backend.h"

namespace pleat {

struct DeviceMemory {
  explicit DeviceMemory(int device) : backend(device), allocator(backend) {}
  device::CudaBackend backend;
  device::CachingAllocator allocator;
};

// The process's device memory when it has been made, else nullptr (no error).
DeviceMemory* device_memory_if_made();

// The device this process's memory is (or will be) on.
int selected_device();

// The process's device memory; nullptr with a pending JS Error ("no device: ...") without a GPU.
DeviceMemory* device_memory(Napi::Env env);

void RegisterDeviceMemoryExports(Napi::Env env, Napi::Object exports);

}  // namespace pleat
