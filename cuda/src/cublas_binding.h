// Registers cuBLAS's functions on pleat_cuda.node (cublas_binding.cc).
#pragma once

#include <napi.h>

namespace pleat {
void RegisterCublasExports(Napi::Env env, Napi::Object exports);
}  // namespace pleat
