// ThreadWork: runs a call on a thread of its own and settles a Promise on the JS thread, for
// calls that wait for other processes (ncclCommInitRank returns once every member has joined).
// On libuv's pool (KernelWork) such waits could hold every pool thread while the peers they wait
// for need this process to reach a point that itself waits for a pool thread: a deadlock that
// a thread per call cannot have. The thread is detached; the Promise keeps the event loop alive
// until it settles.
#pragma once

#include <napi.h>

#include <exception>
#include <functional>
#include <string>
#include <thread>

#include "async_work.h"

namespace pleat {

// `run` returns "" on success, else the error message; it must touch no JS value. `settle`
// runs on the JS thread after it (`ok`: it succeeded) and gives the value the Promise resolves with
// (a JS exception it leaves pending rejects the Promise instead).
inline Napi::Promise start_on_own_thread(Napi::Env env, const char* name, std::function<std::string()> run, KernelWork::Settle settle) {
  struct State {
    Napi::Promise::Deferred deferred;
    std::function<std::string()> run;
    KernelWork::Settle settle;
    std::string error;
  };
  auto* state = new State{Napi::Promise::Deferred::New(env), std::move(run), std::move(settle), {}};
  Napi::Promise promise = state->deferred.Promise();
  auto done = Napi::ThreadSafeFunction::New(env, Napi::Function::New(env, [](const Napi::CallbackInfo&) {}), name, 0, 1);
  std::thread([state, done]() mutable {
    try {
      state->error = state->run();
    } catch (const std::exception& e) {
      state->error = e.what();
    }
    const napi_status queued = done.BlockingCall(state, [](Napi::Env e, Napi::Function, State* s) {
      const bool ok = s->error.empty();
      Napi::Value value = s->settle != nullptr ? s->settle(e, ok) : e.Undefined();
      // A settle that throws rejects with its error.
      if (e.IsExceptionPending()) s->deferred.Reject(e.GetAndClearPendingException().Value());
      else if (ok) s->deferred.Resolve(value);
      else s->deferred.Reject(Napi::Error::New(e, s->error).Value());
      delete s;
    });
    if (queued != napi_ok) delete state;  // the environment is gone: nobody waits for it
    done.Release();
  }).detach();
  return promise;
}

}  // namespace pleat
