// Row gather and scatter-add (see rows.h). Both are pure data movement (scatter-add does one
// add per element moved), so the loops are written for bandwidth: four vectors in flight per
// iteration, unaligned loads (rows start anywhere), one masked vector for a row's tail. Large
// calls split across the pool: gather by output rows, scatter-add by target rows so that each
// element still sees its adds in increasing i.
//
// A gather whose output is larger than kStreamBytes writes it with non-temporal stores: an output
// that size does not stay in cache anyway, and a plain store first reads the line it overwrites
// (read-for-ownership), a third memory transfer per element that the C library's memcpy also
// avoids for large copies.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "rows.h"
#include "thread_pool.h"
#include "vmath.h"

namespace pleat {

ptrdiff_t first_bad_index(const int32_t* index, size_t n, size_t bound) {
  for (size_t i = 0; i < n; ++i) {
    // Negative values wrap to huge unsigned ones, so one comparison covers both ends.
    if (static_cast<uint64_t>(static_cast<int64_t>(index[i])) >= bound) return static_cast<ptrdiff_t>(i);
  }
  return -1;
}

// ---- references --------------------------------------------------------------------------------

void gather_rows_ref(const float* src, const int32_t* index, size_t n, float* out, size_t cols) {
  for (size_t i = 0; i < n; ++i) {
    const float* s = src + static_cast<size_t>(index[i]) * cols;
    float* d = out + i * cols;
    for (size_t j = 0; j < cols; ++j) d[j] = s[j];
  }
}

void scatter_add_rows_ref(const float* src, const int32_t* index, size_t n, float* out,
                          size_t cols) {
  for (size_t i = 0; i < n; ++i) {
    const float* s = src + i * cols;
    float* d = out + static_cast<size_t>(index[i]) * cols;
    for (size_t j = 0; j < cols; ++j) d[j] = d[j] + s[j];
  }
}

namespace {

// ---- AVX-512 -----------------------------------------------------------------------------------

__attribute__((target("avx512f"))) void copy_row_avx512(float* d, const float* s, size_t cols) {
  size_t j = 0;
  for (; j + 64 <= cols; j += 64) {
    const __m512 a = _mm512_loadu_ps(s + j), b = _mm512_loadu_ps(s + j + 16);
    const __m512 c = _mm512_loadu_ps(s + j + 32), e = _mm512_loadu_ps(s + j + 48);
    _mm512_storeu_ps(d + j, a);
    _mm512_storeu_ps(d + j + 16, b);
    _mm512_storeu_ps(d + j + 32, c);
    _mm512_storeu_ps(d + j + 48, e);
  }
  for (; j + 16 <= cols; j += 16) _mm512_storeu_ps(d + j, _mm512_loadu_ps(s + j));
  if (j < cols) {
    const __mmask16 m = vmath::mask16(static_cast<ptrdiff_t>(cols - j));
    _mm512_mask_storeu_ps(d + j, m, _mm512_maskz_loadu_ps(m, s + j));
  }
}

__attribute__((target("avx512f"))) void stream_row_avx512(float* d, const float* s, size_t cols) {
  // Head up to the next 64-byte boundary of d (views are 4-byte aligned), then aligned streams.
  size_t head = ((64 - (reinterpret_cast<uintptr_t>(d) & 63)) & 63) / sizeof(float);
  if (head > cols) head = cols;
  if (head != 0) {
    const __mmask16 m = vmath::mask16(static_cast<ptrdiff_t>(head));
    _mm512_mask_storeu_ps(d, m, _mm512_maskz_loadu_ps(m, s));
  }
  size_t j = head;
  for (; j + 64 <= cols; j += 64) {
    const __m512 a = _mm512_loadu_ps(s + j), b = _mm512_loadu_ps(s + j + 16);
    const __m512 c = _mm512_loadu_ps(s + j + 32), e = _mm512_loadu_ps(s + j + 48);
    _mm512_stream_ps(d + j, a);
    _mm512_stream_ps(d + j + 16, b);
    _mm512_stream_ps(d + j + 32, c);
    _mm512_stream_ps(d + j + 48, e);
  }
  for (; j + 16 <= cols; j += 16) _mm512_stream_ps(d + j, _mm512_loadu_ps(s + j));
  if (j < cols) {
    const __mmask16 m = vmath::mask16(static_cast<ptrdiff_t>(cols - j));
    _mm512_mask_storeu_ps(d + j, m, _mm512_maskz_loadu_ps(m, s + j));
  }
}

__attribute__((target("avx512f"))) void add_row_avx512(float* d, const float* s, size_t cols) {
  size_t j = 0;
  for (; j + 64 <= cols; j += 64) {
    const __m512 a = _mm512_add_ps(_mm512_loadu_ps(d + j), _mm512_loadu_ps(s + j));
    const __m512 b = _mm512_add_ps(_mm512_loadu_ps(d + j + 16), _mm512_loadu_ps(s + j + 16));
    const __m512 c = _mm512_add_ps(_mm512_loadu_ps(d + j + 32), _mm512_loadu_ps(s + j + 32));
    const __m512 e = _mm512_add_ps(_mm512_loadu_ps(d + j + 48), _mm512_loadu_ps(s + j + 48));
    _mm512_storeu_ps(d + j, a);
    _mm512_storeu_ps(d + j + 16, b);
    _mm512_storeu_ps(d + j + 32, c);
    _mm512_storeu_ps(d + j + 48, e);
  }
  for (; j + 16 <= cols; j += 16) _mm512_storeu_ps(d + j, _mm512_add_ps(_mm512_loadu_ps(d + j), _mm512_loadu_ps(s + j)));
  if (j < cols) {
    const __mmask16 m = vmath::mask16(static_cast<ptrdiff_t>(cols - j));
    const __m512 v = _mm512_add_ps(_mm512_maskz_loadu_ps(m, d + j), _mm512_maskz_loadu_ps(m, s + j));
    _mm512_mask_storeu_ps(d + j, m, v);
  }
}

// ---- AVX2 --------------------------------------------------------------------------------------

__attribute__((target("avx2"))) void copy_row_avx2(float* d, const float* s, size_t cols) {
  size_t j = 0;
  for (; j + 32 <= cols; j += 32) {
    const __m256 a = _mm256_loadu_ps(s + j), b = _mm256_loadu_ps(s + j + 8);
    const __m256 c = _mm256_loadu_ps(s + j + 16), e = _mm256_loadu_ps(s + j + 24);
    _mm256_storeu_ps(d + j, a);
    _mm256_storeu_ps(d + j + 8, b);
    _mm256_storeu_ps(d + j + 16, c);
    _mm256_storeu_ps(d + j + 24, e);
  }
  for (; j + 8 <= cols; j += 8) _mm256_storeu_ps(d + j, _mm256_loadu_ps(s + j));
  if (j < cols) {
    // One masked store at most: vmaskmovps stores are microcoded and slow on AMD cores.
    const __m256i m = vmath::mask8(static_cast<ptrdiff_t>(cols - j));
    _mm256_maskstore_ps(d + j, m, _mm256_maskload_ps(s + j, m));
  }
}

__attribute__((target("avx2"))) void stream_row_avx2(float* d, const float* s, size_t cols) {
  size_t head = ((32 - (reinterpret_cast<uintptr_t>(d) & 31)) & 31) / sizeof(float);
  if (head > cols) head = cols;
  for (size_t j = 0; j < head; ++j) d[j] = s[j];  // at most 7: cheaper than a masked store
  size_t j = head;
  for (; j + 32 <= cols; j += 32) {
    const __m256 a = _mm256_loadu_ps(s + j), b = _mm256_loadu_ps(s + j + 8);
    const __m256 c = _mm256_loadu_ps(s + j + 16), e = _mm256_loadu_ps(s + j + 24);
    _mm256_stream_ps(d + j, a);
    _mm256_stream_ps(d + j + 8, b);
    _mm256_stream_ps(d + j + 16, c);
    _mm256_stream_ps(d + j + 24, e);
  }
  for (; j + 8 <= cols; j += 8) _mm256_stream_ps(d + j, _mm256_loadu_ps(s + j));
  for (; j < cols; ++j) d[j] = s[j];
}

__attribute__((target("avx2"))) void add_row_avx2(float* d, const float* s, size_t cols) {
  size_t j = 0;
  for (; j + 32 <= cols; j += 32) {
    const __m256 a = _mm256_add_ps(_mm256_loadu_ps(d + j), _mm256_loadu_ps(s + j));
    const __m256 b = _mm256_add_ps(_mm256_loadu_ps(d + j + 8), _mm256_loadu_ps(s + j + 8));
    const __m256 c = _mm256_add_ps(_mm256_loadu_ps(d + j + 16), _mm256_loadu_ps(s + j + 16));
    const __m256 e = _mm256_add_ps(_mm256_loadu_ps(d + j + 24), _mm256_loadu_ps(s + j + 24));
    _mm256_storeu_ps(d + j, a);
    _mm256_storeu_ps(d + j + 8, b);
    _mm256_storeu_ps(d + j + 16, c);
    _mm256_storeu_ps(d + j + 24, e);
  }
  for (; j + 8 <= cols; j += 8) _mm256_storeu_ps(d + j, _mm256_add_ps(_mm256_loadu_ps(d + j), _mm256_loadu_ps(s + j)));
  if (j < cols) {
    const __m256i m = vmath::mask8(static_cast<ptrdiff_t>(cols - j));
    const __m256 v = _mm256_add_ps(_mm256_maskload_ps(d + j, m), _mm256_maskload_ps(s + j, m));
    _mm256_maskstore_ps(d + j, m, v);
  }
}

RowFn add_row_for(Isa isa) { return isa == Isa::Avx512 ? add_row_avx512 : add_row_avx2; }

}  // namespace

RowFn copy_row_for(Isa isa, bool stream) {
  if (stream) return isa == Isa::Avx512 ? stream_row_avx512 : stream_row_avx2;
  return isa == Isa::Avx512 ? copy_row_avx512 : copy_row_avx2;
}

void gather_rows(Isa isa, const float* src, const int32_t* index, size_t n, float* out,
                 size_t cols) {
  if (n == 0 || cols == 0) return;
  if (isa == Isa::Scalar) return gather_rows_ref(src, index, n, out, cols);
  const bool stream = n * cols * sizeof(float) >= kStreamBytes;
  const RowFn copy_row = copy_row_for(isa, stream);
  pool_for(n, 2 * n * cols * sizeof(float), [&](size_t begin, size_t end) {
    for (size_t i = begin; i < end; ++i) {
      copy_row(out + i * cols, src + static_cast<size_t>(index[i]) * cols, cols);
    }
    // Non-temporal stores are weakly ordered: fence them before the caller (or JS) reads out.
    if (stream) _mm_sfence();
  });
}

void scatter_add_rows(Isa isa, const float* src, const int32_t* index, size_t n, float* out,
                      size_t out_rows, size_t cols) {
  if (n == 0 || cols == 0) return;
  if (isa == Isa::Scalar) return scatter_add_rows_ref(src, index, n, out, cols);
  const RowFn add_row = add_row_for(isa);
  // Threads own disjoint ranges of target rows; each walks every i in increasing order and adds
  // the rows aimed at its range, so an output row gets exactly the sequential sequence of adds.
  // (Splitting by columns is also exact but cuts every row into pieces, which halves DRAM
  // throughput on this access pattern.)
  pool_for(out_rows, 3 * n * cols * sizeof(float), [&](size_t begin, size_t end) {
    const bool all = begin == 0 && end == out_rows;
    for (size_t i = 0; i < n; ++i) {
      const size_t target = static_cast<size_t>(index[i]);
      if (all || (target >= begin && target < end)) add_row(out + target * cols, src + i * cols, cols);
    }
  });
}

}  // namespace pleat
