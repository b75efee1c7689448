// bf16 rounding kernels (see bf16.h).
#include "bf16.h"

#include <immintrin.h>

#include <cstdint>
#include <cstring>

namespace pleat {

namespace {

inline uint32_t round_bits(uint32_t b) {
  if ((b & 0x7F800000u) == 0x7F800000u && (b & 0x007FFFFFu) != 0) return (b | 0x00400000u) & 0xFFFF0000u;
  return (b + 0x7FFFu + ((b >> 16) & 1u)) & 0xFFFF0000u;
}

}  // namespace

bool bf16_hardware() {
  static const bool supported = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") != 0 && __builtin_cpu_supports("avx512bw") != 0 &&
           __builtin_cpu_supports("avx512bf16") != 0;
  }();
  return supported;
}

void round_bf16_portable(const float* src, float* dst, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    uint32_t b;
    std::memcpy(&b, src + i, 4);
    b = round_bits(b);
    std::memcpy(dst + i, &b, 4);
  }
}

__attribute__((target("avx512f,avx512bw,avx512bf16"))) void round_bf16_avx512(const float* src, float* dst, size_t n) {
  const __m512i exponent = _mm512_set1_epi32(0x7F800000);
  const __m512i mantissa = _mm512_set1_epi32(0x007FFFFF);
  const __m512i bias = _mm512_set1_epi32(0x7FFF);
  const __m512i one = _mm512_set1_epi32(1);
  const __m512i upper = _mm512_set1_epi32(static_cast<int>(0xFFFF0000u));
  const __mmask16 all = 0xFFFF;
  for (size_t i = 0; i < n; i += 16) {
    const size_t left = n - i;
    const __mmask16 lanes = left >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << left) - 1u);
    const __m512 v = _mm512_maskz_loadu_ps(lanes, src + i);
    const __m256bh half = _mm512_cvtneps_pbh(v);
    // The maskz forms: GCC 12 warns on the unmasked ones' undefined pass-through operand.
    const __m512i widened = _mm512_maskz_cvtepu16_epi32(all, reinterpret_cast<const __m256i&>(half));
    __m512i r = _mm512_maskz_slli_epi32(all, widened, 16);
    const __m512i bits = _mm512_castps_si512(v);
    // Subnormal lanes (exponent 0, mantissa not 0): the instruction gave a signed zero.
    const __mmask16 subnormal = _mm512_mask_test_epi32_mask(_mm512_testn_epi32_mask(bits, exponent), bits, mantissa);
    if (subnormal != 0) {
      const __m512i odd = _mm512_and_si512(_mm512_maskz_srli_epi32(all, bits, 16), one);
      const __m512i t = _mm512_and_si512(_mm512_add_epi32(_mm512_add_epi32(bits, bias), odd), upper);
      r = _mm512_mask_blend_epi32(subnormal, r, t);
    }
    _mm512_mask_storeu_ps(dst + i, lanes, _mm512_castsi512_ps(r));
  }
}

void round_bf16(Bf16Path path, const float* src, float* dst, size_t n) {
  if (n == 0) return;
  if (path == Bf16Path::Avx512Bf16 && bf16_hardware()) return round_bf16_avx512(src, dst, n);
  round_bf16_portable(src, dst, n);
}

}  // namespace pleat
