// Registers the device memory functions of pleat_cuda.node (device_memory_binding.cc).
#pragma once

#include <napi.h>

namespace pleat {
void RegisterDeviceMemoryExports(Napi::Env env, Napi::Object exports);
}  // namespace pleat
