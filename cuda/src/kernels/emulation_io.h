// The request and reply plumbing every op of pleat_kernel_emulation shares (ops_emulation.cc,
// gated_sinks_emulation.cc): little-endian arrays read from stdin and written to stdout, and the
// flag a request that ends too soon sets.
#pragma once

#include <cstddef>
#include <cstdio>
#include <vector>

namespace pleat::emulation {

// Set when a request ends before an op has read what it needs (the op then exits 2).
inline bool short_read = false;

// The next n values of T from stdin.
template <typename T>
std::vector<T> take(size_t n) {
  std::vector<T> v(n);
  if (n > 0 && std::fread(v.data(), sizeof(T), n, stdin) != n) short_read = true;
  return v;
}

// v to stdout.
template <typename T>
void give(const std::vector<T>& v) {
  if (!v.empty()) std::fwrite(v.data(), sizeof(T), v.size(), stdout);
}

// A count from a request's float64 header (0 for anything below 1).
inline size_t count(double v) { return v > 0 ? static_cast<size_t>(v) : 0; }

}  // namespace pleat::emulation
