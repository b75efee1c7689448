#pragma once

#include <napi.h>

namespace pleat {

// permuteRows, combineRows and combineBackward on the device (cuda_dispatch_binding.cc).
void RegisterCudaDispatchExports(Napi::Env env, Napi::Object exports);

}  // namespace pleat
