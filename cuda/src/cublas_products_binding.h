// The products device tensors run on, through cuBLAS (cublas_products_binding.cc).
#pragma once

#include <napi.h>

namespace pleat {
void RegisterCublasProductExports(Napi::Env env, Napi::Object exports);
}  // namespace pleat
