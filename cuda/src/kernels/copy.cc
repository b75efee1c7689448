// copy kernels (see copy.h).
#include "copy.h"

#include <cstring>

namespace pleat {

void copy_ref(void* dst, const void* src, size_t bytes) {
  auto* d = static_cast<unsigned char*>(dst);
  const auto* s = static_cast<const unsigned char*>(src);
  if (d == s) return;
  if (d < s) {
    for (size_t i = 0; i < bytes; ++i) d[i] = s[i];
  } else {
    for (size_t i = bytes; i > 0; --i) d[i - 1] = s[i - 1];
  }
}

void copy(Isa isa, void* dst, const void* src, size_t bytes) {
  if (bytes == 0 || dst == src) return;
  if (isa == Isa::Scalar) return copy_ref(dst, src, bytes);
  std::memmove(dst, src, bytes);
}

}  // namespace pleat
