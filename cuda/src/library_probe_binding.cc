// probeGpuLibrary(path, kind, symbols) -> { error, version, missing }
//
// dlopen(path, RTLD_NOW | RTLD_LOCAL), dlsym of every name in `symbols` (missing: those absent),
// then the library's own version query, dlclose. `kind`:
//   "nccl"    ncclGetVersion(int*): the code major * 10000 + minor * 100 + patch (2.9 and later;
//             major * 1000 + minor * 100 + patch before), returned as the raw code;
//   "cublas"  cublasGetProperty(MAJOR_VERSION = 0 / MINOR_VERSION = 1 / PATCH_LEVEL = 2, int*),
//             returned as major * 10000 + minor * 100 + patch.
// Neither query needs a GPU. error: dlerror()'s text when the file does not load (then version
// null and missing every symbol); version null when the query is absent or fails. Nothing from
// the libraries' headers is needed: the two signatures are declared here.
#include "library_probe_binding.h"

#include <dlfcn.h>

#include <string>
#include <vector>

namespace pleat {

namespace {

using NcclGetVersion = int (*)(int*);
using CublasGetProperty = int (*)(int, int*);

Napi::Value ProbeGpuLibrary(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 3 || !info[0].IsString() || !info[1].IsString() || !info[2].IsArray()) {
    Napi::TypeError::New(env, "probeGpuLibrary(path: string, kind: \"nccl\" | \"cublas\", symbols: string[])").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const std::string path = info[0].As<Napi::String>().Utf8Value();
  const std::string kind = info[1].As<Napi::String>().Utf8Value();
  const Napi::Array names = info[2].As<Napi::Array>();
  std::vector<std::string> symbols;
  for (uint32_t i = 0; i < names.Length(); ++i) {
    const Napi::Value v = names.Get(i);
    if (!v.IsString()) {
      Napi::TypeError::New(env, "probeGpuLibrary: symbols must be strings").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    symbols.push_back(v.As<Napi::String>().Utf8Value());
  }
  Napi::Object out = Napi::Object::New(env);
  Napi::Array missing = Napi::Array::New(env);
  out.Set("error", env.Null());
  out.Set("version", env.Null());
  out.Set("missing", missing);
  dlerror();
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* e = dlerror();
    out.Set("error", Napi::String::New(env, e != nullptr ? e : "dlopen failed"));
    for (size_t i = 0; i < symbols.size(); ++i) missing.Set(static_cast<uint32_t>(i), Napi::String::New(env, symbols[i]));
    return out;
  }
  uint32_t absent = 0;
  for (const std::string& name : symbols) {
    if (dlsym(handle, name.c_str()) == nullptr) missing.Set(absent++, Napi::String::New(env, name));
  }
  if (kind == "nccl") {
    if (auto get = reinterpret_cast<NcclGetVersion>(dlsym(handle, "ncclGetVersion")); get != nullptr) {
      int code = 0;
      if (get(&code) == 0) out.Set("version", Napi::Number::New(env, code));
    }
  } else if (kind == "cublas") {
    if (auto get = reinterpret_cast<CublasGetProperty>(dlsym(handle, "cublasGetProperty")); get != nullptr) {
      int major = 0, minor = 0, patch = 0;
      if (get(0, &major) == 0 && get(1, &minor) == 0 && get(2, &patch) == 0) {
        out.Set("version", Napi::Number::New(env, major * 10000 + minor * 100 + patch));
      }
    }
  }
  dlclose(handle);
  return out;
}

}  // namespace

void RegisterLibraryProbeExports(Napi::Env env, Napi::Object exports) {
  exports.Set("probeGpuLibrary", Napi::Function::New(env, ProbeGpuLibrary, "probeGpuLibrary"));
}

}  // namespace pleat
