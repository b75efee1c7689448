// Registers the parameters' initial-value kernel of pleat_cpu.node (normals_binding.cc).
#pragma once

#include <napi.h>

namespace pleat {
void RegisterNormalsExports(Napi::Env env, Napi::Object exports);
}  // namespace pleat
