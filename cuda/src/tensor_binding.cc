// The tensor-kernel half of pleat_cpu.node (registered by binding.cc): matmul, row gather /
// scatter-add, softmax, RMSNorm, SwiGLU, attention and their async variants, the thread pool
// size, and OpenBLAS for bench comparisons. Argument parsing is in tensor_args.h; the
// arithmetic in kernels/.
#include "tensor_binding.h"

#include <cmath>
#include <exception>
#include <string>
#include <utility>

#include "gated_args.h"
#include "kernels/attention.h"
#include "kernels/cpu_features.h"
#include "kernels/matmul.h"
#include "kernels/openblas.h"
#include "kernels/packed_b_cache.h"
#include "kernels/rows.h"
#include "kernels/thread_pool.h"
#include "napi_args.h"
#include "tensor_args.h"

namespace pleat {
namespace {

// ---- tensor kernels (argument parsing: tensor_args.h) ---------------------------------------

// `stable`: a 13th argument, the generation under which B stays unchanged (matmulStable).
Napi::Value MatmulImpl(const Napi::CallbackInfo& info, const char* fn, bool async, bool stable = false) {
  GemmArgs g{};
  Call call;
  size_t generation = 0;
  if (!parse_matmul(info, fn, &g, &call, stable ? 13 : 12) || (stable && !expect_size(info, fn, 12, "generation", &generation))) {
    return info.Env().Undefined();
  }
  g.generation = generation;
  const Isa isa = active_isa();
  call.run = [g, isa]() -> std::string { return matmul(isa, g) ? "" : "out of memory for packing buffers"; };
  return async ? run_async(info.Env(), fn, call) : run_sync(info.Env(), fn, call);
}

Napi::Value Matmul(const Napi::CallbackInfo& info) { return MatmulImpl(info, "matmul", false); }

// matmulStable(a, b, out, ...matmul's dims, generation): matmul with B unchanged under
// `generation` (from nextGeneration()), its panels from kernels/packed_b_cache.h.
Napi::Value MatmulStable(const Napi::CallbackInfo& info) { return MatmulImpl(info, "matmulStable", false, true); }

Napi::Value NextGeneration(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(gemm::next_generation())); }

Napi::Value RetireGeneration(const Napi::CallbackInfo& info) {
  size_t generation = 0;
  if (!expect_arity(info, "retireGeneration", 1) || !expect_size(info, "retireGeneration", 0, "generation", &generation)) return info.Env().Undefined();
  gemm::retire_generation(generation);
  return info.Env().Undefined();
}

Napi::Value ClearPackedWeights(const Napi::CallbackInfo& info) {
  gemm::clear_packed_b();
  return info.Env().Undefined();
}

Napi::Value PackedWeightsStats(const Napi::CallbackInfo& info) {
  const gemm::PackedBStats s = gemm::packed_b_stats();
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("entries", static_cast<double>(s.entries));
  o.Set("bytes", static_cast<double>(s.bytes));
  o.Set("builds", static_cast<double>(s.builds));
  o.Set("hits", static_cast<double>(s.hits));
  return o;
}
Napi::Value MatmulAsync(const Napi::CallbackInfo& info) { return MatmulImpl(info, "matmulAsync", true); }

// gatherRows / scatterAddRows: src rows are gathered into out, or added into out's rows.
Napi::Value RowsImpl(const Napi::CallbackInfo& info, const char* fn, bool scatter) {
  Napi::Env env = info.Env();
  ArrayArg src, index, out;
  size_t cols = 0, n_out = 0;
  if (!expect_arity(info, fn, 4) || !expect_array(info, fn, 0, "src", {kF32}, &src) ||
      !expect_array(info, fn, 1, "index", {kI32}, &index) || !expect_array(info, fn, 2, "out", {kF32}, &out) ||
      !expect_size(info, fn, 3, "cols", &cols) ||
      !checked_mul(env, fn, "index.length * cols", index.length, cols, &n_out)) {
    return env.Undefined();
  }
  // The side indexed by position must hold exactly index.length rows; the indexed side any
  // whole number of rows.
  const ArrayArg& dense = scatter ? src : out;
  const ArrayArg& table = scatter ? out : src;
  const char* dense_name = scatter ? "src" : "out";
  const char* table_name = scatter ? "out" : "src";
  if (!expect_length(env, fn, dense_name, dense, n_out, "index.length * cols")) return env.Undefined();
  if (cols != 0 && table.length % cols != 0) {
    throw_range_error(env, std::string(fn) + ": " + table_name + " has " + std::to_string(table.length) +
                               " elements, not a whole number of rows of " + std::to_string(cols));
    return env.Undefined();
  }
  if (!expect_disjoint(env, fn, "out", out, "src", src, false)) return env.Undefined();
  if (cols == 0) return env.Undefined();  // nothing moves; the indices select empty rows
  const size_t rows = table.length / cols;
  const ptrdiff_t bad = first_bad_index(index.i32(), index.length, rows);
  if (bad >= 0) {
    throw_range_error(env, std::string(fn) + ": index[" + std::to_string(bad) + "] = " +
                               std::to_string(index.i32()[bad]) + " is out of range [0, " + std::to_string(rows) +
                               ") (rows of " + table_name + ")");
    return env.Undefined();
  }
  const Isa isa = active_isa();
  if (scatter) {
    scatter_add_rows(isa, src.f32(), index.i32(), index.length, out.f32_mut(), rows, cols);
  } else {
    gather_rows(isa, src.f32(), index.i32(), index.length, out.f32_mut(), cols);
  }
  return env.Undefined();
}

Napi::Value GatherRows(const Napi::CallbackInfo& info) { return RowsImpl(info, "gatherRows", false); }
Napi::Value ScatterAddRows(const Napi::CallbackInfo& info) { return RowsImpl(info, "scatterAddRows", true); }

Napi::Value SoftmaxRows(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* fn = "softmaxRows";
  ArrayArg x, out;
  size_t rows = 0, cols = 0, n = 0;
  if (!expect_arity(info, fn, 4) || !expect_array(info, fn, 0, "x", {kF32}, &x) ||
      !expect_array(info, fn, 1, "out", {kF32}, &out) || !expect_size(info, fn, 2, "rows", &rows) ||
      !expect_size(info, fn, 3, "cols", &cols) || !checked_mul(env, fn, "rows * cols", rows, cols, &n) ||
      !expect_length(env, fn, "x", x, n, "rows * cols") || !expect_length(env, fn, "out", out, n, "rows * cols") ||
      !expect_disjoint(env, fn, "out", out, "x", x, true)) {
    return env.Undefined();
  }
  softmax_rows(active_isa(), x.f32(), out.f32_mut(), rows, cols);
  return env.Undefined();
}

Napi::Value RmsnormRows(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* fn = "rmsnormRows";
  ArrayArg x, weight, out, rstd;
  size_t rows = 0, cols = 0, n = 0;
  double eps = 0.0;
  if (!expect_arity(info, fn, 7) || !expect_array(info, fn, 0, "x", {kF32}, &x) ||
      !expect_array(info, fn, 1, "weight", {kF32}, &weight) || !expect_array(info, fn, 2, "out", {kF32}, &out) ||
      !expect_array(info, fn, 3, "rstd", {kF32, kF64}, &rstd) || !expect_size(info, fn, 4, "rows", &rows) ||
      !expect_size(info, fn, 5, "cols", &cols) || !expect_number(info, fn, 6, "eps", &eps) ||
      !checked_mul(env, fn, "rows * cols", rows, cols, &n) || !expect_length(env, fn, "x", x, n, "rows * cols") ||
      !expect_length(env, fn, "out", out, n, "rows * cols") || !expect_length(env, fn, "weight", weight, cols, "cols") ||
      !expect_length(env, fn, "rstd", rstd, rows, "rows") || !expect_disjoint(env, fn, "out", out, "x", x, true) ||
      !expect_disjoint(env, fn, "out", out, "weight", weight, false) || !expect_disjoint(env, fn, "rstd", rstd, "x", x, false) ||
      !expect_disjoint(env, fn, "rstd", rstd, "weight", weight, false) || !expect_disjoint(env, fn, "rstd", rstd, "out", out, false)) {
    return env.Undefined();
  }
  const bool wide = rstd.type == kF64;
  rmsnorm_rows(active_isa(), x.f32(), weight.f32(), out.f32_mut(), wide ? nullptr : rstd.f32_mut(),
               wide ? rstd.f64_mut() : nullptr, rows, cols, eps);
  return env.Undefined();
}

Napi::Value Swiglu(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* fn = "swiglu";
  ArrayArg gate, up, out;
  if (!expect_arity(info, fn, 3) || !expect_array(info, fn, 0, "gate", {kF32}, &gate) ||
      !expect_array(info, fn, 1, "up", {kF32}, &up) || !expect_array(info, fn, 2, "out", {kF32}, &out) ||
      !expect_length(env, fn, "up", up, gate.length, "gate.length") ||
      !expect_length(env, fn, "out", out, gate.length, "gate.length") ||
      !expect_disjoint(env, fn, "out", out, "gate", gate, true) || !expect_disjoint(env, fn, "out", out, "up", up, true)) {
    return env.Undefined();
  }
  swiglu(active_isa(), gate.f32(), up.f32(), out.f32_mut(), gate.length);
  return env.Undefined();
}

// rmsnormBackward(x, weight, grad, rstd, rows, cols, dx, dw): x, weight, grad, dx Float32Array,
// rstd and dw Float64Array; dx / dw null when not wanted.
Napi::Value RmsnormBackward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* fn = "rmsnormBackward";
  ArrayArg x, w, g, rstd, dx, dw;
  size_t rows = 0, cols = 0, n = 0;
  if (!expect_arity(info, fn, 8) || !expect_array(info, fn, 0, "x", {kF32}, &x) || !expect_array(info, fn, 1, "weight", {kF32}, &w) ||
      !expect_array(info, fn, 2, "grad", {kF32}, &g) || !expect_array(info, fn, 3, "rstd", {kF64}, &rstd) ||
      !expect_size(info, fn, 4, "rows", &rows) || !expect_size(info, fn, 5, "cols", &cols) ||
      !checked_mul(env, fn, "rows * cols", rows, cols, &n) || !expect_length(env, fn, "x", x, n, "rows * cols") ||
      !expect_length(env, fn, "grad", g, n, "rows * cols") || !expect_length(env, fn, "weight", w, cols, "cols") ||
      !expect_length(env, fn, "rstd", rstd, rows, "rows")) {
    return env.Undefined();
  }
  const bool want_dx = !info[6].IsNull(), want_dw = !info[7].IsNull();
  if ((want_dx && (!expect_array(info, fn, 6, "dx", {kF32}, &dx) || !expect_length(env, fn, "dx", dx, n, "rows * cols") ||
                   !expect_disjoint(env, fn, "dx", dx, "x", x, false) || !expect_disjoint(env, fn, "dx", dx, "grad", g, false))) ||
      (want_dw && (!expect_array(info, fn, 7, "dw", {kF64}, &dw) || !expect_length(env, fn, "dw", dw, cols, "cols")))) {
    return env.Undefined();
  }
  if (rows > 0 && cols > 0) {
    rmsnorm_backward(x.f32(), w.f32(), g.f32(), reinterpret_cast<const double*>(rstd.data), rows, cols, want_dx ? dx.f32_mut() : nullptr,
                     want_dw ? dw.f64_mut() : nullptr);
  } else if (want_dw && cols > 0) {
    for (size_t j = 0; j < cols; ++j) dw.f64_mut()[j] = 0;
  }
  return env.Undefined();
}

