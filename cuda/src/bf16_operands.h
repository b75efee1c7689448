// The two operands of a call's GEMMs in bf16 or float32: what the timed cuBLAS calls
// (cublas_binding.cc) and the products of a bf16 run (cublas_products_binding.cc) share. A call
// stages its float32 operands at slots 0 and 1 and, with bf16, two scratch slots (3 and 4) of
// `bf16_scratch`'s size, into which `operands_of` rounds them (to nearest even: bf16.h's rule).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "device_staging.h"
#include "kernels/ops_cuda.h"
#include "napi_args.h"

namespace pleat {

// A device buffer for the bfloat16 copy of an operand of `length` floats (empty unless bf16; a
// call without bf16 passes no scratch at all, nullptr, so that it stages nothing).
inline ArrayArg bf16_scratch(bool bf16, size_t length) { return ArrayArg{napi_uint8_array, bf16 ? 2 * length : 0, nullptr, Napi::Value()}; }

// The operands as the GEMMs take them; `at` gives an element offset into either.
struct Operands {
  bool bf16 = false;
  const void* a = nullptr;
  const void* b = nullptr;
  const void* at(const void* base, size_t offset) const {
    return bf16 ? static_cast<const void*>(static_cast<const uint16_t*>(base) + offset) : static_cast<const void*>(static_cast<const float*>(base) + offset);
  }
};

// The operands staged at 0 and 1 as they are, or with bf16 rounded into the scratch at 3 and 4.
inline cudaError_t operands_of(const DevicePointers& d, cudaStream_t s, bool bf16, size_t a_length, size_t b_length, Operands* o) {
  o->bf16 = bf16;
  o->a = d.f32(0);
  o->b = d.f32(1);
  if (!bf16) return cudaSuccess;
  if (a_length > 0)
    if (cudaError_t e = to_bf16_launch(d.f32(0), d.u16(3), a_length, s); e != cudaSuccess) return e;
  if (b_length > 0)
    if (cudaError_t e = to_bf16_launch(d.f32(1), d.u16(4), b_length, s); e != cudaSuccess) return e;
  o->a = d.u16(3);
  o->b = d.u16(4);
  return cudaSuccess;
}

}  // namespace pleat
