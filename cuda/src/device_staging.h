// Host arrays staged in device memory for one kernel call (the caching allocator, stream 0):
// what every binding that runs device work on host arrays shares (cuda_ops_binding.cc,
// cublas_binding.cc).
#pragma once

#include <cuda_runtime.h>
#include <napi.h>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "device_memory_binding.h"
#include "napi_args.h"
#include "row_lists.h"

namespace pleat {

// Device copies of host arrays for one call: copied in on creation, out where asked, freed at
// the end of the call.
class Staging {
 public:
  Staging(DeviceMemory* m, cudaStream_t s) : m_(m), s_(s) {}
  ~Staging() {
    for (void* p : blocks_) m_->allocator.free(p);
  }
  // Device memory for `h`, its bytes copied in when `in`; nullptr when the device is full. A
  // device array (`resident`) is used where it is: no copy, not freed here.
  void* stage(const ArrayArg& h, bool in) {
    if (h.resident) return h.data;
    void* p = m_->allocator.allocate(h.bytes(), 0);
    if (p == nullptr) return nullptr;
    blocks_.push_back(p);
    if (in && h.bytes() > 0 && cudaMemcpyAsync(p, h.data, h.bytes(), cudaMemcpyHostToDevice, s_) != cudaSuccess) failed_ = true;
    return p;
  }
  void back(const ArrayArg& h, const void* p) {
    if (h.resident || h.bytes() == 0) return;
    copied_back_ = true;
    if (cudaMemcpyAsync(h.data, p, h.bytes(), cudaMemcpyDeviceToHost, s_) != cudaSuccess) failed_ = true;
  }
  // Waits for the call's work only when it copies results back to host arrays (the caller reads
  // them next). Otherwise it only checks that the work was queued: the stream orders it before
  // whatever comes next, staged blocks are freed to the allocator's stream-0 pool (reused only by
  // work queued after this call's), and a host array copied in was read before cudaMemcpyAsync
  // returned (pageable memory). False (with a pending JS Error naming `fn`) on any failure.
  bool finish(Napi::Env env, const char* fn, cudaError_t launched) {
    const cudaError_t synced = copied_back_ ? cudaStreamSynchronize(s_) : cudaGetLastError();
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
  bool copied_back_ = false;
  bool failed_ = false;
};

// The CSR lists of a host Int32Array `index` over `targets` rows (row_lists.h) and their staging
// arguments; false with a pending RangeError naming fn, the entry and `what` a target is.
struct StagedRowLists {
  RowLists lists;
  ArrayArg offsets, order;
};
inline bool staged_row_lists(Napi::Env env, const char* fn, const ArrayArg& index, size_t targets, const char* what, StagedRowLists* out) {
  const int32_t* idx = index.i32();
  const size_t bad = build_row_lists(idx, index.length, targets, &out->lists);
  if (bad != index.length) {
    Napi::RangeError::New(env, std::string(fn) + ": index[" + std::to_string(bad) + "] = " + std::to_string(idx[bad]) + " is not " + what + " of " + std::to_string(targets))
        .ThrowAsJavaScriptException();
    return false;
  }
  out->offsets = ArrayArg{napi_int32_array, out->lists.offsets.size(), reinterpret_cast<uint8_t*>(out->lists.offsets.data()), Napi::Value()};
  out->order = ArrayArg{napi_int32_array, out->lists.order.size(), reinterpret_cast<uint8_t*>(out->lists.order.data()), Napi::Value()};
  return true;
}

// How a host array travels in one call: copied to the device, copied back, both, or neither
// (scratch: device memory of the array's size for the call, `data` unused).
enum class Way { in, out, in_out, scratch };

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
  uint16_t* u16(size_t i) const { return static_cast<uint16_t*>(p_[i]); }

 private:
  const std::vector<void*>& p_;
};

// The device part every kernel binding shares, after its argument checks: the device (a pending
// "no device: ..." Error without one), `arrays` staged in their order on stream 0 (copied in
// unless Way::out), `launch(pointers, stream)`, the Way::out / Way::in_out arrays copied back in
// their order, and a wait for it all. "out of memory" when a staging allocation fails, before
// any launch. Returns undefined; every failure leaves a pending JS Error.
template <typename Launch>
inline Napi::Value run_on_device(const Napi::CallbackInfo& info, const char* fn, std::initializer_list<Transfer> arrays, const Launch& launch) {
  Napi::Env env = info.Env();
  DeviceMemory* m = device_memory(env);
  if (m == nullptr) return env.Undefined();
  // Launches go to the current device: make it the process's (stream 0 was made on it).
  if (const cudaError_t e = cudaSetDevice(m->backend.device()); e != cudaSuccess) {
    Napi::Error::New(env, std::string(fn) + ": CUDA error: cudaSetDevice: " + cudaGetErrorString(e)).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  cudaStream_t s = m->backend.stream(0);
  Staging st(m, s);
  std::vector<void*> device;
  bool full = false;
  for (const Transfer& a : arrays) {
    void* p = a.host != nullptr ? st.stage(*a.host, a.way != Way::out && a.way != Way::scratch) : nullptr;
    full = full || (a.host != nullptr && !a.host->resident && p == nullptr);
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
    if (a.host != nullptr && (a.way == Way::out || a.way == Way::in_out)) st.back(*a.host, device[i]);
    ++i;
  }
  st.finish(env, fn, launched);
  return env.Undefined();
}

}  // namespace pleat
