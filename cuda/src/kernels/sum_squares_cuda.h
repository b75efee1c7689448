// The float64 sum of squares of float32 device memory in sum_squares_element.h's block order
// (the gradient norm of an optimizer on the device), written to out[at] on the device.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

namespace pleat {

// The device memory `partials` holds sum_squares_partials(n) doubles.
size_t sum_squares_partials(size_t n);
cudaError_t sum_squares_launch(const float* x, size_t n, double* partials, double* out, size_t at, cudaStream_t stream);

}  // namespace pleat
