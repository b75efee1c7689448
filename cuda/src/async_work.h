// KernelWork: runs a kernel on libuv's thread pool (Napi::AsyncWorker) and settles a Promise.
//
// Why: a long kernel on the JS thread blocks every other rank's fiber in the process; on the
// libuv pool the JS thread keeps running them. The typed arrays the kernel reads and writes are
// held by persistent references until the Promise settles, so they cannot be collected while
// the kernel still uses their memory.
#pragma once

#include <napi.h>

#include <exception>
#include <functional>
#include <string>
#include <vector>

namespace pleat {

class KernelWork : public Napi::AsyncWorker {
 public:
  // What runs on the JS thread once `run` has finished (`ok`: it succeeded): it may release
  // what `run` used, and its value is what the Promise resolves with when `ok`.
  using Settle = std::function<Napi::Value(Napi::Env, bool ok)>;

  // `run` returns an empty string on success, else the error message. It runs on a libuv
  // thread, so it must touch no JS value; `keep` are the arrays it uses.
  KernelWork(Napi::Env env, const char* name, std::function<std::string()> run,
             const std::vector<Napi::Value>& keep, Settle settle = nullptr)
      : Napi::AsyncWorker(env, name), deferred_(Napi::Promise::Deferred::New(env)), run_(std::move(run)), settle_(std::move(settle)) {
    for (const Napi::Value& v : keep) {
      // Device arrays are Externals (V8 objects): kept as objects are.
      if (v.IsObject() || v.IsExternal()) refs_.push_back(Napi::Persistent(v.As<Napi::Object>()));
    }
  }

  Napi::Promise Promise() const { return deferred_.Promise(); }

 protected:
  void Execute() override {
    std::string error;
    try {
      error = run_();
    } catch (const std::exception& e) {
      error = e.what();
    }
    if (!error.empty()) SetError(error);
  }
  void OnOK() override { deferred_.Resolve(settle_ != nullptr ? settle_(Env(), true) : Env().Undefined()); }
  void OnError(const Napi::Error& e) override {
    if (settle_ != nullptr) settle_(Env(), false);
    deferred_.Reject(e.Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  std::function<std::string()> run_;
  Settle settle_;
  std::vector<Napi::ObjectReference> refs_;
};

}  // namespace pleat
