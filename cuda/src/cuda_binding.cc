// pleat_cuda.node: the Node-API binding of the CUDA kernels. Typed wrapper: src/native/Cuda.ts.
//
//   deviceInfo()   -> { count, error, runtimeVersion, driverVersion, gpus: [{ index, name,
//                     memoryBytes, computeCapability }] }; never throws, so a
//                     machine without a GPU or driver can load the addon and ask
//   axpy(a, x, y)  y += a * x on device 0, x and y Float32Array; throws "no device: ..." when
//                  there is no usable GPU, "CUDA error: <call> failed: ..." on a failed call
//   deviceAllocate / deviceFree / deviceRecordStream / deviceCopyIn / deviceCopyOut /
//   deviceAllocatorStats   device memory through the caching allocator (device_memory_binding.cc)
//   gatherRows, rmsnormRows, swiglu, adamw   the first CUDA kernels on host arrays, with the CPU
//                  kernels' signatures (cuda_ops_binding.cc, kernels/ops_cuda.h)
//
// Linked with the static cudart, which dlopens the driver (libcuda.so.1) on first use: loading
// always succeeds, and a missing driver shows up as cudaErrorInsufficientDriver.
#include <cuda_runtime.h>
#include <napi.h>

#include <string>

#include "cuda_check.h"
#include "cublas_binding.h"
#include "cublas_products_binding.h"
#include "nccl_binding.h"
#include "device_timing_binding.h"
#include "moe_layer_timing.h"
#include "attention_cuda_binding.h"
#include "cuda_elementwise_binding.h"
#include "cuda_ops_binding.h"
#include "device_array_binding.h"
#include "device_memory_binding.h"
#include "kernels/axpy_cuda.h"
#include "napi_args.h"

