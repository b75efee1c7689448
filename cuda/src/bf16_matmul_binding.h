// Registers the bf16 GEMM of pleat_cpu.node (bf16_matmul_binding.cc) on the module's exports.
#pragma once

#include <napi.h>

namespace pleat {
void RegisterBf16MatmulExports(Napi::Env env, Napi::Object exports);
}  // namespace pleat
