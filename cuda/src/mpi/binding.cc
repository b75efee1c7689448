// pleat_mpi.node: the MPI engine (engine.h) as JS functions. Built only when CMake finds MPI.
//
// Every op is started with a JS-chosen id and returns at once; its completion arrives later
// through the handler given to setHandler: handler(0, id, status, error, fast) for an op (fast:
// a `checked` op whose members agreed and whose data op ran too),
// handler(1, source, tag, bytes | error) for a received p2p message. Buffers passed in are the
// caller's typed arrays, used in place: the caller keeps them alive until the op completes.
// Counts and displacements are in elements of the op's type (0 float32, 1 float64, 2 bytes).
#include <napi.h>

#include <cstring>
#include <memory>
#include <mutex>
#include <vector>
#include <string>

#include "../napi_args.h"
#include "engine.h"

namespace pleat::mpi {

namespace {

struct State {
  std::unique_ptr<Engine> engine;
  Napi::ThreadSafeFunction handler;
  // Completions and messages that come before setHandler wait here (the engine probes for
  // messages as soon as MPI is up), so nothing received early is lost.
  std::mutex mutex;
  std::vector<Completion*> early;
  bool has_handler = false;
  WorldInfo world;
  bool started = false;
};

State& state() {
  static State s;
  return s;
}

MPI_Datatype type_of(int code) {
  switch (code) {
    case 0: return MPI_FLOAT;
    case 1: return MPI_DOUBLE;
    default: return MPI_BYTE;
  }
}

bool number_at(const Napi::CallbackInfo& info, const char* fn, size_t index, const char* name, int* out) {
  double v = 0;
  if (!expect_number(info, fn, index, name, &v)) return false;
  if (!(v >= INT_MIN && v <= INT_MAX) || v != static_cast<double>(static_cast<int>(v))) {
    return throw_range_error(info.Env(), std::string(fn) + ": " + name + " (" + std::to_string(v) + ") is not an integer in MPI's int range");
  }
  *out = static_cast<int>(v);
  return true;
}

bool bytes_at(const Napi::CallbackInfo& info, const char* fn, size_t index, const char* name, void** out) {
  Napi::TypedArray view;
  if (!expect_typed_array(info, fn, index, name, &view)) return false;
  *out = view_bytes(view);
  return true;
}

bool ints_at(const Napi::CallbackInfo& info, const char* fn, size_t index, const char* name, std::vector<int>* out) {
  ArrayArg a;
  if (!expect_array(info, fn, index, name, {napi_int32_array}, &a)) return false;
  out->assign(a.i32(), a.i32() + a.length);
  return true;
}

bool require_engine(Napi::Env env, const char* fn) {
  if (state().engine && state().engine->running()) return true;
  Napi::Error::New(env, std::string(fn) + ": MPI is not running (call init first)").ThrowAsJavaScriptException();
  return false;
}

// Calls the JS handler with raw Node-API calls whose failures are ignored: a call can come
// while Node tears the environment down (process.exit with completions still queued), when
// calling into JS fails, and node-addon-api's own wrappers would then abort the process.
void call(State& s, Completion* c) {
  const napi_status status = s.handler.NonBlockingCall(c, [](Napi::Env env, Napi::Function fn, Completion* done) {
    std::unique_ptr<Completion> own(done);
    if (env == nullptr || fn.IsEmpty()) return;
    napi_value args[5] = {};
    napi_value undefined = nullptr;
    if (napi_get_undefined(env, &undefined) != napi_ok) return;
    bool ok = napi_create_int32(env, done->message ? 1 : 0, &args[0]) == napi_ok;
    if (done->message) {
      ok = ok && napi_create_int32(env, done->source, &args[1]) == napi_ok && napi_create_int32(env, done->tag, &args[2]) == napi_ok;
      if (done->status != 0) {
        ok = ok && napi_create_string_utf8(env, done->error.c_str(), done->error.size(), &args[3]) == napi_ok;
      } else {
        void* data = nullptr;
        ok = ok && napi_create_arraybuffer(env, done->bytes.size(), &data, &args[3]) == napi_ok;
        if (ok && !done->bytes.empty()) std::memcpy(data, done->bytes.data(), done->bytes.size());
      }
      args[4] = undefined;
    } else {
      ok = ok && napi_create_uint32(env, done->id, &args[1]) == napi_ok && napi_create_int32(env, done->status, &args[2]) == napi_ok &&
           napi_create_string_utf8(env, done->error.c_str(), done->error.size(), &args[3]) == napi_ok && napi_get_boolean(env, done->fast, &args[4]) == napi_ok;
    }
    if (!ok) return;
    napi_value result = nullptr;
    napi_call_function(env, undefined, fn, 5, args, &result);
  });
  if (status != napi_ok) delete c;
}

void deliver(Completion* c) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  if (!s.has_handler) {
    s.early.push_back(c);
    return;
  }
  call(s, c);
}

Napi::Value LibraryVersion(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), library_version()); }

