// Registers the grouped expert GEMM (kernels/grouped_matmul.h) of pleat_cpu.node (grouped_matmul_binding.cc) on the module's exports.
#pragma once

#include <napi.h>

namespace pleat {
void RegisterGroupedMatmulExports(Napi::Env env, Napi::Object exports);
}  // namespace pleat
