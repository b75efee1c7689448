// pleat_cpu.node: the Node-API binding of the CPU kernels. Typed wrappers: src/native/Cpu.ts.
//
//   axpy(a, x, y)            y += a * x in place; x, y both Float32Array or both Float64Array
//   copy(dst, src)           memmove between typed arrays of equal byte length
//   fmaPeak(seconds, threads) -> { gflops, isa }
//   cpuFeatures()            -> { avx2, fma, avx512f, cores }
//   setIsa(name)             pin kernels to "scalar" | "avx2" | "avx512", or "auto"; -> active isa
//   activeIsa()              -> "scalar" | "avx2" | "avx512"
//   setThreads(n) / threads() kernel thread pool size (kernels/thread_pool.h)
//   poolProbe(tasks, micros) -> { threads, runs, peak }: who runs a job of sleeping tasks
//                            (kernels/pool_probe.h; tests of the pool's spreading)
//   matmul(a, b, out, batch, m, n, k, transA, transB, strideA, strideB, accumulate), matmulAsync
//   gatherRows(src, index, out, cols), scatterAddRows(src, index, out, cols)
//   softmaxRows(x, out, rows, cols), rmsnormRows(x, weight, out, rstd, rows, cols, eps)
//   swiglu(gate, up, out)
//   attention(q, k, v, out, lse, b, sq, sk, hq, hkv, d, dv, scale, causal, queryPositions,
//             keyPositions, queryFirstKeys),
//   attentionAsync, attentionBackward(q, k, v, out, gradOut, lse, gradQ, gradK, gradV, dims...)
//   openblasStatus(), openblasMatmul(same as matmul), openblasSetThreads(n)   (bench only)
//   adamw(w, g, m, v, beta1, beta2, c1, c2, eps, lr, clip, decay), sumSquares(x)   (adamw_binding.cc)
//   roundBf16(src, dst, path), bf16Hardware()   (bf16_binding.cc)
//   matmulBf16(same as matmul), matmulBf16Async   (bf16_matmul_binding.cc)
//   groupedRows(a, b, out, rows, k, n, transB), groupedWeights(a, c, out, rows, m, n, accumulate)
//                            the grouped expert GEMM   (grouped_matmul_binding.cc)
//   SimulatedDeviceAllocator   the device caching allocator over a simulated device, for tests
//                              (device_allocator_binding.cc)
//   probeGpuLibrary(path, kind, symbols) -> { error, version, missing }   (library_probe_binding.cc)
//
// Tensor kernels take Float32Array data (rstd / lse may be Float64Array), Int32Array indices and
// positions. Wrong types and overlapping outputs are TypeErrors; lengths inconsistent with the
// dims, bad dims and out-of-range indices are RangeErrors, thrown before anything is written.
// The *Async variants run the same kernel on libuv's thread pool and return a Promise; the
// typed arrays stay referenced until it settles (do not transfer or write them meanwhile).
//
// Typed arrays are used zero-copy: the kernels read and write the JS memory itself (byteOffset
// applied, SharedArrayBuffer included). The binding only checks arguments and dispatches;
// the arithmetic is in kernels/, each beside its scalar reference. The tensor kernels' wrappers
// are in tensor_binding.cc; this file registers both.
#include <malloc.h>
#include <cstdlib>
#include <napi.h>

#include <cmath>
#include <exception>
#include <utility>
#include <string>

#include "adamw_binding.h"
#include "glu_binding.h"
#include "normals_binding.h"
#include "bf16_binding.h"
#include "bf16_matmul_binding.h"
#include "grouped_matmul_binding.h"
#include "dispatch_binding.h"
#include "elementwise_binding.h"
#include "cross_entropy_binding.h"
#include "device_allocator_binding.h"
#include "library_probe_binding.h"
#include "signal_net_binding.h"
#include "kernels/axpy.h"
#include "kernels/copy.h"
#include "kernels/cpu_features.h"
#include "kernels/pool_probe.h"
#include "kernels/fma_peak.h"
#include "napi_args.h"
#include "tensor_binding.h"

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
  uint8_t* xb = nullptr;
  uint8_t* yb = nullptr;
  if (!expect_axpy_pair(env, x, y, &xb, &yb)) return env.Undefined();
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

