// gatedActivation, gatedActivationBackward, attentionSinksFold and attentionSinksGradient on the
// device (cuda_gated_sinks_binding.cc), registered by RegisterCudaOpsExports.
#pragma once

#include <napi.h>

namespace pleat {

void RegisterCudaGatedSinksExports(Napi::Env env, Napi::Object exports);

}  // namespace pleat