Napi::Value Init(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  State& s = state();
  if (!s.started) {
    s.engine = std::make_unique<Engine>(deliver);
    s.world = s.engine->start();
    s.started = true;
  }
  auto out = Napi::Object::New(env);
  out.Set("rank", s.world.rank);
  out.Set("size", s.world.size);
  out.Set("provided", s.world.provided);
  out.Set("error", s.world.error);
  return out;
}

Napi::Value SetHandler(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!expect_arity(info, "setHandler", 1)) return env.Undefined();
  if (!info[0].IsFunction()) {
    throw_type_error(env, "setHandler: handler must be a function");
    return env.Undefined();
  }
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  if (s.has_handler) s.handler.Release();
  s.handler = Napi::ThreadSafeFunction::New(env, info[0].As<Napi::Function>(), "pleat-mpi", 0, 1);
  s.handler.Unref(env);
  s.has_handler = true;
  for (Completion* c : s.early) call(s, c);
  s.early.clear();
  return env.Undefined();
}

// ref(true) keeps the process alive while ops are in flight; ref(false) lets it exit.
Napi::Value Ref(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  State& s = state();
  if (s.has_handler) {
    if (info[0].ToBoolean().Value()) s.handler.Ref(env);
    else s.handler.Unref(env);
  }
  return env.Undefined();
}

Napi::Value Submit(const Napi::CallbackInfo& info, Kind kind) {
  Napi::Env env = info.Env();
  const char* fn = "mpi op";
  if (!require_engine(env, fn)) return env.Undefined();
  Command c;
  c.kind = kind;
  int id = 0;
  if (!number_at(info, fn, 0, "id", &id)) return env.Undefined();
  c.id = static_cast<uint32_t>(id);
  bool ok = true;
  int type = 2;
  int op = 0;
  switch (kind) {
    case Kind::CommCreate:  // (id, comm, ranks, tag)
      ok = number_at(info, fn, 1, "comm", &c.comm) && ints_at(info, fn, 2, "ranks", &c.ranks) && number_at(info, fn, 3, "tag", &c.tag);
      break;
    case Kind::Checked: {  // (id, comm, header, headers, then, send, recv, count, recvCounts, type, op)
      int then = 0;
      void* header = nullptr;
      void* headers = nullptr;
      ok = number_at(info, fn, 1, "comm", &c.comm) && bytes_at(info, fn, 2, "header", &header) && bytes_at(info, fn, 3, "headers", &headers) &&
           number_at(info, fn, 4, "then", &then) && bytes_at(info, fn, 5, "send", &c.send) && bytes_at(info, fn, 6, "recv", &c.recv) &&
           number_at(info, fn, 7, "count", &c.count) && ints_at(info, fn, 8, "recvCounts", &c.recv_counts) && number_at(info, fn, 9, "type", &type) &&
           number_at(info, fn, 10, "op", &op);
      if (ok) {
        c.header = static_cast<double*>(header);
        c.headers = static_cast<double*>(headers);
        c.header_length = static_cast<int>(info[2].As<Napi::TypedArray>().ElementLength());
        c.then = then == 0 ? Kind::AllReduce : then == 1 ? Kind::AllGather : Kind::ReduceScatter;
      }
      break;
    }
    case Kind::CommReady:  // internal to the engine
      ok = throw_type_error(env, "mpi op: not a command");
      break;
    case Kind::CommFree:  // (id, comm)
      ok = number_at(info, fn, 1, "comm", &c.comm);
      break;
    case Kind::Barrier:  // (id, comm)
      ok = number_at(info, fn, 1, "comm", &c.comm);
      break;
    case Kind::AllGather:  // (id, comm, send, recv, count, type)
      ok = number_at(info, fn, 1, "comm", &c.comm) && bytes_at(info, fn, 2, "send", &c.send) && bytes_at(info, fn, 3, "recv", &c.recv) &&
           number_at(info, fn, 4, "count", &c.count) && number_at(info, fn, 5, "type", &type);
      break;
    case Kind::AllGatherV:  // (id, comm, send, count, recv, recvCounts, recvDispls, type)
      ok = number_at(info, fn, 1, "comm", &c.comm) && bytes_at(info, fn, 2, "send", &c.send) && number_at(info, fn, 3, "count", &c.count) &&
           bytes_at(info, fn, 4, "recv", &c.recv) && ints_at(info, fn, 5, "recvCounts", &c.recv_counts) && ints_at(info, fn, 6, "recvDispls", &c.recv_displs) &&
           number_at(info, fn, 7, "type", &type);
      break;
    case Kind::AllReduce:  // (id, comm, send, recv, count, type, op)
      ok = number_at(info, fn, 1, "comm", &c.comm) && bytes_at(info, fn, 2, "send", &c.send) && bytes_at(info, fn, 3, "recv", &c.recv) &&
           number_at(info, fn, 4, "count", &c.count) && number_at(info, fn, 5, "type", &type) && number_at(info, fn, 6, "op", &op);
      break;
    case Kind::ReduceScatter:  // (id, comm, send, recv, recvCounts, type, op)
      ok = number_at(info, fn, 1, "comm", &c.comm) && bytes_at(info, fn, 2, "send", &c.send) && bytes_at(info, fn, 3, "recv", &c.recv) &&
           ints_at(info, fn, 4, "recvCounts", &c.recv_counts) && number_at(info, fn, 5, "type", &type) && number_at(info, fn, 6, "op", &op);
      break;
    case Kind::AllToAllV:  // (id, comm, send, sendCounts, sendDispls, recv, recvCounts, recvDispls, type)
      ok = number_at(info, fn, 1, "comm", &c.comm) && bytes_at(info, fn, 2, "send", &c.send) && ints_at(info, fn, 3, "sendCounts", &c.send_counts) &&
           ints_at(info, fn, 4, "sendDispls", &c.send_displs) && bytes_at(info, fn, 5, "recv", &c.recv) && ints_at(info, fn, 6, "recvCounts", &c.recv_counts) &&
           ints_at(info, fn, 7, "recvDispls", &c.recv_displs) && number_at(info, fn, 8, "type", &type);
      break;
    case Kind::Bcast:  // (id, comm, buffer, count, root, type)
      ok = number_at(info, fn, 1, "comm", &c.comm) && bytes_at(info, fn, 2, "buffer", &c.recv) && number_at(info, fn, 3, "count", &c.count) &&
           number_at(info, fn, 4, "root", &c.root) && number_at(info, fn, 5, "type", &type);
      break;
    case Kind::Send:  // (id, dest, tag, bytes)
      ok = number_at(info, fn, 1, "dest", &c.dest) && number_at(info, fn, 2, "tag", &c.tag) && bytes_at(info, fn, 3, "bytes", &c.send);
      if (ok) c.bytes = info[3].As<Napi::TypedArray>().ByteLength();
      break;
  }
  if (!ok) return env.Undefined();
  c.type = type_of(type);
  c.op = op == 1 ? MPI_MAX : MPI_SUM;
  state().engine->submit(std::move(c));
  return env.Undefined();
}

