// Element-wise kernels (elementwise.h). One template per loop, compiled three times: plain, and
// with the AVX2 and AVX-512 instruction sets enabled so that the compiler vectorises it (each
// lane does the same single IEEE operation as the scalar loop, so every build gives the same
// bits). Large calls are split over the kernel thread pool by contiguous ranges of the output.
#include "elementwise.h"

#include "thread_pool.h"

namespace pleat {
namespace {

template <typename T>
inline T apply(BinaryOp op, T x, T y) {
  switch (op) {
    case BinaryOp::Add: return x + y;
    case BinaryOp::Sub: return x - y;
    case BinaryOp::Mul: return x * y;
    case BinaryOp::Div: return x / y;
  }
  return x;
}

// The loops for one op, over out[begin, end). Kept as templates on the op so each is a plain
// vectorisable loop.
template <typename T, BinaryOp Op>
inline void binary_range(Broadcast kind, const T* __restrict a, const T* __restrict b, T* __restrict out, size_t begin,
                         size_t end, size_t width) {
  if (kind == Broadcast::Same) {
    for (size_t i = begin; i < end; ++i) out[i] = apply(Op, a[i], b[i]);
  } else if (kind == Broadcast::Suffix) {
    // Walk whole repeats of b where possible, so the inner loop is contiguous in both.
    size_t i = begin;
    while (i < end) {
      const size_t j0 = i % width;
      const size_t stop = (end - i < width - j0) ? end : i + (width - j0);
      const T* bb = b - (i - j0);
      for (size_t k = i; k < stop; ++k) out[k] = apply(Op, a[k], bb[k]);
      i = stop;
    }
  } else {
    size_t i = begin;
    while (i < end) {
      const size_t r = i / width;
      const size_t stop = (end < (r + 1) * width) ? end : (r + 1) * width;
      const T y = b[r];
      for (size_t k = i; k < stop; ++k) out[k] = apply(Op, a[k], y);
      i = stop;
    }
  }
}

template <typename T>
inline void binary_any(BinaryOp op, Broadcast kind, const T* a, const T* b, T* out, size_t begin, size_t end, size_t width) {
  switch (op) {
    case BinaryOp::Add: return binary_range<T, BinaryOp::Add>(kind, a, b, out, begin, end, width);
    case BinaryOp::Sub: return binary_range<T, BinaryOp::Sub>(kind, a, b, out, begin, end, width);
    case BinaryOp::Mul: return binary_range<T, BinaryOp::Mul>(kind, a, b, out, begin, end, width);
    case BinaryOp::Div: return binary_range<T, BinaryOp::Div>(kind, a, b, out, begin, end, width);
  }
}

template <typename T>
inline void scale_range(const T* __restrict a, double s, T* __restrict out, size_t begin, size_t end) {
  for (size_t i = begin; i < end; ++i) out[i] = static_cast<T>(static_cast<double>(a[i]) * s);
}

template <typename T>
inline void sum_suffix_range(const T* __restrict g, T* __restrict out, size_t n, size_t m, size_t j0, size_t j1) {
  for (size_t j = j0; j < j1; ++j) out[j] = T(0);
  for (size_t base = 0; base < n; base += m) {
    const T* row = g + base;
    for (size_t j = j0; j < j1; ++j) out[j] = out[j] + row[j];
  }
}

#define PLEAT_ELEMENTWISE_ISA(suffix, attr)                                                                            \
  template <typename T>                                                                                                \
  attr void binary_##suffix(BinaryOp op, Broadcast kind, const T* a, const T* b, T* out, size_t begin, size_t end,     \
                            size_t width) {                                                                            \
    binary_any<T>(op, kind, a, b, out, begin, end, width);                                                             \
  }                                                                                                                    \
  template <typename T>                                                                                                \
  attr void scale_##suffix(const T* a, double s, T* out, size_t begin, size_t end) {                                  \
    scale_range<T>(a, s, out, begin, end);                                                                             \
  }                                                                                                                    \
  template <typename T>                                                                                                \
  attr void sum_suffix_##suffix(const T* g, T* out, size_t n, size_t m, size_t j0, size_t j1) {                         \
    sum_suffix_range<T>(g, out, n, m, j0, j1);                                                                         \
  }

