// Registers the device-resident timings of pleat_cuda.node (device_timing_binding.cc).
#pragma once

#include <napi.h>

namespace pleat {
void RegisterDeviceTimingExports(Napi::Env env, Napi::Object exports);
}  // namespace pleat
