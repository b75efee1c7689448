// The first CUDA kernels (kernels/ops_cuda.h) on host arrays, with the CPU kernels' signatures so
// each can be checked against its CPU twin: the arrays are copied to device memory (the caching
// allocator), the kernel runs on stream 0, the outputs are copied back and waited for.
//
//   gatherRows(src, index, out, cols)                      Float32Array, Int32Array, Float32Array
//   rmsnormRows(x, weight, out, rstd, rows, cols, eps)     rstd: Float64Array or null
//   swiglu(gate, up, out)
//   adamw(w, g, m, v, beta1, beta2, c1, c2, eps, lr, clip, decay)   all Float32Array
//   combineRows(rows, rowCols, index, weights, tokens, cols, out)   the MoE unpermute, as
//                  CpuDispatch's combineRows without the extra column (weights may be null)
// Wrong types or lengths are TypeErrors / RangeErrors thrown before any device work; without a
// GPU every call throws "no device: ...".
#include "cuda_ops_binding.h"

#include <cuda_runtime.h>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "device_memory_binding.h"
#include "kernels/ops_cuda.h"
#include "napi_args.h"

namespace pleat {

namespace {

// Device copies of host arrays for one call: copied in on creation, out where asked, freed at
// the end of the call.
class Staging {
 public:
  Staging(DeviceMemory* m, cudaStream_t s) : m_(m), s_(s) {}
  ~Staging() {
    for (void* p : blocks_) m_->allocator.free(p);
  }
  // Device memory for `h`, its bytes copied in when `in`; nullptr when the device is full.
  void* stage(const ArrayArg& h, bool in) {
    void* p = m_->allocator.allocate(h.bytes(), 0);
    if (p == nullptr) return nullptr;
    blocks_.push_back(p);
    if (in && h.bytes() > 0 && cudaMemcpyAsync(p, h.data, h.bytes(), cudaMemcpyHostToDevice, s_) != cudaSuccess) failed_ = true;
    return p;
  }
  void back(const ArrayArg& h, const void* p) {
    if (h.bytes() > 0 && cudaMemcpyAsync(h.data, p, h.bytes(), cudaMemcpyDeviceToHost, s_) != cudaSuccess) failed_ = true;
  }
  // Waits for the call's work; false (with a pending JS Error naming `fn`) on any failure.
  bool finish(Napi::Env env, const char* fn, cudaError_t launched) {
    const cudaError_t synced = cudaStreamSynchronize(s_);
    const cudaError_t err = launched != cudaSuccess ? launched : synced;
    if (err == cudaSuccess && !failed_) return true;
    (void)cudaGetLastError();
    Napi::Error::New(env, std::string("CUDA error: ") + fn + " failed: " + (err != cudaSuccess ? std::string(cudaGetErrorName(err)) + ": " + cudaGetErrorString(err) : "a copy failed"))
        .ThrowAsJavaScriptException();
    return false;
  }

 private:
  DeviceMemory* m_;
  cudaStream_t s_;
  std::vector<void*> blocks_;
  bool failed_ = false;
};

// How a host array travels in one call: copied to the device, copied back, or both.
enum class Way { in, out, in_out };

// One host array of a call. `host` null: an optional array left out (its device pointer is null).
struct Transfer {
  const ArrayArg* host;
  Way way;
};

// The device copies of a call's arrays, by their place in the call's list.
class DevicePointers {
 public:
  explicit DevicePointers(const std::vector<void*>& p) : p_(p) {}
  float* f32(size_t i) const { return static_cast<float*>(p_[i]); }
  double* f64(size_t i) const { return static_cast<double*>(p_[i]); }
  int32_t* i32(size_t i) const { return static_cast<int32_t*>(p_[i]); }

