// Registers the first CUDA kernels' functions on pleat_cuda.node (cuda_ops_binding.cc).
#pragma once

#include <napi.h>

namespace pleat {
void RegisterCudaOpsExports(Napi::Env env, Napi::Object exports);
}  // namespace pleat