PLEAT_ELEMENTWISE_ISA(scalar, )
PLEAT_ELEMENTWISE_ISA(avx2, __attribute__((target("avx2"))))
PLEAT_ELEMENTWISE_ISA(avx512, __attribute__((target("avx512f"))))
#undef PLEAT_ELEMENTWISE_ISA

template <typename T>
void binary_t(Isa isa, BinaryOp op, Broadcast kind, const T* a, const T* b, T* out, size_t n, size_t width) {
  if (kind != Broadcast::Same && width == 0) return;  // n is 0 then too
  pool_for(n, 3 * n * sizeof(T), [&](size_t begin, size_t end) {
    switch (isa) {
      case Isa::Avx512: return binary_avx512<T>(op, kind, a, b, out, begin, end, width);
      case Isa::Avx2: return binary_avx2<T>(op, kind, a, b, out, begin, end, width);
      case Isa::Scalar: return binary_scalar<T>(op, kind, a, b, out, begin, end, width);
    }
  });
}

template <typename T>
void scale_t(Isa isa, const T* a, double s, T* out, size_t n) {
  pool_for(n, 2 * n * sizeof(T), [&](size_t begin, size_t end) {
    switch (isa) {
      case Isa::Avx512: return scale_avx512<T>(a, s, out, begin, end);
      case Isa::Avx2: return scale_avx2<T>(a, s, out, begin, end);
      case Isa::Scalar: return scale_scalar<T>(a, s, out, begin, end);
    }
  });
}

template <typename T>
void sum_rows_t(const T* g, T* out, size_t rows, size_t w) {
  // A double accumulator in index order: the TypeScript loop's sum, not vectorisable without
  // reordering, so one plain loop per row, rows split over the pool.
  pool_for(rows, rows * w * sizeof(T), [&](size_t r0, size_t r1) {
    for (size_t r = r0; r < r1; ++r) {
      double acc = 0;
      const T* row = g + r * w;
      for (size_t j = 0; j < w; ++j) acc += static_cast<double>(row[j]);
      out[r] = static_cast<T>(acc);
    }
  });
}

template <typename T>
void sum_suffix_t(Isa isa, const T* g, T* out, size_t n, size_t m) {
  if (m == 0) return;
  pool_for(m, n * sizeof(T), [&](size_t j0, size_t j1) {
    switch (isa) {
      case Isa::Avx512: return sum_suffix_avx512<T>(g, out, n, m, j0, j1);
      case Isa::Avx2: return sum_suffix_avx2<T>(g, out, n, m, j0, j1);
      case Isa::Scalar: return sum_suffix_scalar<T>(g, out, n, m, j0, j1);
    }
  });
}

}  // namespace

void binary_f32(Isa isa, BinaryOp op, Broadcast kind, const float* a, const float* b, float* out, size_t n, size_t width) {
  binary_t<float>(isa, op, kind, a, b, out, n, width);
}
void binary_f64(Isa isa, BinaryOp op, Broadcast kind, const double* a, const double* b, double* out, size_t n, size_t width) {
  binary_t<double>(isa, op, kind, a, b, out, n, width);
}
void scale_f32(Isa isa, const float* a, double s, float* out, size_t n) { scale_t<float>(isa, a, s, out, n); }
void scale_f64(Isa isa, const double* a, double s, double* out, size_t n) { scale_t<double>(isa, a, s, out, n); }
void sum_rows_f32(const float* g, float* out, size_t rows, size_t w) { sum_rows_t<float>(g, out, rows, w); }
void sum_rows_f64(const double* g, double* out, size_t rows, size_t w) { sum_rows_t<double>(g, out, rows, w); }
void sum_suffix_f32(Isa isa, const float* g, float* out, size_t n, size_t m) { sum_suffix_t<float>(isa, g, out, n, m); }
void sum_suffix_f64(Isa isa, const double* g, double* out, size_t n, size_t m) { sum_suffix_t<double>(isa, g, out, n, m); }

}  // namespace pleat
