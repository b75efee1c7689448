// A library loaded with dlopen (cuBLAS, NCCL) and its entry points resolved by name: every name
// that is absent is added to `missing` (comma-separated), so a caller can name all of them at once.
#pragma once

#include <dlfcn.h>

#include <string>

namespace pleat {

// dlopen(path, RTLD_NOW | RTLD_LOCAL), or null with `why` = "cannot load <path>: <dlerror>".
inline void* open_library(const std::string& path, std::string* why) {
  dlerror();
  void* lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    const char* e = dlerror();
    *why = std::string("cannot load ") + path + ": " + (e != nullptr ? e : "dlopen failed");
  }
  return lib;
}

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