 private:
  const std::vector<void*>& p_;
};

// The device part every kernel binding shares, after its argument checks: the device (a pending
// "no device: ..." Error without one), `arrays` staged in their order on stream 0 (copied in
// unless Way::out), `launch(pointers, stream)`, the Way::out / Way::in_out arrays copied back in
// their order, and a wait for it all. "out of memory" when a staging allocation fails, before
// any launch. Returns undefined; every failure leaves a pending JS Error.
template <typename Launch>
Napi::Value run_on_device(const Napi::CallbackInfo& info, const char* fn, std::initializer_list<Transfer> arrays, const Launch& launch) {
  Napi::Env env = info.Env();
  DeviceMemory* m = device_memory(env);
  if (m == nullptr) return env.Undefined();
  cudaStream_t s = m->backend.stream(0);
  Staging st(m, s);
  std::vector<void*> device;
  bool full = false;
  for (const Transfer& a : arrays) {
    void* p = a.host != nullptr ? st.stage(*a.host, a.way != Way::out) : nullptr;
    full = full || (a.host != nullptr && p == nullptr);
    device.push_back(p);
  }
  if (full) {
    Napi::Error::New(env, std::string(fn) + ": the device is out of memory").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const DevicePointers d(device);
  const cudaError_t launched = launch(d, s);
  size_t i = 0;
  for (const Transfer& a : arrays) {
    if (a.host != nullptr && a.way != Way::in) st.back(*a.host, device[i]);
    ++i;
  }
  st.finish(env, fn, launched);
  return env.Undefined();
}

Napi::Value GatherRows(const Napi::CallbackInfo& info) {
  const char* fn = "gatherRows";
  Napi::Env env = info.Env();
  ArrayArg src, index, out;
  double cols = 0;
  if (!expect_array(info, fn, 0, "src", {napi_float32_array}, &src) || !expect_array(info, fn, 1, "index", {napi_int32_array}, &index) ||
      !expect_array(info, fn, 2, "out", {napi_float32_array}, &out) || !expect_number(info, fn, 3, "cols", &cols))
    return env.Undefined();
  const size_t c = static_cast<size_t>(cols);
  if (cols < 1 || c * index.length != out.length || src.length % c != 0) {
    throw_range_error(env, std::string(fn) + ": out must hold index.length * cols elements and src whole rows of cols");
    return env.Undefined();
  }
  const int32_t* idx = index.i32();
  for (size_t i = 0; i < index.length; ++i) {
    if (idx[i] < 0 || static_cast<size_t>(idx[i]) >= src.length / c) {
      throw_range_error(env, std::string(fn) + ": index[" + std::to_string(i) + "] = " + std::to_string(idx[i]) + " is outside src's " + std::to_string(src.length / c) + " rows");
      return env.Undefined();
    }
  }
  return run_on_device(info, fn, {{&src, Way::in}, {&index, Way::in}, {&out, Way::out}}, [&](const DevicePointers& d, cudaStream_t s) {
    return gather_rows_launch(d.f32(0), d.i32(1), d.f32(2), index.length, c, s);
  });
}

Napi::Value RmsnormRows(const Napi::CallbackInfo& info) {
  const char* fn = "rmsnormRows";
  Napi::Env env = info.Env();
  ArrayArg x, w, out, rstd;
  double rows = 0, cols = 0, eps = 0;
  const bool has_rstd = info.Length() > 3 && !info[3].IsNull();
  if (!expect_array(info, fn, 0, "x", {napi_float32_array}, &x) || !expect_array(info, fn, 1, "weight", {napi_float32_array}, &w) ||
      !expect_array(info, fn, 2, "out", {napi_float32_array}, &out) ||
      (has_rstd && !expect_array(info, fn, 3, "rstd", {napi_float64_array}, &rstd)) || !expect_number(info, fn, 4, "rows", &rows) ||
      !expect_number(info, fn, 5, "cols", &cols) || !expect_number(info, fn, 6, "eps", &eps))
    return env.Undefined();
  const size_t r = static_cast<size_t>(rows), c = static_cast<size_t>(cols);
  if (x.length != r * c || out.length != r * c || w.length != c || (has_rstd && rstd.length != r)) {
    throw_range_error(env, std::string(fn) + ": x and out need rows * cols elements, weight cols, rstd rows");
    return env.Undefined();
  }
  return run_on_device(info, fn, {{&x, Way::in}, {&w, Way::in}, {&out, Way::out}, {has_rstd ? &rstd : nullptr, Way::out}},
                       [&](const DevicePointers& d, cudaStream_t s) { return rmsnorm_rows_launch(d.f32(0), d.f32(1), d.f32(2), d.f64(3), r, c, eps, s); });
}

Napi::Value Swiglu(const Napi::CallbackInfo& info) {
  const char* fn = "swiglu";
  Napi::Env env = info.Env();
  ArrayArg gate, up, out;
  if (!expect_array(info, fn, 0, "gate", {napi_float32_array}, &gate) || !expect_array(info, fn, 1, "up", {napi_float32_array}, &up) ||
      !expect_array(info, fn, 2, "out", {napi_float32_array}, &out))
    return env.Undefined();
  if (up.length != gate.length || out.length != gate.length) {
    throw_range_error(env, std::string(fn) + ": gate, up and out must have the same length");
    return env.Undefined();
  }
  return run_on_device(info, fn, {{&gate, Way::in}, {&up, Way::in}, {&out, Way::out}},
                       [&](const DevicePointers& d, cudaStream_t s) { return swiglu_launch(d.f32(0), d.f32(1), d.f32(2), gate.length, s); });
}

Napi::Value CombineRows(const Napi::CallbackInfo& info) {
  const char* fn = "combineRows";
  Napi::Env env = info.Env();
  ArrayArg rows, index, weights, out;
  double row_cols = 0, tokens = 0, cols = 0;
  const bool weighted = info.Length() > 3 && !info[3].IsNull();
  if (!expect_array(info, fn, 0, "rows", {napi_float32_array}, &rows) || !expect_number(info, fn, 1, "rowCols", &row_cols) ||
      !expect_array(info, fn, 2, "index", {napi_int32_array}, &index) ||
      (weighted && !expect_array(info, fn, 3, "weights", {napi_float32_array}, &weights)) || !expect_number(info, fn, 4, "tokens", &tokens) ||
      !expect_number(info, fn, 5, "cols", &cols) || !expect_array(info, fn, 6, "out", {napi_float32_array}, &out))
    return env.Undefined();
  const size_t n = index.length, rc = static_cast<size_t>(row_cols), t = static_cast<size_t>(tokens), c = static_cast<size_t>(cols);
  if (rows.length != n * rc || c > rc || out.length != t * c || (weighted && weights.length != n)) {
    throw_range_error(env, std::string(fn) + ": rows need index.length * rowCols elements, cols <= rowCols, out tokens * cols, weights index.length");
    return env.Undefined();
  }
  // Token t's rows in increasing j, as a CSR list (a stable counting sort of index).
  const int32_t* idx = index.i32();
  std::vector<int32_t> offsets(t + 1, 0), order(n);
  for (size_t j = 0; j < n; ++j) {
    if (idx[j] < 0 || static_cast<size_t>(idx[j]) >= t) {
      throw_range_error(env, std::string(fn) + ": index[" + std::to_string(j) + "] = " + std::to_string(idx[j]) + " is not a token of " + std::to_string(t));
      return env.Undefined();
    }
    ++offsets[static_cast<size_t>(idx[j]) + 1];
  }
  for (size_t i = 0; i < t; ++i) offsets[i + 1] += offsets[i];
  std::vector<int32_t> next(offsets.begin(), offsets.end() - 1);
  for (size_t j = 0; j < n; ++j) order[static_cast<size_t>(next[static_cast<size_t>(idx[j])]++)] = static_cast<int32_t>(j);
  const ArrayArg off{napi_int32_array, offsets.size(), reinterpret_cast<uint8_t*>(offsets.data()), Napi::Value()};
  const ArrayArg ord{napi_int32_array, order.size(), reinterpret_cast<uint8_t*>(order.data()), Napi::Value()};
  return run_on_device(info, fn, {{&rows, Way::in}, {&off, Way::in}, {&ord, Way::in}, {weighted ? &weights : nullptr, Way::in}, {&out, Way::out}},
                       [&](const DevicePointers& d, cudaStream_t s) {
                         return combine_rows_launch(d.f32(0), rc, d.i32(1), d.i32(2), d.f32(3), t, c, d.f32(4), s);
                       });
}

Napi::Value Adamw(const Napi::CallbackInfo& info) {
  const char* fn = "adamw";
  Napi::Env env = info.Env();
  ArrayArg w, g, m, v;
  AdamwScalars sc{};
  double* fields[] = {&sc.beta1, &sc.beta2, &sc.c1, &sc.c2, &sc.eps, &sc.lr, &sc.clip, &sc.decay};
  const char* names[] = {"beta1", "beta2", "c1", "c2", "eps", "lr", "clip", "decay"};
  if (!expect_array(info, fn, 0, "w", {napi_float32_array}, &w) || !expect_array(info, fn, 1, "g", {napi_float32_array}, &g) ||
      !expect_array(info, fn, 2, "m", {napi_float32_array}, &m) || !expect_array(info, fn, 3, "v", {napi_float32_array}, &v))
    return env.Undefined();
  for (size_t i = 0; i < 8; ++i) {
    if (!expect_number(info, fn, 4 + i, names[i], fields[i])) return env.Undefined();
  }
  if (g.length != w.length || m.length != w.length || v.length != w.length) {
    throw_range_error(env, std::string(fn) + ": w, g, m and v must have the same length");
    return env.Undefined();
  }
  return run_on_device(info, fn, {{&w, Way::in_out}, {&g, Way::in}, {&m, Way::in_out}, {&v, Way::in_out}},
                       [&](const DevicePointers& d, cudaStream_t s) { return adamw_f32_launch(sc, w.length, d.f32(0), d.f32(1), d.f32(2), d.f32(3), s); });
}

}  // namespace

void RegisterCudaOpsExports(Napi::Env env, Napi::Object exports) {
  exports.Set("gatherRows", Napi::Function::New(env, GatherRows, "gatherRows"));
  exports.Set("rmsnormRows", Napi::Function::New(env, RmsnormRows, "rmsnormRows"));
  exports.Set("swiglu", Napi::Function::New(env, Swiglu, "swiglu"));
  exports.Set("adamw", Napi::Function::New(env, Adamw, "adamw"));
  exports.Set("combineRows", Napi::Function::New(env, CombineRows, "combineRows"));
}

}  // namespace pleat
