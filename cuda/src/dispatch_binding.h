// Registers the MoE dispatch kernels (dispatch plan, fused permute / unpermute) of pleat_cpu.node (dispatch_binding.cc) on the module's exports.
#pragma once

#include <napi.h>

namespace pleat {
void RegisterDispatchExports(Napi::Env env, Napi::Object exports);
// combineRowsFrom and gatherRowsFrom (dispatch_sources_binding.cc); RegisterDispatchExports calls it.
void RegisterDispatchSourcesExports(Napi::Env env, Napi::Object exports);
}  // namespace pleat
