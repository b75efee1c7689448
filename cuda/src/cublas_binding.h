// Registers cuBLAS's functions on pleat_cuda.node (cublas_binding.cc).
#pragma once

#include <cuda_runtime.h>
#include <napi.h>

#include "device/cublas_api.h"

namespace pleat {
void RegisterCublasExports(Napi::Env env, Napi::Object exports);

// The loaded cuBLAS, or null with a pending Error naming `fn` (after the device check: without
// a GPU the error is "no device").
CublasApi* cublas_for(Napi::Env env, const char* fn);

// A cuBLAS status as a CUDA error (cudaErrorUnknown for any failure).
cudaError_t status_of(int cublas_status);
}  // namespace pleat
