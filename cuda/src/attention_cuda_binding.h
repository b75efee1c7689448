#pragma once

#include <napi.h>

namespace pleat {

// attention and attentionBackward on the device (attention_cuda_binding.cc).
void RegisterAttentionCudaExports(Napi::Env env, Napi::Object exports);

}  // namespace pleat
