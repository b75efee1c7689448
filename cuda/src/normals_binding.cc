// The Node-API binding of kernels/normals.h. Typed wrapper: src/native/CpuOptional.ts.
//
//   normalsF32(seed, first, count, std, out, marginLog2) -> Array of offsets
//       out[0, count) = elements [first, first + count) of the normal stream of `seed` times std
//       as float32 (out a Float32Array of at least count elements); returns the offsets the kernel
//       left undecided (the caller writes them with the TypeScript reference). marginLog2 in
//       [20, 52]: 44 in use, smaller in tests to leave many undecided.
#include "normals_binding.h"

#include <cmath>
#include <string>

#include "kernels/normals.h"
#include "napi_args.h"

namespace pleat {
namespace {

Napi::Value NormalsF32(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* fn = "normalsF32";
  size_t seed = 0, first = 0, count = 0, margin = 0;
  double std_dev = 0;
  Napi::TypedArray out;
  if (!expect_arity(info, fn, 6) || !expect_size(info, fn, 0, "seed", &seed, 4294967295.0) || !expect_size(info, fn, 1, "first", &first) ||
      !expect_size(info, fn, 2, "count", &count) || !expect_number(info, fn, 3, "std", &std_dev) ||
      !expect_typed_array(info, fn, 4, "out", &out) || !expect_size(info, fn, 5, "marginLog2", &margin, 52.0)) {
    return env.Undefined();
  }
  if (out.TypedArrayType() != napi_float32_array) {
    throw_type_error(env, std::string(fn) + ": out must be a Float32Array, got " + typed_array_name(out.TypedArrayType()));
    return env.Undefined();
  }
  if (out.ElementLength() < count) {
    throw_range_error(env, std::string(fn) + ": out holds " + std::to_string(out.ElementLength()) + " elements, fewer than count " + std::to_string(count));
    return env.Undefined();
  }
  if (margin < 20) {
    throw_range_error(env, std::string(fn) + ": marginLog2 must be in [20, 52], got " + std::to_string(margin));
    return env.Undefined();
  }
  if (!std::isfinite(std_dev)) {
    throw_range_error(env, std::string(fn) + ": std must be finite");
    return env.Undefined();
  }
  if (count == 0) return Napi::Array::New(env, 0);
  float* data = reinterpret_cast<float*>(view_bytes(out));
  const std::vector<size_t> undecided = normals_f32(static_cast<uint32_t>(seed), first, count, std_dev, data, static_cast<int>(margin));
  Napi::Array list = Napi::Array::New(env, undecided.size());
  for (size_t i = 0; i < undecided.size(); ++i) list.Set(static_cast<uint32_t>(i), Napi::Number::New(env, static_cast<double>(undecided[i])));
  return list;
}

}  // namespace

void RegisterNormalsExports(Napi::Env env, Napi::Object exports) { exports.Set("normalsF32", Napi::Function::New(env, NormalsF32, "normalsF32")); }

}  // namespace pleat
