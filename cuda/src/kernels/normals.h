// normals: the initial values of a parameter (src/train/NormalStream.ts), element i of the normal
// stream of `seed` times std, rounded to float32:
//
//   u(k)   = mulberry32's k-th uniform from seed, in (0, 1)        (k = 2p + 1 and 2p + 2 for pair p)
//   r      = sqrt(-2 * log(u(2p + 1))),  a = 2 * pi * u(2p + 2)
//   x[2p]  = float(r * cos(a) * std),    x[2p + 1] = float(r * sin(a) * std)
//
// The TypeScript reference computes log, cos and sin with V8's implementations, this kernel with
// the C library's; both are faithful (error below one ulp), so their doubles differ by a few ulps
// at most (relatively below 2^-49 after the products). An element whose double lies so near the
// middle of two floats that a relative change of 2^-margin_log2 (44 in use: 32 times that bound)
// could round it the other way is left undecided: its offset is listed and the caller writes it
// with the reference (about one element in half a million). Every element written here is the
// reference's float32, bit for bit.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace pleat {

// out[0, count) = elements [first, first + count) of the stream; returns the offsets (into out)
// left undecided, ascending. Runs on the pool for large counts.
std::vector<size_t> normals_f32(uint32_t seed, uint64_t first, size_t count, double std_dev, float* out, int margin_log2);

}  // namespace pleat
