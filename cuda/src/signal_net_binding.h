// Registers the signal net of pleat_cpu.node (signal_net_binding.cc) on the module's exports.
#pragma once

#include <napi.h>

namespace pleat {
void RegisterSignalNetExports(Napi::Env env, Napi::Object exports);
}  // namespace pleat
