// The Node-API binding of the bf16 GEMM (kernels/bf16_matmul.h). Typed wrapper: src/native/Cpu.ts.
//
//   matmulBf16(a, b, out, batch, m, n, k, transA, transB, strideA, strideB, accumulate)
//       matmul's arguments and checks (tensor_args.h); a and b hold bf16 values in Float32Array.
//       Multiplies on AVX512-BF16 (VDPBF16PS) with fp32 accumulation; a RangeError on a CPU
//       without AVX512-BF16 (callers check bf16Hardware() and use matmul instead).
//   matmulBf16Async(same)  -> Promise, run on libuv's thread pool
#include "bf16_matmul_binding.h"

#include <string>

#include "kernels/bf16.h"
#include "kernels/bf16_matmul.h"
#include "tensor_args.h"

namespace pleat {
namespace {

Napi::Value MatmulBf16Impl(const Napi::CallbackInfo& info, const char* fn, bool async) {
  GemmArgs g{};
  Call call;
  if (!parse_matmul(info, fn, &g, &call)) return info.Env().Undefined();
  if (!bf16_hardware()) {
    throw_range_error(info.Env(), std::string(fn) + ": this CPU does not support AVX512-BF16 (use matmul)");
    return info.Env().Undefined();
  }
  call.run = [g]() -> std::string { return matmul_bf16(g) ? "" : "out of memory for packing buffers"; };
  return async ? run_async(info.Env(), fn, call) : run_sync(info.Env(), fn, call);
}

Napi::Value MatmulBf16(const Napi::CallbackInfo& info) { return MatmulBf16Impl(info, "matmulBf16", false); }
Napi::Value MatmulBf16Async(const Napi::CallbackInfo& info) { return MatmulBf16Impl(info, "matmulBf16Async", true); }

}  // namespace

void RegisterBf16MatmulExports(Napi::Env env, Napi::Object exports) {
  exports.Set("matmulBf16", Napi::Function::New(env, MatmulBf16, "matmulBf16"));
  exports.Set("matmulBf16Async", Napi::Function::New(env, MatmulBf16Async, "matmulBf16Async"));
}

}  // namespace pleat
