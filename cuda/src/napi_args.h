// Argument checking shared by the two bindings (binding.cc, cuda_binding.cc).
//
// The addons are built with NAPI_DISABLE_CPP_EXCEPTIONS, so a failed check throws a pending JS
// exception and the caller returns at once; every helper here returns false in that case.
// Messages name the function, the argument and what was received, because they surface as-is
// in TypeScript stack traces.
#pragma once

#include <napi.h>

#include <cstddef>
#include <cstdint>
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

}  // namespace pleat
