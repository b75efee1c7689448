// bf16: rounding float32 values to bfloat16 values (round to nearest, ties to even), kept in
// float32 storage. The mixed-precision path of training (src/tensor/ops/Bf16.ts) holds bf16
// activations and parameter copies this way: the values are exactly bfloat16, the storage is
// float32, so the float32 kernels compute on them unchanged.
//
// The rule, on the bit pattern b of a float32:
//   NaN        -> the upper 16 bits with the quiet bit (0x0040 of the half) set: NaN stays NaN;
//   otherwise  -> (b + 0x7FFF + ((b >> 16) & 1)) & 0xFFFF0000, which rounds to nearest even,
//                 carries into the exponent (so the largest finite values round to +-Inf),
//                 keeps +-Inf and +-0, and rounds subnormals like normals (no flush to zero).
#pragma once

#include <cstddef>

namespace pleat {

// Which code converts.
enum class Bf16Path : int { Portable = 0, Avx512Bf16 = 1 };

// Whether the CPU (and OS) support AVX512-BF16 (vcvtneps2bf16), with AVX512F and BW.
bool bf16_hardware();

// The scalar reference: dst[i] = the bf16 rounding of src[i]; dst may equal src.
void round_bf16_portable(const float* src, float* dst, size_t n);

// The same values through vcvtneps2bf16. The instruction flushes subnormal inputs to zero,
// which the rule above does not, so subnormal lanes are redone with the integer rule: the
// result equals round_bf16_portable bit for bit. Call only when bf16_hardware().
void round_bf16_avx512(const float* src, float* dst, size_t n);

// Runs `path` (Avx512Bf16 only when bf16_hardware()); dst may equal src.
void round_bf16(Bf16Path path, const float* src, float* dst, size_t n);

}  // namespace pleat
