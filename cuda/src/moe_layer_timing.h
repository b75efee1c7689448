// Registers the MoE layer timing of pleat_cuda.node (moe_layer_timing.cc).
#pragma once

#include <napi.h>

namespace pleat {
void RegisterMoeLayerTimingExports(Napi::Env env, Napi::Object exports);
}  // namespace pleat
