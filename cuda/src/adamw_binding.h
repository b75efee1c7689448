// Registers the AdamW kernel of pleat_cpu.node (adamw_binding.cc) on the module's exports.
#pragma once

#include <napi.h>

namespace pleat {
void RegisterAdamwExports(Napi::Env env, Napi::Object exports);
}  // namespace pleat
