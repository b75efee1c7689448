// The per-element work of the CUDA element-wise kernels (elementwise_cuda.cu), compiled for the
// device and for the host (pleat_kernel_emulation runs them over every index: properties/native/
// CudaEmulation.prop.ts), twins of the CPU kernels of elementwise.h on float32:
//
//   binary_element       out[i] = a[i] op b[j]: op 0 add, 1 sub, 2 mul, 3 div; kind 0 j = i,
//                        1 j = i % width (b a suffix of a's shape), 2 j = i / width (one b a row)
//   scale_element        out[i] = float(double(a[i]) * s)
//   sum_rows_row         out[r] = float(the double sum, j ascending, of g[r * width + j])
//   sum_suffix_column    out[j] = the sum, i ascending over i % width == j, of g[i], each add
//                        rounded to float
//   narrow_element       out[i] = float(src[i]) for a double src, rounded to nearest even (a JS
//                        Float32Array's set from a Float64Array)
//   swap_dims_element    a transpose: out [a, n1, b, n0, c] from src [a, n0, b, n1, c] (a copy)
//   round_bf16_element   out[i] = src[i] rounded to bfloat16 (bf16.h's rule on the bit pattern:
//                        nearest even, NaN kept quiet, subnormals like normals), float32 storage;
//                        out may be src (each index reads and writes only its own element)
//
// One IEEE operation rounded on its own per step (the device's _rn intrinsics, the host's
// operators built without contraction), each output computed by one thread in the CPU kernel's
// order: the same bits as the CPU kernels and the TypeScript loops they replace.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "ops_element.h"

namespace pleat {
namespace element {

#ifdef __CUDA_ARCH__
PLEAT_HD inline float fsub(float a, float b) { return __fsub_rn(a, b); }
PLEAT_HD inline float fdiv(float a, float b) { return __fdiv_rn(a, b); }
#else
PLEAT_HD inline float fsub(float a, float b) { return a - b; }
PLEAT_HD inline float fdiv(float a, float b) { return a / b; }
#endif

PLEAT_HD inline void binary_element(int op, int kind, const float* a, const float* b, float* out, size_t width, size_t i) {
  const float x = a[i];
  const float y = kind == 0 ? b[i] : (kind == 1 ? b[i % width] : b[i / width]);
  out[i] = op == 0 ? fadd(x, y) : (op == 1 ? fsub(x, y) : (op == 2 ? fmul(x, y) : fdiv(x, y)));
}

PLEAT_HD inline void scale_element(const float* a, double s, float* out, size_t i) { out[i] = static_cast<float>(mul(static_cast<double>(a[i]), s)); }

PLEAT_HD inline void sum_rows_row(const float* g, float* out, size_t width, size_t r) {
  double acc = 0.0;
  const float* row = g + r * width;
  for (size_t j = 0; j < width; ++j) acc = add(acc, static_cast<double>(row[j]));
  out[r] = static_cast<float>(acc);
}

PLEAT_HD inline void sum_suffix_column(const float* g, float* out, size_t n, size_t width, size_t j) {
  float acc = 0.0f;
  for (size_t i = j; i < n; i += width) acc = fadd(acc, g[i]);
  out[j] = acc;
}

PLEAT_HD inline void narrow_element(const double* src, float* out, size_t i) { out[i] = static_cast<float>(src[i]); }

// out[o] for o over [a, n1, b, n0, c]: src seen as [a, n0, b, n1, c] with the n0 and n1 dims
// exchanged (SwapDims.ts; a is implied by o's range).
PLEAT_HD inline void swap_dims_element(const float* src, float* out, size_t n0, size_t b, size_t n1, size_t c, size_t o) {
  const size_t k = o % c;
  size_t r = o / c;
  const size_t j0 = r % n0;
  r /= n0;
  const size_t ib = r % b;
  r /= b;
  const size_t j1 = r % n1;
  const size_t ia = r / n1;
  out[o] = src[(((ia * n0 + j0) * b + ib) * n1 + j1) * c + k];
}

// A float32's bit pattern and back: the device's reinterpreting intrinsics, the host's memcpy.
#ifdef __CUDA_ARCH__
PLEAT_HD inline uint32_t float_bits(float x) { return __float_as_uint(x); }
PLEAT_HD inline float bits_float(uint32_t b) { return __uint_as_float(b); }
#else
PLEAT_HD inline uint32_t float_bits(float x) {
  uint32_t b;
  std::memcpy(&b, &x, sizeof b);
  return b;
}
PLEAT_HD inline float bits_float(uint32_t b) {
  float x;
  std::memcpy(&x, &b, sizeof x);
  return x;
}
#endif

// bf16.cc's round_bits (round_bf16_portable): NaN -> the upper half with the quiet bit set;
// otherwise round to nearest even on the upper half, carrying into the exponent.
PLEAT_HD inline void round_bf16_element(const float* src, float* out, size_t i) {
  const uint32_t b = float_bits(src[i]);
  const bool nan = (b & 0x7F800000u) == 0x7F800000u && (b & 0x007FFFFFu) != 0;
  out[i] = bits_float(nan ? (b | 0x00400000u) & 0xFFFF0000u : (b + 0x7FFFu + ((b >> 16) & 1u)) & 0xFFFF0000u);
}

}  // namespace element
}  // namespace pleat