// swigluBackward(gate, up, grad, dGate, dUp): dGate / dUp a Float32Array, or null when not wanted.
Napi::Value SwigluBackward(const Napi::CallbackInfo& info) {
  GatedGradientArgs a;
  if (!expect_arity(info, "swigluBackward", 5) || !parse_gated_gradients(info, "swigluBackward", &a)) return info.Env().Undefined();
  swiglu_backward(active_isa(), a.gate.f32(), a.up.f32(), a.grad.f32(), a.dgate_out(), a.dup_out(), a.gate.length);
  return info.Env().Undefined();
}

Napi::Value AttentionImpl(const Napi::CallbackInfo& info, const char* fn, bool async) {
  Napi::Env env = info.Env();
  AttnArgs a{};
  Call call;
  ArrayArg q, k, v, out, lse;
  if (!expect_arity(info, fn, 17) || !parse_attn_dims(info, fn, 5, &a, &call.keep)) return env.Undefined();
  const bool has_lse = !(info[4].IsNull() || info[4].IsUndefined());
  if (!attn_tensor(info, fn, 0, "q", a.b * a.sq * a.hq * a.d, "b * sq * hq * d", {kF32}, &q, &call.keep) ||
      !attn_tensor(info, fn, 1, "k", a.b * a.sk * a.hkv * a.d, "b * sk * hkv * d", {kF32}, &k, &call.keep) ||
      !attn_tensor(info, fn, 2, "v", a.b * a.sk * a.hkv * a.dv, "b * sk * hkv * dv", {kF32}, &v, &call.keep) ||
      !attn_tensor(info, fn, 3, "out", a.b * a.sq * a.hq * a.dv, "b * sq * hq * dv", {kF32}, &out, &call.keep) ||
      (has_lse && !attn_tensor(info, fn, 4, "lse", a.b * a.hq * a.sq, "b * hq * sq", {kF32, kF64}, &lse, &call.keep))) {
    return env.Undefined();
  }
  for (const auto* in : {&q, &k, &v}) {
    const char* name = in == &q ? "q" : in == &k ? "k" : "v";
    if (!expect_disjoint(env, fn, "out", out, name, *in, false) || !expect_disjoint(env, fn, "lse", lse, name, *in, false)) {
      return env.Undefined();
    }
  }
  if (!expect_disjoint(env, fn, "lse", lse, "out", out, false)) return env.Undefined();
  a.q = q.f32();
  a.k = k.f32();
  a.v = v.f32();
  float* o = out.f32_mut();
  float* l32 = has_lse && lse.type == kF32 ? lse.f32_mut() : nullptr;
  double* l64 = has_lse && lse.type == kF64 ? lse.f64_mut() : nullptr;
  const Isa isa = active_isa();
  call.run = [a, isa, o, l32, l64]() -> std::string {
    return attention_forward(isa, a, o, l32, l64) ? "" : "out of memory for scratch buffers";
  };
  return async ? run_async(env, fn, call) : run_sync(env, fn, call);
}