Napi::Value PoolProbe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double tasks = 0.0, micros = 0.0;
  if (!expect_arity(info, "poolProbe", 2) || !expect_number(info, "poolProbe", 0, "tasks", &tasks) ||
      !expect_number(info, "poolProbe", 1, "micros", &micros)) {
    return env.Undefined();
  }
  // The probe blocks the calling thread for about tasks * micros / threads: both are capped.
  if (!(tasks >= 1.0 && tasks <= 4096.0 && std::floor(tasks) == tasks)) {
    throw_range_error(env, "poolProbe: tasks must be an integer in [1, 4096], got " + std::to_string(tasks));
    return env.Undefined();
  }
  if (!(micros >= 0.0 && micros <= 100000.0 && std::floor(micros) == micros)) {
    throw_range_error(env, "poolProbe: micros must be an integer in [0, 100000], got " + std::to_string(micros));
    return env.Undefined();
  }
  const PoolProbeResult r = pool_probe(static_cast<unsigned>(tasks), static_cast<unsigned>(micros));
  Napi::Object out = Napi::Object::New(env);
  out.Set("threads", r.threads);
  out.Set("runs", r.runs);
  out.Set("peak", r.peak);
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
  std::string name;
  if (!expect_arity(info, "setIsa", 1) || !expect_string(info, "setIsa", 0, "isa", &name)) return env.Undefined();
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

// The bytes free in the C heap (glibc: mallinfo2's fordblks, every arena, the top chunks
// included): freed tensors the tuned allocator kept (TuneAllocator below), which a new tensor
// reuses without asking the kernel for memory. 0 where glibc is older than 2.33 or absent.
Napi::Value HeapFreeBytes(const Napi::CallbackInfo& info) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
  return Napi::Number::New(info.Env(), static_cast<double>(mallinfo2().fordblks));
#else
  return Napi::Number::New(info.Env(), 0);
#endif
}

Napi::Object RegisterExports(Napi::Env env, Napi::Object exports) {
  exports.Set("heapFreeBytes", Napi::Function::New(env, HeapFreeBytes, "heapFreeBytes"));
  exports.Set("axpy", Napi::Function::New(env, Axpy, "axpy"));
  exports.Set("copy", Napi::Function::New(env, Copy, "copy"));
  exports.Set("fmaPeak", Napi::Function::New(env, FmaPeak, "fmaPeak"));
  exports.Set("cpuFeatures", Napi::Function::New(env, CpuFeaturesJs, "cpuFeatures"));
  exports.Set("poolProbe", Napi::Function::New(env, PoolProbe, "poolProbe"));
  exports.Set("setIsa", Napi::Function::New(env, SetIsa, "setIsa"));
  exports.Set("activeIsa", Napi::Function::New(env, ActiveIsa, "activeIsa"));
  RegisterTensorExports(env, exports);
  RegisterAdamwExports(env, exports);
  RegisterGluExports(env, exports);
  RegisterNormalsExports(env, exports);
  RegisterBf16Exports(env, exports);
  RegisterBf16MatmulExports(env, exports);
  RegisterGroupedMatmulExports(env, exports);
  RegisterDispatchExports(env, exports);
  RegisterElementwiseExports(env, exports);
  RegisterCrossEntropyExports(env, exports);
  RegisterDeviceAllocatorExports(env, exports);
  RegisterLibraryProbeExports(env, exports);
  RegisterSignalNetExports(env, exports);
  return exports;
}

}  // namespace
}  // namespace pleat

// Large tensors are fresh ArrayBuffers, which Node allocates with calloc. By default glibc
// serves big blocks with mmap and returns them to the kernel on free, so every new activation
// pays page faults on first touch: measured, a 128 MiB gather took 50 ms in fresh memory and
// 6.5 ms in reused memory. Turning mmap off and never trimming the heap keeps freed blocks
// resident for reuse (a caching allocator, as training frameworks use: the process keeps its
// peak). A trim threshold of 1 GiB was not enough: a step of the realistic MoE shape frees more
// than that at once, and re-faulting it cost more than the step's GEMMs on a VM.
// PLEAT_MALLOC_TUNE=0 opts out.
static void TuneAllocator() {
#if defined(__GLIBC__)
  const char* opt = std::getenv("PLEAT_MALLOC_TUNE");
  if (opt != nullptr && opt[0] == '0') return;
  // glibc caps M_MMAP_THRESHOLD at 32 MiB, so for larger tensors mmap itself must be off.
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, -1);  // mallopt(3): -1 disables trimming
#endif
}

// NODE_API_MODULE pastes the name into an identifier, so it must be unqualified.
static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  TuneAllocator();
  return pleat::RegisterExports(env, exports);
}

NODE_API_MODULE(pleat_cpu, Init)
