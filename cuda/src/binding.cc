// pleat_cpu.node: the Node-API binding of the CPU kernels. Typed wrappers: src/native/Cpu.ts.
//
//   axpy(a, x, y)            y += a * x in place; x, y both Float32Array or both Float64Array
//   copy(dst, src)           memmove between typed arrays of equal byte length
//   fmaPeak(seconds, threads) -> { gflops, isa }
//   cpuFeatures()            -> { avx2, fma, avx512f, cores }
//   setIsa(name)             pin kernels to "scalar" | "avx2" | "avx512", or "auto"; -> active isa
//   activeIsa()              -> "scalar" | "avx2" | "avx512"
//
// Typed arrays are used zero-copy: the kernels read and write the JS memory itself (byteOffset
// applied, SharedArrayBuffer included). The binding only checks arguments and dispatches;
// the arithmetic is in kernels/, each beside its scalar reference.
#include <napi.h>

#include <cmath>
#include <exception>
#include <string>

#include "kernels/axpy.h"
#include "kernels/copy.h"
#include "kernels/cpu_features.h"
#include "kernels/fma_peak.h"
#include "napi_args.h"

namespace pleat {
namespace {

Napi::Value Axpy(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double a = 0.0;
  Napi::TypedArray x, y;
  if (!expect_arity(info, "axpy", 3) || !expect_number(info, "axpy", 0, "a", &a) ||
      !expect_typed_array(info, "axpy", 1, "x", &x) ||
      !expect_typed_array(info, "axpy", 2, "y", &y)) {
    return env.Undefined();
  }
  const napi_typedarray_type type = x.TypedArrayType();
  if (type != napi_float32_array && type != napi_float64_array) {
    throw_type_error(env, std::string("axpy: x must be a Float32Array or Float64Array, got ") +
                              typed_array_name(type));
    return env.Undefined();
  }
  if (y.TypedArrayType() != type) {
    throw_type_error(env, std::string("axpy: x and y must have the same element type, got ") +
                              typed_array_name(type) + " and " +
                              typed_array_name(y.TypedArrayType()));
    return env.Undefined();
  }
  const size_t n = x.ElementLength();
  if (y.ElementLength() != n) {
    throw_type_error(env, "axpy: x and y must have the same length, got " + std::to_string(n) +
                              " and " + std::to_string(y.ElementLength()));
    return env.Undefined();
  }
  uint8_t* xb = view_bytes(x);
  uint8_t* yb = view_bytes(y);
  if (n != 0 && (xb == nullptr || yb == nullptr)) {
    Napi::Error::New(env, "axpy: cannot access the memory of x or y").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  // The same view twice is a well-defined element-wise update; a shifted overlap would make
  // the result depend on the vector width, so it is refused.
  if (xb != yb && ranges_overlap(xb, x.ByteLength(), yb, y.ByteLength())) {
    throw_type_error(env, "axpy: x and y overlap in memory but are not the same view");
    return env.Undefined();
  }
  if (n == 0) return env.Undefined();
  const Isa isa = active_isa();
  if (type == napi_float32_array) {
    axpy_f32(isa, static_cast<float>(a), reinterpret_cast<const float*>(xb),
             reinterpret_cast<float*>(yb), n);
  } else {
    axpy_f64(isa, a, reinterpret_cast<const double*>(xb), reinterpret_cast<double*>(yb), n);
  }
  return env.Undefined();
}

Napi::Value Copy(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::TypedArray dst, src;
  if (!expect_arity(info, "copy", 2) || !expect_typed_array(info, "copy", 0, "dst", &dst) ||
      !expect_typed_array(info, "copy", 1, "src", &src)) {
    return env.Undefined();
  }
  const size_t bytes = dst.ByteLength();
  if (src.ByteLength() != bytes) {
    throw_type_error(env, "copy: dst and src must have the same byte length, got " +
                              std::to_string(bytes) + " and " + std::to_string(src.ByteLength()));
    return env.Undefined();
  }
  if (bytes == 0) return env.Undefined();
  uint8_t* d = view_bytes(dst);
  const uint8_t* s = view_bytes(src);
  if (d == nullptr || s == nullptr) {
    Napi::Error::New(env, "copy: cannot access the memory of dst or src").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  copy(active_isa(), d, s, bytes);
  return env.Undefined();
}

Napi::Value FmaPeak(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double seconds = 0.0, threads = 0.0;
  if (!expect_arity(info, "fmaPeak", 2) ||
      !expect_number(info, "fmaPeak", 0, "seconds", &seconds) ||
      !expect_number(info, "fmaPeak", 1, "threads", &threads)) {
    return env.Undefined();
  }
  // The probe blocks the calling JS thread, so the window is capped.
  if (!(seconds > 0.0 && seconds <= 60.0)) {
    throw_range_error(env, "fmaPeak: seconds must be in (0, 60], got " + std::to_string(seconds));
    return env.Undefined();
  }
  if (!(threads >= 1.0 && threads <= 1024.0 && std::floor(threads) == threads)) {
    throw_range_error(env, "fmaPeak: threads must be an integer in [1, 1024], got " +
                               std::to_string(threads));
    return env.Undefined();
  }
  const Isa isa = active_isa();
  FmaPeakResult r{};
  try {
    r = fma_peak(isa, seconds, static_cast<unsigned>(threads));
  } catch (const std::exception& e) {
    Napi::Error::New(env, std::string("fmaPeak: could not start threads: ") + e.what())
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("gflops", r.gflops);
  out.Set("isa", isa_name(isa));
  return out;
}

Napi::Value CpuFeaturesJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const CpuFeatures f = cpu_features();
  Napi::Object out = Napi::Object::New(env);
  out.Set("avx2", f.avx2);
  out.Set("fma", f.fma);
  out.Set("avx512f", f.avx512f);
  out.Set("cores", f.cores);
  return out;
}

Napi::Value SetIsa(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!expect_arity(info, "setIsa", 1)) return env.Undefined();
  if (!info[0].IsString()) {
    throw_type_error(env, "setIsa: isa must be a string, got " + describe(info[0]));
    return env.Undefined();
  }
  const std::string name = info[0].As<Napi::String>().Utf8Value();
  Isa isa = Isa::Scalar;
  if (name == "auto") {
    reset_isa();
  } else if (!parse_isa(name.c_str(), &isa)) {
    throw_range_error(env, "setIsa: unknown isa \"" + name +
                               "\", expected \"auto\", \"scalar\", \"avx2\" or \"avx512\"");
    return env.Undefined();
  } else if (!set_isa(isa)) {
    throw_range_error(env, "setIsa: this CPU does not support " + name);
    return env.Undefined();
  }
  return Napi::String::New(env, isa_name(active_isa()));
}

Napi::Value ActiveIsa(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), isa_name(active_isa()));
}

Napi::Object RegisterExports(Napi::Env env, Napi::Object exports) {
  exports.Set("axpy", Napi::Function::New(env, Axpy, "axpy"));
  exports.Set("copy", Napi::Function::New(env, Copy, "copy"));
  exports.Set("fmaPeak", Napi::Function::New(env, FmaPeak, "fmaPeak"));
  exports.Set("cpuFeatures", Napi::Function::New(env, CpuFeaturesJs, "cpuFeatures"));
  exports.Set("setIsa", Napi::Function::New(env, SetIsa, "setIsa"));
  exports.Set("activeIsa", Napi::Function::New(env, ActiveIsa, "activeIsa"));
  return exports;
}

}  // namespace
}  // namespace pleat

// NODE_API_MODULE pastes the name into an identifier, so it must be unqualified.
static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  return pleat::RegisterExports(env, exports);
}

NODE_API_MODULE(pleat_cpu, Init)
