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

#include <string>
#include <vector>

#include "device_memory_binding.h"
#include "kernels/ops_cuda.h"

namespace pleat {

namespace {

// A host typed array's bytes and element count.
struct Host {
  char* data = nullptr;
  size_t bytes = 0;
  size_t length = 0;
};

bool host_arg(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name, napi_typedarray_type type, Host* out) {
  if (info.Length() <= i || !info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != type) {
    const char* want = type == napi_float32_array ? "Float32Array" : type == napi_int32_array ? "Int32Array" : "Float64Array";
    Napi::TypeError::New(info.Env(), std::string(fn) + ": " + name + " must be a " + want).ThrowAsJavaScriptException();
    return false;
  }
  const Napi::TypedArray a = info[i].As<Napi::TypedArray>();
  out->data = static_cast<char*>(a.ArrayBuffer().Data()) + a.ByteOffset();
  out->bytes = a.ByteLength();
  out->length = a.ElementLength();
  return true;
}

bool number_arg(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name, double* out) {
  if (info.Length() <= i || !info[i].IsNumber()) {
    Napi::TypeError::New(info.Env(), std::string(fn) + ": " + name + " must be a number").ThrowAsJavaScriptException();
    return false;
  }
  *out = info[i].As<Napi::Number>().DoubleValue();
  return true;
}

bool range_error(const Napi::CallbackInfo& info, const std::string& message) {
  Napi::RangeError::New(info.Env(), message).ThrowAsJavaScriptException();
  return false;
}

// Device copies of host arrays for one call: copied in on creation, out where asked, freed at
// the end of the call.
class Staging {
 public:
  Staging(DeviceMemory* m, cudaStream_t s) : m_(m), s_(s) {}
  ~Staging() {
    for (void* p : blocks_) m_->allocator.free(p);
  }
  // Device memory for `h`, its bytes copied in when `in`; nullptr when the device is full.
  void* stage(const Host& h, bool in) {
    void* p = m_->allocator.allocate(h.bytes, 0);
    if (p == nullptr) return nullptr;
    blocks_.push_back(p);
    if (in && h.bytes > 0 && cudaMemcpyAsync(p, h.data, h.bytes, cudaMemcpyHostToDevice, s_) != cudaSuccess) failed_ = true;
    return p;
  }
  void back(const Host& h, const void* p) {
    if (h.bytes > 0 && cudaMemcpyAsync(h.data, p, h.bytes, cudaMemcpyDeviceToHost, s_) != cudaSuccess) failed_ = true;
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

Napi::Value full(const Napi::CallbackInfo& info, const char* fn) {
  Napi::Error::New(info.Env(), std::string(fn) + ": the device is out of memory").ThrowAsJavaScriptException();
  return info.Env().Undefined();
}

Napi::Value GatherRows(const Napi::CallbackInfo& info) {
  const char* fn = "gatherRows";
  Host src, index, out;
  double cols = 0;
  if (!host_arg(info, 0, fn, "src", napi_float32_array, &src) || !host_arg(info, 1, fn, "index", napi_int32_array, &index) ||
      !host_arg(info, 2, fn, "out", napi_float32_array, &out) || !number_arg(info, 3, fn, "cols", &cols))
    return info.Env().Undefined();
  const size_t c = static_cast<size_t>(cols);
  if (cols < 1 || c * index.length != out.length || src.length % c != 0) {
    range_error(info, std::string(fn) + ": out must hold index.length * cols elements and src whole rows of cols");
    return info.Env().Undefined();
  }
  const int32_t* idx = reinterpret_cast<const int32_t*>(index.data);
  for (size_t i = 0; i < index.length; ++i) {
    if (idx[i] < 0 || static_cast<size_t>(idx[i]) >= src.length / c) {
      range_error(info, std::string(fn) + ": index[" + std::to_string(i) + "] = " + std::to_string(idx[i]) + " is outside src's " + std::to_string(src.length / c) + " rows");
      return info.Env().Undefined();
    }
  }
  DeviceMemory* m = device_memory(info.Env());
  if (m == nullptr) return info.Env().Undefined();
  cudaStream_t s = m->backend.stream(0);
  Staging st(m, s);
  void* ds = st.stage(src, true);
  void* di = st.stage(index, true);
  void* dout = st.stage(out, false);
  if (ds == nullptr || di == nullptr || dout == nullptr) return full(info, fn);
  const cudaError_t launched = gather_rows_launch(static_cast<float*>(ds), static_cast<int32_t*>(di), static_cast<float*>(dout), index.length, c, s);
  st.back(out, dout);
  st.finish(info.Env(), fn, launched);
  return info.Env().Undefined();
}

Napi::Value RmsnormRows(const Napi::CallbackInfo& info) {
  const char* fn = "rmsnormRows";
  Host x, w, out, rstd;
  double rows = 0, cols = 0, eps = 0;
  const bool has_rstd = info.Length() > 3 && !info[3].IsNull();
  if (!host_arg(info, 0, fn, "x", napi_float32_array, &x) || !host_arg(info, 1, fn, "weight", napi_float32_array, &w) ||
      !host_arg(info, 2, fn, "out", napi_float32_array, &out) || (has_rstd && !host_arg(info, 3, fn, "rstd", napi_float64_array, &rstd)) ||
      !number_arg(info, 4, fn, "rows", &rows) || !number_arg(info, 5, fn, "cols", &cols) || !number_arg(info, 6, fn, "eps", &eps))
    return info.Env().Undefined();
  const size_t r = static_cast<size_t>(rows), c = static_cast<size_t>(cols);
  if (x.length != r * c || out.length != r * c || w.length != c || (has_rstd && rstd.length != r)) {
    range_error(info, std::string(fn) + ": x and out need rows * cols elements, weight cols, rstd rows");
    return info.Env().Undefined();
  }
  DeviceMemory* m = device_memory(info.Env());
  if (m == nullptr) return info.Env().Undefined();
  cudaStream_t s = m->backend.stream(0);
  Staging st(m, s);
  void* dx = st.stage(x, true);
  void* dw = st.stage(w, true);
  void* dout = st.stage(out, false);
  void* dr = has_rstd ? st.stage(rstd, false) : nullptr;
  if (dx == nullptr || dw == nullptr || dout == nullptr || (has_rstd && dr == nullptr)) return full(info, fn);
  const cudaError_t launched =
      rmsnorm_rows_launch(static_cast<float*>(dx), static_cast<float*>(dw), static_cast<float*>(dout), static_cast<double*>(dr), r, c, eps, s);
  st.back(out, dout);
  if (has_rstd) st.back(rstd, dr);
  st.finish(info.Env(), fn, launched);
  return info.Env().Undefined();
}

Napi::Value Swiglu(const Napi::CallbackInfo& info) {
  const char* fn = "swiglu";
  Host gate, up, out;
  if (!host_arg(info, 0, fn, "gate", napi_float32_array, &gate) || !host_arg(info, 1, fn, "up", napi_float32_array, &up) ||
      !host_arg(info, 2, fn, "out", napi_float32_array, &out))
    return info.Env().Undefined();
  if (up.length != gate.length || out.length != gate.length) {
    range_error(info, std::string(fn) + ": gate, up and out must have the same length");
    return info.Env().Undefined();
  }
  DeviceMemory* m = device_memory(info.Env());
  if (m == nullptr) return info.Env().Undefined();
  cudaStream_t s = m->backend.stream(0);
  Staging st(m, s);
  void* dg = st.stage(gate, true);
  void* du = st.stage(up, true);
  void* dout = st.stage(out, false);
  if (dg == nullptr || du == nullptr || dout == nullptr) return full(info, fn);
  const cudaError_t launched = swiglu_launch(static_cast<float*>(dg), static_cast<float*>(du), static_cast<float*>(dout), gate.length, s);
  st.back(out, dout);
  st.finish(info.Env(), fn, launched);
  return info.Env().Undefined();
}

Napi::Value CombineRows(const Napi::CallbackInfo& info) {
  const char* fn = "combineRows";
  Host rows, index, weights, out;
  double row_cols = 0, tokens = 0, cols = 0;
  const bool weighted = info.Length() > 3 && !info[3].IsNull();
  if (!host_arg(info, 0, fn, "rows", napi_float32_array, &rows) || !number_arg(info, 1, fn, "rowCols", &row_cols) ||
      !host_arg(info, 2, fn, "index", napi_int32_array, &index) || (weighted && !host_arg(info, 3, fn, "weights", napi_float32_array, &weights)) ||
      !number_arg(info, 4, fn, "tokens", &tokens) || !number_arg(info, 5, fn, "cols", &cols) || !host_arg(info, 6, fn, "out", napi_float32_array, &out))
    return info.Env().Undefined();
  const size_t n = index.length, rc = static_cast<size_t>(row_cols), t = static_cast<size_t>(tokens), c = static_cast<size_t>(cols);
  if (rows.length != n * rc || c > rc || out.length != t * c || (weighted && weights.length != n)) {
    range_error(info, std::string(fn) + ": rows need index.length * rowCols elements, cols <= rowCols, out tokens * cols, weights index.length");
    return info.Env().Undefined();
  }
  // Token t's rows in increasing j, as a CSR list (a stable counting sort of index).
  const int32_t* idx = reinterpret_cast<const int32_t*>(index.data);
  std::vector<int32_t> offsets(t + 1, 0), order(n);
  for (size_t j = 0; j < n; ++j) {
    if (idx[j] < 0 || static_cast<size_t>(idx[j]) >= t) {
      range_error(info, std::string(fn) + ": index[" + std::to_string(j) + "] = " + std::to_string(idx[j]) + " is not a token of " + std::to_string(t));
      return info.Env().Undefined();
    }
    ++offsets[static_cast<size_t>(idx[j]) + 1];
  }
  for (size_t i = 0; i < t; ++i) offsets[i + 1] += offsets[i];
  std::vector<int32_t> next(offsets.begin(), offsets.end() - 1);
  for (size_t j = 0; j < n; ++j) order[static_cast<size_t>(next[static_cast<size_t>(idx[j])]++)] = static_cast<int32_t>(j);
  DeviceMemory* m = device_memory(info.Env());
  if (m == nullptr) return info.Env().Undefined();
  cudaStream_t s = m->backend.stream(0);
  Staging st(m, s);
  const Host off{reinterpret_cast<char*>(offsets.data()), offsets.size() * sizeof(int32_t), offsets.size()};
  const Host ord{reinterpret_cast<char*>(order.data()), order.size() * sizeof(int32_t), order.size()};
  void* dr = st.stage(rows, true);
  void* doff = st.stage(off, true);
  void* dord = st.stage(ord, true);
  void* dw = weighted ? st.stage(weights, true) : nullptr;
  void* dout = st.stage(out, false);
  if (dr == nullptr || doff == nullptr || dord == nullptr || (weighted && dw == nullptr) || dout == nullptr) return full(info, fn);
  const cudaError_t launched = combine_rows_launch(static_cast<float*>(dr), rc, static_cast<int32_t*>(doff), static_cast<int32_t*>(dord),
                                                   static_cast<float*>(dw), t, c, static_cast<float*>(dout), s);
  st.back(out, dout);
  st.finish(info.Env(), fn, launched);
  return info.Env().Undefined();
}

Napi::Value Adamw(const Napi::CallbackInfo& info) {
  const char* fn = "adamw";
  Host w, g, mm, v;
  AdamwScalars sc{};
  double* fields[] = {&sc.beta1, &sc.beta2, &sc.c1, &sc.c2, &sc.eps, &sc.lr, &sc.clip, &sc.decay};
  const char* names[] = {"beta1", "beta2", "c1", "c2", "eps", "lr", "clip", "decay"};
  if (!host_arg(info, 0, fn, "w", napi_float32_array, &w) || !host_arg(info, 1, fn, "g", napi_float32_array, &g) ||
      !host_arg(info, 2, fn, "m", napi_float32_array, &mm) || !host_arg(info, 3, fn, "v", napi_float32_array, &v))
    return info.Env().Undefined();
  for (size_t i = 0; i < 8; ++i) {
    if (!number_arg(info, 4 + i, fn, names[i], fields[i])) return info.Env().Undefined();
  }
  if (g.length != w.length || mm.length != w.length || v.length != w.length) {
    range_error(info, std::string(fn) + ": w, g, m and v must have the same length");
    return info.Env().Undefined();
  }
  DeviceMemory* m = device_memory(info.Env());
  if (m == nullptr) return info.Env().Undefined();
  cudaStream_t s = m->backend.stream(0);
  Staging st(m, s);
  void* dw = st.stage(w, true);
  void* dg = st.stage(g, true);
  void* dm = st.stage(mm, true);
  void* dv = st.stage(v, true);
  if (dw == nullptr || dg == nullptr || dm == nullptr || dv == nullptr) return full(info, fn);
  const cudaError_t launched =
      adamw_f32_launch(sc, w.length, static_cast<float*>(dw), static_cast<float*>(dg), static_cast<float*>(dm), static_cast<float*>(dv), s);
  st.back(w, dw);
  st.back(mm, dm);
  st.back(v, dv);
  st.finish(info.Env(), fn, launched);
  return info.Env().Undefined();
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
