// rope (see rope.h): one pass over the tokens; the pair loop vectorises (float64 lanes).
#include "rope.h"

namespace pleat {
namespace {

template <typename T>
void rotate(const T* x, const double* cos, const double* sin, T* out, size_t b, size_t s, size_t heads, size_t d, size_t table_rows,
            double sign) {
  const size_t half = d / 2;
  for (size_t bi = 0; bi < b; ++bi) {
    for (size_t si = 0; si < s; ++si) {
      const size_t row = (table_rows == s ? si : bi * s + si) * half;
      const double* c = cos + row;
      const double* sn = sin + row;
      for (size_t h = 0; h < heads; ++h) {
        const size_t base = ((bi * s + si) * heads + h) * d;
        const T* x0 = x + base;
        const T* x1 = x0 + half;
        T* o0 = out + base;
        T* o1 = o0 + half;
        for (size_t i = 0; i < half; ++i) {
          const double ci = c[i];
          const double si_ = sign * sn[i];
          const double a = static_cast<double>(x0[i]);
          const double e = static_cast<double>(x1[i]);
          o0[i] = static_cast<T>(a * ci - e * si_);
          o1[i] = static_cast<T>(e * ci + a * si_);
        }
      }
    }
  }
}

}  // namespace

void rope_f32(const float* x, const double* cos, const double* sin, float* out, size_t b, size_t s, size_t heads, size_t d,
              size_t table_rows, double sign) {
  rotate(x, cos, sin, out, b, s, heads, d, table_rows, sign);
}

void rope_f64(const double* x, const double* cos, const double* sin, double* out, size_t b, size_t s, size_t heads, size_t d,
              size_t table_rows, double sign) {
  rotate(x, cos, sin, out, b, s, heads, d, table_rows, sign);
}

}  // namespace pleat