Napi::Value Attention(const Napi::CallbackInfo& info) { return AttentionImpl(info, "attention", false); }
Napi::Value AttentionAsync(const Napi::CallbackInfo& info) { return AttentionImpl(info, "attentionAsync", true); }

Napi::Value AttentionBackward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* fn = "attentionBackward";
  AttnArgs a{};
  Call call;
  ArrayArg q, k, v, out, dout, lse, dq, dk, dv;
  if (!expect_arity(info, fn, 21) || !parse_attn_dims(info, fn, 9, &a, &call.keep)) return env.Undefined();
  const size_t nq = a.b * a.sq * a.hq * a.d, nk = a.b * a.sk * a.hkv * a.d;
  const size_t nv = a.b * a.sk * a.hkv * a.dv, no = a.b * a.sq * a.hq * a.dv;
  if (!attn_tensor(info, fn, 0, "q", nq, "b * sq * hq * d", {kF32}, &q, &call.keep) ||
      !attn_tensor(info, fn, 1, "k", nk, "b * sk * hkv * d", {kF32}, &k, &call.keep) ||
      !attn_tensor(info, fn, 2, "v", nv, "b * sk * hkv * dv", {kF32}, &v, &call.keep) ||
      !attn_tensor(info, fn, 3, "out", no, "b * sq * hq * dv", {kF32}, &out, &call.keep) ||
      !attn_tensor(info, fn, 4, "gradOut", no, "b * sq * hq * dv", {kF32}, &dout, &call.keep) ||
      !attn_tensor(info, fn, 5, "lse", a.b * a.hq * a.sq, "b * hq * sq", {kF32, kF64}, &lse, &call.keep) ||
      !attn_tensor(info, fn, 6, "gradQ", nq, "b * sq * hq * d", {kF32}, &dq, &call.keep) ||
      !attn_tensor(info, fn, 7, "gradK", nk, "b * sk * hkv * d", {kF32}, &dk, &call.keep) ||
      !attn_tensor(info, fn, 8, "gradV", nv, "b * sk * hkv * dv", {kF32}, &dv, &call.keep)) {
    return env.Undefined();
  }
  const std::pair<const char*, const ArrayArg*> ins[] = {{"q", &q}, {"k", &k}, {"v", &v}, {"out", &out}, {"gradOut", &dout}, {"lse", &lse}};
  const std::pair<const char*, const ArrayArg*> outs[] = {{"gradQ", &dq}, {"gradK", &dk}, {"gradV", &dv}};
  for (const auto& o : outs) {
    for (const auto& i : ins) {
      if (!expect_disjoint(env, fn, o.first, *o.second, i.first, *i.second, false)) return env.Undefined();
    }
  }
  if (!expect_disjoint(env, fn, "gradQ", dq, "gradK", dk, false) || !expect_disjoint(env, fn, "gradQ", dq, "gradV", dv, false) ||
      !expect_disjoint(env, fn, "gradK", dk, "gradV", dv, false)) {
    return env.Undefined();
  }
  a.q = q.f32();
  a.k = k.f32();
  a.v = v.f32();
  const std::string error = guarded([&]() -> std::string {
    const bool ok = attention_backward(active_isa(), a, out.f32(), dout.f32(), lse.type == kF32 ? lse.f32() : nullptr,
                                       lse.type == kF64 ? reinterpret_cast<const double*>(lse.data) : nullptr,
                                       dq.f32_mut(), dk.f32_mut(), dv.f32_mut());
    return ok ? "" : "out of memory for scratch buffers";
  });
  if (!error.empty()) Napi::Error::New(env, std::string(fn) + ": " + error).ThrowAsJavaScriptException();
  return env.Undefined();
}

Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  size_t n = 0;
  if (!expect_arity(info, "setThreads", 1) || !expect_size(info, "setThreads", 0, "n", &n, 1024.0)) return env.Undefined();
  if (n == 0) {
    throw_range_error(env, "setThreads: n must be an integer in [1, 1024], got 0");
    return env.Undefined();
  }
  return Napi::Number::New(env, set_pool_threads(static_cast<unsigned>(n)));
}

