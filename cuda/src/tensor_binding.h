// Registers the tensor kernels of pleat_cpu.node (tensor_binding.cc) on the module's exports.
#pragma once

#include <napi.h>

namespace pleat {
void RegisterTensorExports(Napi::Env env, Napi::Object exports);
}  // namespace pleat
