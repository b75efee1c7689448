// Registers the bf16 rounding kernel of pleat_cpu.node (bf16_binding.cc) on the module's exports.
#pragma once

#include <napi.h>

namespace pleat {
void RegisterBf16Exports(Napi::Env env, Napi::Object exports);
}  // namespace pleat
