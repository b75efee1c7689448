// Entry points of a library loaded with dlopen (cuBLAS, NCCL), resolved by name: every name that
// is absent is added to `missing` (comma-separated), so a caller can name all of them at once.
#pragma once

#include <dlfcn.h>

#include <string>

namespace pleat {

template <typename F>
bool resolve_symbol(void* lib, const char* name, F* out, std::string* missing) {
  void* sym = dlsym(lib, name);
  if (sym == nullptr) {
    *missing += (missing->empty() ? "" : ", ") + std::string(name);
    return false;
  }
  *out = reinterpret_cast<F>(sym);
  return true;
}

}  // namespace pleat