namespace pleat {
namespace {

struct DeviceQuery {
  int count = 0;
  bool has_error = false;
  std::string error;  // "cudaErrorNoDevice: no CUDA-capable device is detected"
  int runtime_version = 0;
  int driver_version = 0;  // 0 when no driver is installed
};

DeviceQuery query_devices() {
  DeviceQuery q;
  // Both version calls succeed without a driver; their status carries nothing useful here.
  (void)cudaRuntimeGetVersion(&q.runtime_version);
  (void)cudaDriverGetVersion(&q.driver_version);
  const cudaError_t err = cudaGetDeviceCount(&q.count);
  if (err != cudaSuccess) {
    q.count = 0;
    q.has_error = true;
    q.error = std::string(cudaGetErrorName(err)) + ": " + cudaGetErrorString(err);
    (void)cudaGetLastError();  // clear it so later calls do not report it again
  }
  return q;
}

// Device memory freed on every path out of device_axpy.
struct DeviceBuffer {
  void* ptr = nullptr;
  DeviceBuffer() = default;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() {
    if (ptr != nullptr) (void)cudaFree(ptr);
  }
  float* f32() const { return static_cast<float*>(ptr); }
};

CudaStatus device_axpy(float a, const float* x, float* y, size_t n) {
  const size_t bytes = n * sizeof(float);
  DeviceBuffer dx, dy;
  PLEAT_CUDA_CHECK(cudaSetDevice(selected_device()));  // this process's GPU (deviceSelect), current for later launches too
  PLEAT_CUDA_CHECK(cudaMalloc(&dx.ptr, bytes));
  PLEAT_CUDA_CHECK(cudaMalloc(&dy.ptr, bytes));
  // NOTE: two host-to-device copies from pageable JS memory (synchronous).
  PLEAT_CUDA_CHECK(cudaMemcpy(dx.ptr, x, bytes, cudaMemcpyHostToDevice));
  PLEAT_CUDA_CHECK(cudaMemcpy(dy.ptr, y, bytes, cudaMemcpyHostToDevice));
  PLEAT_CUDA_CHECK(axpy_f32_launch(a, dx.f32(), dy.f32(), n, nullptr));
  // NOTE: host-device sync; the copy back waits for the kernel and reports its errors.
  PLEAT_CUDA_CHECK(cudaMemcpy(y, dy.ptr, bytes, cudaMemcpyDeviceToHost));
  return CudaStatus{};
}

Napi::Value DeviceInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const DeviceQuery q = query_devices();
  Napi::Object out = Napi::Object::New(env);
  out.Set("count", q.count);
  out.Set("error", q.has_error ? Napi::Value(Napi::String::New(env, q.error)) : env.Null());
  out.Set("runtimeVersion", q.runtime_version);
  out.Set("driverVersion", q.driver_version);
  // Each device: its name, global memory and compute capability.
  Napi::Array gpus = Napi::Array::New(env);
  for (int i = 0; i < q.count; ++i) {
    cudaDeviceProp p{};
    if (cudaGetDeviceProperties(&p, i) != cudaSuccess) {
      (void)cudaGetLastError();
      continue;
    }
    Napi::Object g = Napi::Object::New(env);
    g.Set("index", i);
    g.Set("name", Napi::String::New(env, p.name));
    g.Set("memoryBytes", Napi::Number::New(env, static_cast<double>(p.totalGlobalMem)));
    g.Set("computeCapability", Napi::String::New(env, std::to_string(p.major) + "." + std::to_string(p.minor)));
    gpus.Set(gpus.Length(), g);
  }
  out.Set("gpus", gpus);
  return out;
}

Napi::Value Axpy(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double a = 0.0;
  Napi::TypedArray x, y;
  if (!expect_arity(info, "axpy", 3) || !expect_number(info, "axpy", 0, "a", &a) ||
      !expect_typed_array(info, "axpy", 1, "x", &x) ||
      !expect_typed_array(info, "axpy", 2, "y", &y)) {
    return env.Undefined();
  }
  if (x.TypedArrayType() != napi_float32_array || y.TypedArrayType() != napi_float32_array) {
    throw_type_error(env, std::string("axpy: x and y must be Float32Array, got ") +
                              typed_array_name(x.TypedArrayType()) + " and " +
                              typed_array_name(y.TypedArrayType()));
    return env.Undefined();
  }
  const size_t n = x.ElementLength();
  uint8_t* xb = nullptr;
  uint8_t* yb = nullptr;
  if (!expect_axpy_pair(env, x, y, &xb, &yb)) return env.Undefined();
  const DeviceQuery q = query_devices();
  if (q.count <= 0) {
    Napi::Error::New(env, "no device: " + (q.has_error ? q.error : std::string("no CUDA device")))
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (n == 0) return env.Undefined();
  const CudaStatus s = device_axpy(static_cast<float>(a), reinterpret_cast<const float*>(xb),
                                   reinterpret_cast<float*>(yb), n);
  if (!s.ok) {
    Napi::Error::New(env, "CUDA error: " + s.message).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return env.Undefined();
}

Napi::Object RegisterExports(Napi::Env env, Napi::Object exports) {
  exports.Set("deviceInfo", Napi::Function::New(env, DeviceInfo, "deviceInfo"));
  exports.Set("axpy", Napi::Function::New(env, Axpy, "axpy"));
  RegisterDeviceMemoryExports(env, exports);
  RegisterDeviceArrayExports(env, exports);
  RegisterCudaOpsExports(env, exports);
  RegisterCudaElementwiseExports(env, exports);
  RegisterAttentionCudaExports(env, exports);
  RegisterCublasExports(env, exports);
  RegisterCublasProductExports(env, exports);
  RegisterNcclExports(env, exports);
  RegisterDeviceTimingExports(env, exports);
  RegisterMoeLayerTimingExports(env, exports);
  return exports;
}

}  // namespace
}  // namespace pleat

// NODE_API_MODULE pastes the name into an identifier, so it must be unqualified.
static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  return pleat::RegisterExports(env, exports);
}

NODE_API_MODULE(pleat_cuda, Init)