Napi::Value Threads(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), pool_threads()); }

Napi::Value PoolAddBusy(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!expect_arity(info, "poolAddBusy", 1)) return env.Undefined();
  const double delta = info[0].IsNumber() ? info[0].As<Napi::Number>().DoubleValue() : NAN;
  if (!(std::trunc(delta) == delta) || std::fabs(delta) > 1024) {
    throw_range_error(env, "poolAddBusy: delta must be an integer in [-1024, 1024]");
    return env.Undefined();
  }
  return Napi::Number::New(env, pool_add_busy(static_cast<int>(delta)));
}

Napi::Value OpenblasStatus(const Napi::CallbackInfo& info) {
  const OpenBlasStatus& s = openblas_status();
  Napi::Object out = Napi::Object::New(info.Env());
  out.Set("available", s.available);
  out.Set("detail", s.detail);
  return out;
}

Napi::Value OpenblasMatmul(const Napi::CallbackInfo& info) {
  GemmArgs g{};
  Call call;
  if (!parse_matmul(info, "openblasMatmul", &g, &call)) return info.Env().Undefined();
  if (!openblas_sgemm(g)) {
    Napi::Error::New(info.Env(), "openblasMatmul: OpenBLAS is unavailable (" + openblas_status().detail +
                                     ") or a dim exceeds its 32-bit ints").ThrowAsJavaScriptException();
  }
  return info.Env().Undefined();
}

