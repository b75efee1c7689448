// The Node-API binding of the signal net (signal_net.h). Typed wrappers: src/native/SignalNet.ts.
//
//   signalNetArm(prefix, graceMs, signals) -> the signal numbers now watched (those Node listens to)
//   signalNetSeen() -> undefined: JavaScript's handler ran
//   signalNetDescribe(text) -> undefined: what the command is doing now, in words
//   signalNetDisarm() -> undefined
//   exitWithin(code, ms) -> whether the timer started: the process ends with `code` after `ms`
//       unless it has ended by then
#include "signal_net_binding.h"

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include "exit_later.h"
#include "napi_args.h"
#include "signal_net.h"

namespace pleat {
namespace {

Napi::Value Arm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* fn = "signalNetArm";
  std::string prefix;
  double grace_ms = 0;
  if (!expect_arity(info, fn, 3) || !expect_string(info, fn, 0, "prefix", &prefix) || !expect_whole(info, fn, 1, "graceMs", &grace_ms)) {
    return env.Undefined();
  }
  if (!info[2].IsArray()) {
    throw_type_error(env, std::string(fn) + ": signals must be an array of signal numbers, got " + describe(info[2]));
    return env.Undefined();
  }
  const Napi::Array list = info[2].As<Napi::Array>();
  std::vector<int> signals;
  for (uint32_t i = 0; i < list.Length(); ++i) {
    const Napi::Value v = list.Get(i);
    const double s = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
    if (s < 1 || s > 64 || s != static_cast<double>(static_cast<int>(s))) {
      throw_type_error(env, std::string(fn) + ": signals[" + std::to_string(i) + "] must be a signal number 1..64, got " + describe(v));
      return env.Undefined();
    }
    signals.push_back(static_cast<int>(s));
  }
  const std::vector<int> watched = signal_net::arm(prefix, static_cast<int>(std::min(grace_ms, 3600000.0)), signals);
  Napi::Array out = Napi::Array::New(env, watched.size());
  for (size_t i = 0; i < watched.size(); ++i) out.Set(static_cast<uint32_t>(i), Napi::Number::New(env, watched[i]));
  return out;
}

Napi::Value Seen(const Napi::CallbackInfo& info) {
  signal_net::seen();
  return info.Env().Undefined();
}

Napi::Value Describe(const Napi::CallbackInfo& info) {
  std::string text;
  if (!expect_arity(info, "signalNetDescribe", 1) || !expect_string(info, "signalNetDescribe", 0, "text", &text)) return info.Env().Undefined();
  signal_net::describe(text);
  return info.Env().Undefined();
}

Napi::Value Disarm(const Napi::CallbackInfo& info) {
  signal_net::disarm();
  return info.Env().Undefined();
}

Napi::Value ExitWithin(const Napi::CallbackInfo& info) {
  const char* fn = "exitWithin";
  double code = 0, ms = 0;
  if (!expect_arity(info, fn, 2) || !expect_whole(info, fn, 0, "code", &code) || !expect_whole(info, fn, 1, "ms", &ms)) return info.Env().Undefined();
  if (code > 255) {
    throw_range_error(info.Env(), std::string(fn) + ": code must be 0..255, got " + std::to_string(static_cast<long long>(code)));
    return info.Env().Undefined();
  }
  return Napi::Boolean::New(info.Env(), exit_later(static_cast<int>(code), std::chrono::milliseconds(static_cast<long long>(std::min(ms, 3600000.0)))));
}

}  // namespace

void RegisterSignalNetExports(Napi::Env env, Napi::Object exports) {
  exports.Set("signalNetArm", Napi::Function::New(env, Arm, "signalNetArm"));
  exports.Set("signalNetSeen", Napi::Function::New(env, Seen, "signalNetSeen"));
  exports.Set("signalNetDescribe", Napi::Function::New(env, Describe, "signalNetDescribe"));
  exports.Set("signalNetDisarm", Napi::Function::New(env, Disarm, "signalNetDisarm"));
  exports.Set("exitWithin", Napi::Function::New(env, ExitWithin, "exitWithin"));
}

}  // namespace pleat
