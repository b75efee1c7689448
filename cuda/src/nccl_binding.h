// Registers NCCL's functions on pleat_cuda.node (nccl_binding.cc).
#pragma once

#include <napi.h>

namespace pleat {
void RegisterNcclExports(Napi::Env env, Napi::Object exports);
}  // namespace pleat