Napi::Value OpenblasSetThreads(const Napi::CallbackInfo& info) {
  size_t n = 0;
  if (!expect_arity(info, "openblasSetThreads", 1) || !expect_size(info, "openblasSetThreads", 0, "n", &n, 1024.0)) {
    return info.Env().Undefined();
  }
  return Napi::Boolean::New(info.Env(), n >= 1 && openblas_set_threads(static_cast<int>(n)));
}

}  // namespace

void RegisterTensorExports(Napi::Env env, Napi::Object exports) {
  const std::pair<const char*, Napi::Function::Callback> tensor[] = {
      {"setThreads", SetThreads}, {"threads", Threads}, {"poolAddBusy", PoolAddBusy}, {"matmul", Matmul}, {"matmulAsync", MatmulAsync}, {"matmulStable", MatmulStable},
      {"nextGeneration", NextGeneration}, {"retireGeneration", RetireGeneration}, {"clearPackedWeights", ClearPackedWeights}, {"packedWeightsStats", PackedWeightsStats},
      {"gatherRows", GatherRows}, {"scatterAddRows", ScatterAddRows}, {"softmaxRows", SoftmaxRows},
      {"rmsnormRows", RmsnormRows}, {"swiglu", Swiglu}, {"swigluBackward", SwigluBackward}, {"rmsnormBackward", RmsnormBackward}, {"attention", Attention},
      {"attentionAsync", AttentionAsync}, {"attentionBackward", AttentionBackward},
      {"openblasStatus", OpenblasStatus}, {"openblasMatmul", OpenblasMatmul},
      {"openblasSetThreads", OpenblasSetThreads}};
  for (const auto& [name, fn] : tensor) exports.Set(name, Napi::Function::New(env, fn, name));
}

}  // namespace pleat