// finalize(abortCode, graceMs): abortCode < 0 ends MPI cleanly, else MPI_Abort(abortCode).
Napi::Value Finalize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  State& s = state();
  int code = -1;
  int grace = 2000;
  if (info.Length() > 0 && !number_at(info, "finalize", 0, "abortCode", &code)) return env.Undefined();
  if (info.Length() > 1 && !number_at(info, "finalize", 1, "graceMs", &grace)) return env.Undefined();
  if (s.engine) s.engine->stop(code, grace);
  std::lock_guard<std::mutex> lock(s.mutex);
  if (s.has_handler) {
    s.handler.Release();
    s.has_handler = false;
  }
  return env.Undefined();
}

// want(n): JS waits for n p2p messages (the engine then probes more often).
Napi::Value Want(const Napi::CallbackInfo& info) {
  int n = 0;
  if (!number_at(info, "want", 0, "waiting", &n)) return info.Env().Undefined();
  if (state().engine) state().engine->want(n);
  return info.Env().Undefined();
}

Napi::Value Wtime(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), MPI_Wtime()); }

}  // namespace

}  // namespace pleat::mpi

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  using namespace pleat::mpi;
  exports.Set("libraryVersion", Napi::Function::New(env, LibraryVersion));
  exports.Set("init", Napi::Function::New(env, pleat::mpi::Init));
  exports.Set("setHandler", Napi::Function::New(env, SetHandler));
  exports.Set("ref", Napi::Function::New(env, Ref));
  exports.Set("finalize", Napi::Function::New(env, Finalize));
  exports.Set("wtime", Napi::Function::New(env, Wtime));
  exports.Set("want", Napi::Function::New(env, Want));
  const std::pair<const char*, Kind> ops[] = {
      {"commCreate", Kind::CommCreate}, {"commFree", Kind::CommFree},   {"barrier", Kind::Barrier},   {"allGather", Kind::AllGather},
      {"allGatherV", Kind::AllGatherV}, {"allReduce", Kind::AllReduce}, {"reduceScatter", Kind::ReduceScatter}, {"allToAllV", Kind::AllToAllV},
      {"bcast", Kind::Bcast},           {"send", Kind::Send},       {"checked", Kind::Checked},
  };
  for (const auto& [name, kind] : ops) {
    exports.Set(name, Napi::Function::New(env, [kind = kind](const Napi::CallbackInfo& info) { return Submit(info, kind); }, name));
  }
  return exports;
}

NODE_API_MODULE(pleat_mpi, Init)
