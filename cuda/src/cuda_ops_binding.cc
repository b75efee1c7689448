// The first CUDA kernels (kernels/ops_cuda.h) on host arrays, with the CPU kernels' signatures so
// each can be checked against its CPU twin: the arrays are copied to device memory (the caching
// allocator), the kernel runs on stream 0, the outputs are copied back and waited for.
//
//   gatherRows(src, index, out, cols)                      Float32Array, Int32Array, Float32Array
//   softmaxRows(x, out, rows, cols)                        Float32Arrays of rows * cols; out not x
//   scatterAddRows(src, index, out, cols)                 out[index[i]] += src[i] in increasing i
//                  (a CSR list per target row built here: the CPU's order, so its bits)
//   rmsnormRows(x, weight, out, rstd, rows, cols, eps)     rstd: Float64Array or null
//   swiglu(gate, up, out)
//   adamw(w, g, m, v, beta1, beta2, c1, c2, eps, lr, clip, decay)   all Float32Array
//   ropeRotate(x, cos, sin, out, b, s, heads, d, tableRows, sign)  RoPE (the CPU's ropeRotate,
//                  float32 x and out, float64 tables)
//   swigluBackward(gate, up, grad, dGate, dUp)             dGate or dUp may be null
//   rmsnormBackward(x, w, g, rstd, rows, cols, dx, dw)     rstd and dw Float64Array; dx or dw null
//   crossEntropyRowMax(x, rows, cols, max), crossEntropyRowSumExp(x, rows, cols, max, sum),
//   crossEntropyGrad(x, rows, cols, logSum, targets, ignore, start, scale, d)   as CpuCrossEntropy's
//   router(logits, tokens, experts, topk, mode, numGroups, groupTopk, bias, scale, indices, probs)
//                  Router.select + probsFor (mode 0 pre-softmax, 1 softmax, 2 sigmoid; numGroups 0:
//                  no groups; bias Float64Array or null), indices [T * K], probs [T * E]
// Wrong types or lengths are TypeErrors / RangeErrors thrown before any device work; without a
// GPU every call throws "no device: ...". The MoE dispatch kernels' bindings (permuteRows,
// combineRows, combineBackward) are in cuda_dispatch_binding.cc, the gated activation's and the
// attention sinks' (gatedActivation, gatedActivationBackward, attentionSinksFold,
// attentionSinksGradient) in cuda_gated_sinks_binding.cc; both are registered from here.
#include "cuda_ops_binding.h"

#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "cuda_dispatch_binding.h"
#include "cuda_gated_sinks_binding.h"
#include "device_staging.h"
#include "kernels/ops_cuda.h"
#include "napi_args.h"

