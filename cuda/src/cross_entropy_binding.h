// Registers the cross-entropy kernels of pleat_cpu.node (cross_entropy_binding.cc) on the module's exports.
#pragma once

#include <napi.h>

namespace pleat {
void RegisterCrossEntropyExports(Napi::Env env, Napi::Object exports);
}  // namespace pleat
