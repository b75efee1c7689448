// Registers SimulatedDeviceAllocator on pleat_cpu.node's exports (device_allocator_binding.cc):
// the device caching allocator (device/caching_allocator.h) over a simulated device, so its
// logic is tested on machines without a GPU.
#pragma once

#include <napi.h>

namespace pleat {
void RegisterDeviceAllocatorExports(Napi::Env env, Napi::Object exports);
}  // namespace pleat
