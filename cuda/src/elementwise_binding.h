// Registers the element-wise kernels (binary ops with broadcasting, scale) of pleat_cpu.node (elementwise_binding.cc) on the module's exports.
#pragma once

#include <napi.h>

namespace pleat {
void RegisterElementwiseExports(Napi::Env env, Napi::Object exports);
}  // namespace pleat
