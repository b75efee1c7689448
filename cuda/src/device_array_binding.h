// Device arrays of pleat_cuda.node (device_array_binding.cc): blocks of the caching allocator
// owned by JS values, which every kernel binding takes in place of a host typed array.
#pragma once

#include <napi.h>

namespace pleat {

void RegisterDeviceArrayExports(Napi::Env env, Napi::Object exports);

}  // namespace pleat
