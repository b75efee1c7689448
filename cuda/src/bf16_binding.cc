// The Node-API binding of the bf16 rounding kernel (kernels/bf16.h). Typed wrapper: src/native/Cpu.ts.
//
//   roundBf16(src, dst, path) -> the path that ran, "avx512bf16" | "portable"
//       dst[i] = src[i] rounded to bfloat16 (round to nearest even, NaN stays NaN), both
//       Float32Array of one length; dst may be the same view as src (in place), no other
//       overlap. path: "auto" (AVX512-BF16 when the CPU has it), "portable", or "avx512bf16"
//       (a RangeError on a CPU without it).
//   bf16Hardware()            -> whether the CPU has AVX512-BF16
#include "bf16_binding.h"

#include <string>

#include "kernels/bf16.h"
#include "napi_args.h"

namespace pleat {
namespace {

Napi::Value RoundBf16(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::TypedArray src, dst;
  if (!expect_arity(info, "roundBf16", 3) || !expect_typed_array(info, "roundBf16", 0, "src", &src) ||
      !expect_typed_array(info, "roundBf16", 1, "dst", &dst)) {
    return env.Undefined();
  }
  if (src.TypedArrayType() != napi_float32_array || dst.TypedArrayType() != napi_float32_array) {
    throw_type_error(env, std::string("roundBf16: src and dst must be Float32Array, got ") +
                              typed_array_name(src.TypedArrayType()) + " and " + typed_array_name(dst.TypedArrayType()));
    return env.Undefined();
  }
  std::string name;
  if (!expect_string(info, "roundBf16", 2, "path", &name)) return env.Undefined();
  Bf16Path path = Bf16Path::Portable;
  if (name == "auto") {
    path = bf16_hardware() ? Bf16Path::Avx512Bf16 : Bf16Path::Portable;
  } else if (name == "avx512bf16") {
    if (!bf16_hardware()) {
      throw_range_error(env, "roundBf16: this CPU does not support AVX512-BF16");
      return env.Undefined();
    }
    path = Bf16Path::Avx512Bf16;
  } else if (name != "portable") {
    throw_range_error(env, "roundBf16: unknown path \"" + name + "\", expected \"auto\", \"portable\" or \"avx512bf16\"");
    return env.Undefined();
  }
  const size_t n = src.ElementLength();
  if (dst.ElementLength() != n) {
    throw_type_error(env, "roundBf16: src and dst must have the same length, got " + std::to_string(n) + " and " +
                              std::to_string(dst.ElementLength()));
    return env.Undefined();
  }
  const char* ran = path == Bf16Path::Avx512Bf16 ? "avx512bf16" : "portable";
  if (n == 0) return Napi::String::New(env, ran);
  const uint8_t* s = view_bytes(src);
  uint8_t* d = view_bytes(dst);
  if (s == nullptr || d == nullptr) {
    Napi::Error::New(env, "roundBf16: cannot access the memory of src or dst").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (s != d && ranges_overlap(s, src.ByteLength(), d, dst.ByteLength())) {
    throw_type_error(env, "roundBf16: src and dst overlap in memory but are not the same view");
    return env.Undefined();
  }
  round_bf16(path, reinterpret_cast<const float*>(s), reinterpret_cast<float*>(d), n);
  return Napi::String::New(env, ran);
}

Napi::Value Bf16Hardware(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), bf16_hardware()); }

}  // namespace

void RegisterBf16Exports(Napi::Env env, Napi::Object exports) {
  exports.Set("roundBf16", Napi::Function::New(env, RoundBf16, "roundBf16"));
  exports.Set("bf16Hardware", Napi::Function::New(env, Bf16Hardware, "bf16Hardware"));
}

}  // namespace pleat
