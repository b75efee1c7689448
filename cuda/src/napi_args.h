// Argument checking shared by the addons' bindings (binding.cc, cuda_binding.cc and the
// bindings they register).
//
// The addons are built with NAPI_DISABLE_CPP_EXCEPTIONS, so a failed check throws a pending JS
// exception and the caller returns at once; every helper here returns false in that case.
// Messages name the function, the argument and what was received, because they surface as-is
// in TypeScript stack traces.
#pragma once

#include <napi.h>

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>

namespace pleat {

inline const char* typed_array_name(napi_typedarray_type type) {
  switch (type) {
    case napi_int8_array: return "Int8Array";
    case napi_uint8_array: return "Uint8Array";
    case napi_uint8_clamped_array: return "Uint8ClampedArray";
    case napi_int16_array: return "Int16Array";
    case napi_uint16_array: return "Uint16Array";
    case napi_int32_array: return "Int32Array";
    case napi_uint32_array: return "Uint32Array";
    case napi_float32_array: return "Float32Array";
    case napi_float64_array: return "Float64Array";
    case napi_bigint64_array: return "BigInt64Array";
    case napi_biguint64_array: return "BigUint64Array";
    default: return "TypedArray";
  }
}

// A short name for what a JS value is, for error messages ("Float64Array", "number", "null").
inline std::string describe(const Napi::Value& value) {
  if (value.IsTypedArray()) return typed_array_name(value.As<Napi::TypedArray>().TypedArrayType());
  if (value.IsDataView()) return "DataView";
  if (value.IsArrayBuffer()) return "ArrayBuffer";
  if (value.IsArray()) return "Array";
  switch (value.Type()) {
    case napi_undefined: return "undefined";
    case napi_null: return "null";
    case napi_boolean: return "boolean";
    case napi_number: return "number";
    case napi_string: return "string";
    case napi_symbol: return "symbol";
    case napi_function: return "function";
    case napi_bigint: return "bigint";
    default: return "object";
  }
}

inline bool throw_type_error(Napi::Env env, const std::string& message) {
  Napi::TypeError::New(env, message).ThrowAsJavaScriptException();
  return false;
}

inline bool throw_range_error(Napi::Env env, const std::string& message) {
  Napi::RangeError::New(env, message).ThrowAsJavaScriptException();
  return false;
}

inline bool expect_arity(const Napi::CallbackInfo& info, const char* fn, size_t arity) {
  if (info.Length() == arity) return true;
  return throw_type_error(info.Env(), std::string(fn) + ": expected " + std::to_string(arity) +
                                          " arguments, got " + std::to_string(info.Length()));
}

inline bool expect_number(const Napi::CallbackInfo& info, const char* fn, size_t index,
                          const char* name, double* out) {
  const Napi::Value value = info[index];
  if (!value.IsNumber()) {
    return throw_type_error(info.Env(), std::string(fn) + ": " + name + " must be a number, got " +
                                            describe(value));
  }
  *out = value.As<Napi::Number>().DoubleValue();
  return true;
}

// A string argument as UTF-8. Anything else is a TypeError "<fn>: <name> must be a string, got ...".
inline bool expect_string(const Napi::CallbackInfo& info, const char* fn, size_t index, const char* name, std::string* out) {
  const Napi::Value value = info[index];
  if (!value.IsString()) return throw_type_error(info.Env(), std::string(fn) + ": " + name + " must be a string, got " + describe(value));
  *out = value.As<Napi::String>().Utf8Value();
  return true;
}

// A non-negative integer as a double (a byte count, an address, a stream). Anything else, a
// missing argument or a non-number included, is a TypeError "<fn>: <name> must be an integer >= 0".
inline bool expect_whole(const Napi::CallbackInfo& info, const char* fn, size_t index,
                         const char* name, double* out) {
  const Napi::Value value = info[index];
  const double v = value.IsNumber() ? value.As<Napi::Number>().DoubleValue() : -1;
  if (v < 0 || v != static_cast<double>(static_cast<uint64_t>(v))) {
    return throw_type_error(info.Env(), std::string(fn) + ": " + name + " must be an integer >= 0");
  }
  *out = v;
  return true;
}

inline bool expect_typed_array(const Napi::CallbackInfo& info, const char* fn, size_t index,
                               const char* name, Napi::TypedArray* out) {
  const Napi::Value value = info[index];
  if (!value.IsTypedArray()) {
    return throw_type_error(info.Env(), std::string(fn) + ": " + name +
                                            " must be a typed array, got " + describe(value));
  }
  *out = value.As<Napi::TypedArray>();
  return true;
}

// Start of the view's bytes (byteOffset applied). Null for an empty or detached view.
// Asks napi_get_typedarray_info for the data pointer directly: going through the view's
// ArrayBuffer (napi_get_arraybuffer_info) fails for a SharedArrayBuffer on Node 20.
inline uint8_t* view_bytes(const Napi::TypedArray& view) {
  napi_typedarray_type type;
  size_t length = 0;
  void* data = nullptr;
  if (napi_get_typedarray_info(view.Env(), view, &type, &length, &data, nullptr, nullptr) != napi_ok) {
    return nullptr;
  }
  return length == 0 ? nullptr : static_cast<uint8_t*>(data);
}

// True when [a, a + a_len) and [b, b + b_len) share at least one byte.
inline bool ranges_overlap(const uint8_t* a, size_t a_len, const uint8_t* b, size_t b_len) {
  if (a == nullptr || b == nullptr || a_len == 0 || b_len == 0) return false;
  const auto pa = reinterpret_cast<uintptr_t>(a);
  const auto pb = reinterpret_cast<uintptr_t>(b);
  return pa < pb + b_len && pb < pa + a_len;
}

// The checks axpy shares on every backend: equal lengths, accessible memory, and no shifted
// overlap (the same view twice is a well-defined element-wise update; a shifted overlap would
// make the result depend on the vector width). On success sets the byte pointers.
inline bool expect_axpy_pair(Napi::Env env, const Napi::TypedArray& x, const Napi::TypedArray& y,
                             uint8_t** xb, uint8_t** yb) {
  const size_t n = x.ElementLength();
  if (y.ElementLength() != n) {
    return throw_type_error(env, "axpy: x and y must have the same length, got " + std::to_string(n) +
                                     " and " + std::to_string(y.ElementLength()));
  }
  *xb = view_bytes(x);
  *yb = view_bytes(y);
  if (n != 0 && (*xb == nullptr || *yb == nullptr)) {
    Napi::Error::New(env, "axpy: cannot access the memory of x or y").ThrowAsJavaScriptException();
    return false;
  }
  if (*xb != *yb && ranges_overlap(*xb, x.ByteLength(), *yb, y.ByteLength())) {
    return throw_type_error(env, "axpy: x and y overlap in memory but are not the same view");
  }
  return true;
}

// ---- checks of the tensor kernels (binding.cc) -------------------------------------------------

// A typed array argument as the kernels see it: its element type, length and first byte. In the
// CUDA addon an argument may also be a device array (device_arrays.h): `resident`, and `data`
// is then device memory, which host code never reads.
struct ArrayArg {
  napi_typedarray_type type = napi_float32_array;
  size_t length = 0;
  uint8_t* data = nullptr;  // null when empty
  Napi::Value value;        // kept for async references
  bool resident = false;
  const float* f32() const { return reinterpret_cast<const float*>(data); }
  float* f32_mut() const { return reinterpret_cast<float*>(data); }
  double* f64_mut() const { return reinterpret_cast<double*>(data); }
  const int32_t* i32() const { return reinterpret_cast<const int32_t*>(data); }
  size_t bytes() const {
    return length * (type == napi_float64_array ? 8 : type == napi_float32_array || type == napi_int32_array ? 4 : 1);
  }
};

// What reads a device array argument (its element type, length and device pointer), set by the
// CUDA addon when it loads; null in every other addon, which so never accepts one. One per
// shared object (the addons hide their symbols).
using DeviceArrayReader = bool (*)(const Napi::Value& value, napi_typedarray_type* type, size_t* length, uint8_t** data);
inline DeviceArrayReader& device_array_reader() {
  static DeviceArrayReader reader = nullptr;
  return reader;
}

// Reads a typed array of one of `allowed` types (napi_float32_array, ...), or in the CUDA addon a
// device array of one of them. A detached or unreadable view with elements is an Error: the
// kernels would have no memory to use.
inline bool expect_array(const Napi::CallbackInfo& info, const char* fn, size_t index,
                         const char* name, std::initializer_list<napi_typedarray_type> allowed,
                         ArrayArg* out) {
  Napi::Env env = info.Env();
  const Napi::Value value = info[index];
  std::string want;
  for (napi_typedarray_type t : allowed) want += (want.empty() ? "" : " or ") + std::string(typed_array_name(t));
  napi_typedarray_type device_type;
  size_t device_length = 0;
  uint8_t* device_data = nullptr;
  if (device_array_reader() != nullptr && value.IsExternal() && device_array_reader()(value, &device_type, &device_length, &device_data)) {
    bool ok = false;
    for (napi_typedarray_type t : allowed) ok = ok || t == device_type;
    if (!ok) return throw_type_error(env, std::string(fn) + ": " + name + " must be a " + want + ", got a device array of " + typed_array_name(device_type));
    *out = ArrayArg{device_type, device_length, device_data, value, true};
    return true;
  }
  if (!value.IsTypedArray()) {
    return throw_type_error(env, std::string(fn) + ": " + name + " must be a " + want + ", got " + describe(value));
  }
  napi_typedarray_type type;
  size_t length = 0;
  void* data = nullptr;
  if (napi_get_typedarray_info(env, value, &type, &length, &data, nullptr, nullptr) != napi_ok) {
    Napi::Error::New(env, std::string(fn) + ": cannot read " + name).ThrowAsJavaScriptException();
    return false;
  }
  bool ok = false;
  for (napi_typedarray_type t : allowed) ok = ok || t == type;
  if (!ok) {
    return throw_type_error(env, std::string(fn) + ": " + name + " must be a " + want + ", got " + typed_array_name(type));
  }
  if (length != 0 && data == nullptr) {
    Napi::Error::New(env, std::string(fn) + ": cannot access the memory of " + name).ThrowAsJavaScriptException();
    return false;
  }
  *out = ArrayArg{type, length, length == 0 ? nullptr : static_cast<uint8_t*>(data), value};
  return true;
}

// A size: a number that is an integer in [0, max]. Not a number: TypeError; otherwise RangeError.
inline bool expect_size(const Napi::CallbackInfo& info, const char* fn, size_t index,
                        const char* name, size_t* out, double max = 9007199254740991.0) {
  double v = 0.0;
  if (!expect_number(info, fn, index, name, &v)) return false;
  if (!(v >= 0.0 && v <= max && v == static_cast<double>(static_cast<uint64_t>(v)))) {
    return throw_range_error(info.Env(), std::string(fn) + ": " + name + " must be an integer in [0, " +
                                             std::to_string(static_cast<uint64_t>(max)) + "], got " + Napi::Number::New(info.Env(), v).ToString().Utf8Value());
  }
  *out = static_cast<size_t>(v);
  return true;
}

inline bool expect_bool(const Napi::CallbackInfo& info, const char* fn, size_t index,
                        const char* name, bool* out) {
  const Napi::Value value = info[index];
  if (!value.IsBoolean()) {
    return throw_type_error(info.Env(), std::string(fn) + ": " + name + " must be a boolean, got " + describe(value));
  }
  *out = value.As<Napi::Boolean>().Value();
  return true;
}

// a * b into *out; false (and a RangeError naming `what`) when it does not fit in 2^53.
inline bool checked_mul(Napi::Env env, const char* fn, const char* what, size_t a, size_t b, size_t* out) {
  size_t r = 0;
  if (__builtin_mul_overflow(a, b, &r) || r > (size_t{1} << 53)) {
    return throw_range_error(env, std::string(fn) + ": " + what + " is too large");
  }
  *out = r;
  return true;
}

// Element count of x must be exactly `want`; the message shows how `want` was formed.
inline bool expect_length(Napi::Env env, const char* fn, const char* name, const ArrayArg& x,
                          size_t want, const std::string& formula) {
  if (x.length == want) return true;
  return throw_range_error(env, std::string(fn) + ": " + name + " has " + std::to_string(x.length) +
                                    " elements, expected " + formula + " = " + std::to_string(want));
}

// Refuses out sharing memory with an input, except as the very same view when `same_ok`.
inline bool expect_disjoint(Napi::Env env, const char* fn, const char* out_name, const ArrayArg& out,
                            const char* in_name, const ArrayArg& in, bool same_ok) {
  if (!ranges_overlap(out.data, out.bytes(), in.data, in.bytes())) return true;
  if (same_ok && out.data == in.data && out.bytes() == in.bytes()) return true;
  return throw_type_error(env, std::string(fn) + ": " + out_name + " and " + in_name +
                                   (same_ok ? " overlap in memory but are not the same view" : " must not overlap in memory"));
}

}  // namespace pleat
