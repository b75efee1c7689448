// Registers the gated activation's kernels of pleat_cpu.node (glu_binding.cc) on the module's exports.
#pragma once

#include <napi.h>

namespace pleat {
void RegisterGluExports(Napi::Env env, Napi::Object exports);
}  // namespace pleat
