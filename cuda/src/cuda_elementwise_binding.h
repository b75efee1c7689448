#pragma once

#include <napi.h>

namespace pleat {

// elementwiseBinary, elementwiseScale, sumRows, sumSuffix and narrowToFloat32 on the device
// (cuda_elementwise_binding.cc).
void RegisterCudaElementwiseExports(Napi::Env env, Napi::Object exports);

}  // namespace pleat
