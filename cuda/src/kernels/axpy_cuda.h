// axpy on the GPU: y[i] += a * x[i] on device memory. The CPU reference is axpy_f32_ref in
// axpy.cc; the device uses one fused multiply-add per element (like the AVX paths).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

namespace pleat {

// Launches the kernel on `stream` for device pointers `dx`, `dy`; returns the launch status
// (cudaGetLastError). Execution errors surface at the next synchronising call.
cudaError_t axpy_f32_launch(float a, const float* dx, float* dy, size_t n, cudaStream_t stream);

}  // namespace pleat