namespace pleat {

namespace {

// The arguments of the row copies (gatherRows, scatterAddRows): src, index, out and cols.
bool rows_call(const Napi::CallbackInfo& info, const char* fn, ArrayArg* src, ArrayArg* index, ArrayArg* out, double* cols) {
  return expect_array(info, fn, 0, "src", {napi_float32_array}, src) && expect_array(info, fn, 1, "index", {napi_int32_array}, index) &&
         expect_array(info, fn, 2, "out", {napi_float32_array}, out) && expect_number(info, fn, 3, "cols", cols);
}

Napi::Value GatherRows(const Napi::CallbackInfo& info) {
  const char* fn = "gatherRows";
  Napi::Env env = info.Env();
  ArrayArg src, index, out;
  double cols = 0;
  if (!rows_call(info, fn, &src, &index, &out, &cols)) return env.Undefined();
  const size_t c = static_cast<size_t>(cols);
  if (cols < 0 || c * index.length != out.length || (c > 0 && src.length % c != 0) || (c == 0 && src.length != 0)) {
    throw_range_error(env, std::string(fn) + ": out must hold index.length * cols elements and src whole rows of cols");
    return env.Undefined();
  }
  if (c == 0) return env.Undefined();  // rows of no values: nothing to write, as on the CPU
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

Napi::Value SoftmaxRows(const Napi::CallbackInfo& info) {
  const char* fn = "softmaxRows";
  Napi::Env env = info.Env();
  ArrayArg x, out;
  double rows = 0, cols = 0;
  if (!expect_array(info, fn, 0, "x", {napi_float32_array}, &x) || !expect_array(info, fn, 1, "out", {napi_float32_array}, &out) ||
      !expect_whole(info, fn, 2, "rows", &rows) || !expect_whole(info, fn, 3, "cols", &cols))
    return env.Undefined();
  const size_t r = static_cast<size_t>(rows), c = static_cast<size_t>(cols);
  if (x.length != r * c || out.length != r * c) {
    throw_range_error(env, std::string(fn) + ": x and out must hold rows * cols = " + std::to_string(r * c) + " elements, got " + std::to_string(x.length) + " and " +
                               std::to_string(out.length));
    return env.Undefined();
  }
  if (x.value == out.value) {
    throw_range_error(env, std::string(fn) + ": out may not be x");
    return env.Undefined();
  }
  return run_on_device(info, fn, {{&x, Way::in}, {&out, Way::out}}, [&](const DevicePointers& d, cudaStream_t s) { return softmax_rows_launch(d.f32(0), d.f32(1), r, c, s); });
}

Napi::Value ScatterAddRows(const Napi::CallbackInfo& info) {
  const char* fn = "scatterAddRows";
  Napi::Env env = info.Env();
  ArrayArg src, index, out;
  double cols = 0;
  if (!rows_call(info, fn, &src, &index, &out, &cols)) return env.Undefined();
  const size_t c = static_cast<size_t>(cols);
  if (cols < 0 || c * index.length != src.length || (c > 0 && out.length % c != 0) || (c == 0 && out.length != 0)) {
    throw_range_error(env, std::string(fn) + ": src must hold index.length * cols elements and out whole rows of cols");
    return env.Undefined();
  }
  if (c == 0) return env.Undefined();  // rows of no values: nothing to add, as on the CPU
  // Each target row's sources in increasing i: the CPU's order of adds.
  StagedRowLists lists;
  if (!staged_row_lists(env, fn, index, out.length / c, "a row of out", &lists)) return env.Undefined();
  const ArrayArg &off = lists.offsets, &ord = lists.order;
  return run_on_device(info, fn, {{&src, Way::in}, {&off, Way::in}, {&ord, Way::in}, {&out, Way::in_out}}, [&](const DevicePointers& d, cudaStream_t s) {
    return scatter_add_rows_launch(d.f32(0), d.i32(1), d.i32(2), out.length / c, c, d.f32(3), s);
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

Napi::Value RopeRotate(const Napi::CallbackInfo& info) {
  const char* fn = "ropeRotate";
  Napi::Env env = info.Env();
  ArrayArg x, cos, sin, out;
  double b = 0, s = 0, heads = 0, d = 0, rows = 0, sign = 0;
  if (!expect_array(info, fn, 0, "x", {napi_float32_array}, &x) || !expect_array(info, fn, 1, "cos", {napi_float64_array}, &cos) ||
      !expect_array(info, fn, 2, "sin", {napi_float64_array}, &sin) || !expect_array(info, fn, 3, "out", {napi_float32_array}, &out) ||
      !expect_number(info, fn, 4, "b", &b) || !expect_number(info, fn, 5, "s", &s) || !expect_number(info, fn, 6, "heads", &heads) ||
      !expect_number(info, fn, 7, "d", &d) || !expect_number(info, fn, 8, "tableRows", &rows) || !expect_number(info, fn, 9, "sign", &sign))
    return env.Undefined();
  const size_t nb = static_cast<size_t>(b), ns = static_cast<size_t>(s), nh = static_cast<size_t>(heads), nd = static_cast<size_t>(d),
               nr = static_cast<size_t>(rows);
  if (nd % 2 != 0 || (sign != 1.0 && sign != -1.0) || (nr != ns && nr != nb * ns) || x.length != nb * ns * nh * nd || out.length != x.length ||
      cos.length != nr * (nd / 2) || sin.length != cos.length) {
    throw_range_error(env, std::string(fn) + ": d must be even, sign 1 or -1, tableRows s or b * s, x and out b * s * heads * d elements, cos and sin tableRows * d / 2");
    return env.Undefined();
  }
  return run_on_device(info, fn, {{&x, Way::in}, {&cos, Way::in}, {&sin, Way::in}, {&out, Way::out}}, [&](const DevicePointers& dp, cudaStream_t st) {
    return rope_launch(dp.f32(0), dp.f64(1), dp.f64(2), dp.f32(3), nb, ns, nh, nd, nr, sign, st);
  });
}

Napi::Value SwigluBackward(const Napi::CallbackInfo& info) {
  const char* fn = "swigluBackward";
  Napi::Env env = info.Env();
  ArrayArg gate, up, grad, dgate, dup;
  const bool want_gate = info.Length() > 3 && !info[3].IsNull();
  const bool want_up = info.Length() > 4 && !info[4].IsNull();
  if (!expect_array(info, fn, 0, "gate", {napi_float32_array}, &gate) || !expect_array(info, fn, 1, "up", {napi_float32_array}, &up) ||
      !expect_array(info, fn, 2, "grad", {napi_float32_array}, &grad) || (want_gate && !expect_array(info, fn, 3, "dGate", {napi_float32_array}, &dgate)) ||
      (want_up && !expect_array(info, fn, 4, "dUp", {napi_float32_array}, &dup)))
    return env.Undefined();
  const size_t n = gate.length;
  if (up.length != n || grad.length != n || (want_gate && dgate.length != n) || (want_up && dup.length != n)) {
    throw_range_error(env, std::string(fn) + ": gate, up, grad, dGate and dUp must have the same length");
    return env.Undefined();
  }
  return run_on_device(info, fn, {{&gate, Way::in}, {&up, Way::in}, {&grad, Way::in}, {want_gate ? &dgate : nullptr, Way::out}, {want_up ? &dup : nullptr, Way::out}},
                       [&](const DevicePointers& dp, cudaStream_t st) { return swiglu_backward_launch(dp.f32(0), dp.f32(1), dp.f32(2), dp.f32(3), dp.f32(4), n, st); });
}

Napi::Value RmsnormBackward(const Napi::CallbackInfo& info) {
  const char* fn = "rmsnormBackward";
  Napi::Env env = info.Env();
  ArrayArg x, w, g, rstd, dx, dw;
  double rows = 0, cols = 0;
  const bool want_dx = info.Length() > 6 && !info[6].IsNull();
  const bool want_dw = info.Length() > 7 && !info[7].IsNull();
  if (!expect_array(info, fn, 0, "x", {napi_float32_array}, &x) || !expect_array(info, fn, 1, "w", {napi_float32_array}, &w) ||
      !expect_array(info, fn, 2, "g", {napi_float32_array}, &g) || !expect_array(info, fn, 3, "rstd", {napi_float64_array}, &rstd) ||
      !expect_number(info, fn, 4, "rows", &rows) || !expect_number(info, fn, 5, "cols", &cols) ||
      (want_dx && !expect_array(info, fn, 6, "dx", {napi_float32_array}, &dx)) || (want_dw && !expect_array(info, fn, 7, "dw", {napi_float64_array}, &dw)))
    return env.Undefined();
  const size_t r = static_cast<size_t>(rows), c = static_cast<size_t>(cols);
  if (x.length != r * c || g.length != r * c || w.length != c || rstd.length != r || (want_dx && dx.length != r * c) || (want_dw && dw.length != c)) {
    throw_range_error(env, std::string(fn) + ": x, g and dx need rows * cols elements, w and dw cols, rstd rows");
    return env.Undefined();
  }
  // Device scratch for the rows' coefficients (its host side is never read or written).
  const ArrayArg scratch{napi_float64_array, r, nullptr, Napi::Value()};
  return run_on_device(info, fn,
                       {{&x, Way::in}, {&w, Way::in}, {&g, Way::in}, {&rstd, Way::in}, {want_dx ? &dx : nullptr, Way::out}, {want_dw ? &dw : nullptr, Way::out},
                        {want_dx ? &scratch : nullptr, Way::scratch}},
                       [&](const DevicePointers& dp, cudaStream_t st) {
                         return rmsnorm_backward_launch(dp.f32(0), dp.f32(1), dp.f32(2), dp.f64(3), r, c, dp.f32(4), dp.f64(5), dp.f64(6), st);
                       });
}

// x [rows, cols] float32 and its row count checked; false (with the error thrown) otherwise.
bool ce_rows(const Napi::CallbackInfo& info, const char* fn, ArrayArg* x, size_t* rows, size_t* cols) {
  double r = 0, c = 0;
  if (!expect_array(info, fn, 0, "x", {napi_float32_array}, x) || !expect_number(info, fn, 1, "rows", &r) || !expect_number(info, fn, 2, "cols", &c)) return false;
  *rows = static_cast<size_t>(r);
  *cols = static_cast<size_t>(c);
  if (r < 0 || c < 0 || x->length != *rows * *cols) return throw_range_error(info.Env(), std::string(fn) + ": x needs rows * cols elements");
  return true;
}

Napi::Value CrossEntropyRowMax(const Napi::CallbackInfo& info) {
  const char* fn = "crossEntropyRowMax";
  ArrayArg x, max;
  size_t rows = 0, cols = 0;
  if (!ce_rows(info, fn, &x, &rows, &cols) || !expect_array(info, fn, 3, "max", {napi_float64_array}, &max)) return info.Env().Undefined();
  if (max.length != rows) {
    throw_range_error(info.Env(), std::string(fn) + ": max needs rows elements");
    return info.Env().Undefined();
  }
  return run_on_device(info, fn, {{&x, Way::in}, {&max, Way::out}}, [&](const DevicePointers& d, cudaStream_t s) { return ce_row_max_launch(d.f32(0), rows, cols, d.f64(1), s); });
}

Napi::Value CrossEntropyRowSumExp(const Napi::CallbackInfo& info) {
  const char* fn = "crossEntropyRowSumExp";
  ArrayArg x, max, sum;
  size_t rows = 0, cols = 0;
  if (!ce_rows(info, fn, &x, &rows, &cols) || !expect_array(info, fn, 3, "max", {napi_float64_array}, &max) ||
      !expect_array(info, fn, 4, "sum", {napi_float64_array}, &sum))
    return info.Env().Undefined();
  if (max.length != rows || sum.length != rows) {
    throw_range_error(info.Env(), std::string(fn) + ": max and sum need rows elements");
    return info.Env().Undefined();
  }
  return run_on_device(info, fn, {{&x, Way::in}, {&max, Way::in}, {&sum, Way::out}},
                       [&](const DevicePointers& d, cudaStream_t s) { return ce_row_sum_exp_launch(d.f32(0), rows, cols, d.f64(1), d.f64(2), s); });
}

Napi::Value CrossEntropyGrad(const Napi::CallbackInfo& info) {
  const char* fn = "crossEntropyGrad";
  ArrayArg x, log_sum, targets, d;
  size_t rows = 0, cols = 0;
  double ignore = 0, start = 0, scale = 0;
  if (!ce_rows(info, fn, &x, &rows, &cols) || !expect_array(info, fn, 3, "logSum", {napi_float64_array}, &log_sum) ||
      !expect_array(info, fn, 4, "targets", {napi_int32_array}, &targets) || !expect_number(info, fn, 5, "ignore", &ignore) ||
      !expect_number(info, fn, 6, "start", &start) || !expect_number(info, fn, 7, "scale", &scale) ||
      !expect_array(info, fn, 8, "d", {napi_float32_array}, &d))
    return info.Env().Undefined();
  if (log_sum.length != rows || targets.length != rows || d.length != x.length) {
    throw_range_error(info.Env(), std::string(fn) + ": logSum and targets need rows elements, d rows * cols");
    return info.Env().Undefined();
  }
  const int32_t ig = static_cast<int32_t>(ignore);
  const int64_t st0 = static_cast<int64_t>(start);
  return run_on_device(info, fn, {{&x, Way::in}, {&log_sum, Way::in}, {&targets, Way::in}, {&d, Way::out}}, [&](const DevicePointers& p, cudaStream_t s) {
    return ce_grad_launch(p.f32(0), rows, cols, p.f64(1), p.i32(2), ig, st0, scale, p.f32(3), s);
  });
}

Napi::Value RouterFused(const Napi::CallbackInfo& info) {
  const char* fn = "router";
  Napi::Env env = info.Env();
  ArrayArg logits, bias, indices, probs;
  double tokens = 0, experts = 0, topk = 0, mode = 0, groups = 0, group_topk = 0, scale = 0;
  const bool biased = info.Length() > 7 && !info[7].IsNull();
  if (!expect_array(info, fn, 0, "logits", {napi_float32_array}, &logits) || !expect_number(info, fn, 1, "tokens", &tokens) ||
      !expect_number(info, fn, 2, "experts", &experts) || !expect_number(info, fn, 3, "topk", &topk) || !expect_number(info, fn, 4, "mode", &mode) ||
      !expect_number(info, fn, 5, "numGroups", &groups) || !expect_number(info, fn, 6, "groupTopk", &group_topk) ||
      (biased && !expect_array(info, fn, 7, "bias", {napi_float64_array}, &bias)) || !expect_number(info, fn, 8, "scale", &scale) ||
      !expect_array(info, fn, 9, "indices", {napi_int32_array}, &indices) || !expect_array(info, fn, 10, "probs", {napi_float32_array}, &probs))
    return env.Undefined();
  const size_t t = static_cast<size_t>(tokens);
  const int e = static_cast<int>(experts), k = static_cast<int>(topk), m = static_cast<int>(mode), g = static_cast<int>(groups),
            gk = static_cast<int>(group_topk);
  const bool grouped = g > 0;
  if (e < 1 || e > kRouterMaxExperts || k < 1 || k > e || k > kRouterMaxTopk || (m < 0 || m > 3) ||
      (grouped && (gk < 1 || e % g != 0 || g % gk != 0 || k > gk * (e / g))) || logits.length != t * static_cast<size_t>(e) ||
      indices.length != t * static_cast<size_t>(k) || probs.length != logits.length || (biased && bias.length != static_cast<size_t>(e))) {
    throw_range_error(env, std::string(fn) + ": needs 1 <= topk <= experts <= " + std::to_string(kRouterMaxExperts) + ", topk <= " +
                               std::to_string(kRouterMaxTopk) + ", mode 0, 1, 2 or 3, groups dividing experts and groupTopk dividing groups with topk <= groupTopk * experts / groups, logits and probs tokens * experts, indices tokens * topk, bias experts");
    return env.Undefined();
  }
  return run_on_device(info, fn, {{&logits, Way::in}, {biased ? &bias : nullptr, Way::in}, {&indices, Way::out}, {&probs, Way::out}},
                       [&](const DevicePointers& d, cudaStream_t s) {
                         return router_launch(d.f32(0), t, e, k, m, grouped ? g : 0, grouped ? gk : 0, d.f64(1), scale, d.i32(2), d.f32(3), s);
                       });
}

}  // namespace

void RegisterCudaOpsExports(Napi::Env env, Napi::Object exports) {
  exports.Set("gatherRows", Napi::Function::New(env, GatherRows, "gatherRows"));
  exports.Set("softmaxRows", Napi::Function::New(env, SoftmaxRows, "softmaxRows"));
  exports.Set("rmsnormRows", Napi::Function::New(env, RmsnormRows, "rmsnormRows"));
  exports.Set("swiglu", Napi::Function::New(env, Swiglu, "swiglu"));
  exports.Set("adamw", Napi::Function::New(env, Adamw, "adamw"));
  exports.Set("scatterAddRows", Napi::Function::New(env, ScatterAddRows, "scatterAddRows"));
  exports.Set("ropeRotate", Napi::Function::New(env, RopeRotate, "ropeRotate"));
  exports.Set("swigluBackward", Napi::Function::New(env, SwigluBackward, "swigluBackward"));
  exports.Set("rmsnormBackward", Napi::Function::New(env, RmsnormBackward, "rmsnormBackward"));
  exports.Set("crossEntropyRowMax", Napi::Function::New(env, CrossEntropyRowMax, "crossEntropyRowMax"));
  exports.Set("crossEntropyRowSumExp", Napi::Function::New(env, CrossEntropyRowSumExp, "crossEntropyRowSumExp"));
  exports.Set("crossEntropyGrad", Napi::Function::New(env, CrossEntropyGrad, "crossEntropyGrad"));
  exports.Set("router", Napi::Function::New(env, RouterFused, "router"));
  RegisterCudaDispatchExports(env, exports);
  RegisterCudaGatedSinksExports(env, exports);
}

}  // namespace pleat
