// Scratch: a growable, 64-byte aligned, never-throwing buffer for per-thread working memory.
//
// Kernels keep these thread_local, so pool workers and libuv threads (both long-lived) allocate
// once and reuse across calls. Allocation failure returns null instead of throwing: an
// exception escaping a pool worker would terminate the process, and kernels report failure
// to the binding, which throws a JS error instead.
#pragma once

#include <cstddef>
#include <cstdlib>

namespace pleat {

template <typename T>
class Scratch {
 public:
  Scratch() = default;
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  ~Scratch() { std::free(data_); }

  // At least n elements (contents unspecified), or null when memory is exhausted.
  T* get(size_t n) {
    if (n <= capacity_ && data_ != nullptr) return data_;
    std::free(data_);
    capacity_ = 0;
    const size_t bytes = ((n == 0 ? 1 : n) * sizeof(T) + 63) / 64 * 64;
    data_ = static_cast<T*>(std::aligned_alloc(64, bytes));
    if (data_ != nullptr) capacity_ = n;
    return data_;
  }

 private:
  T* data_ = nullptr;
  size_t capacity_ = 0;
};

}  // namespace pleat
