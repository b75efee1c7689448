// NCCL through dlopen (nccl_api.h).
#include "nccl_api.h"

#include <dlfcn.h>

#include "../device/dl_symbols.h"

namespace pleat {
namespace nccl {

namespace {

Api* g_loaded = nullptr;

}  // namespace

std::string Api::error_text(const char* call, int code) const {
  const char* text = get_error_string != nullptr ? get_error_string(code) : nullptr;
  return std::string(call) + " failed: " + (text != nullptr ? text : "unknown error") + " (code " + std::to_string(code) + ")";
}

Api* load(const std::string& path, std::string* why) {
  if (g_loaded != nullptr) {
    if (g_loaded->path == path) return g_loaded;
    *why = "NCCL is already loaded from " + g_loaded->path + " in this process; cannot load " + path;
    return nullptr;
  }
  void* lib = open_library(path, why);
  if (lib == nullptr) return nullptr;
  auto* api = new Api();
  api->path = path;
  std::string missing;
  // Every entry point is resolved (no short-circuit) so that `why` lists all that are absent.
  bool ok = resolve_symbol(lib, "ncclGetVersion", &api->get_version, &missing);
  ok = resolve_symbol(lib, "ncclGetUniqueId", &api->get_unique_id, &missing) && ok;
  ok = resolve_symbol(lib, "ncclCommInitRank", &api->comm_init_rank, &missing) && ok;
  ok = resolve_symbol(lib, "ncclGroupStart", &api->group_start, &missing) && ok;
  ok = resolve_symbol(lib, "ncclGroupEnd", &api->group_end, &missing) && ok;
  ok = resolve_symbol(lib, "ncclAllReduce", &api->all_reduce, &missing) && ok;
  ok = resolve_symbol(lib, "ncclAllGather", &api->all_gather, &missing) && ok;
  ok = resolve_symbol(lib, "ncclReduceScatter", &api->reduce_scatter, &missing) && ok;
  ok = resolve_symbol(lib, "ncclReduce", &api->reduce, &missing) && ok;
  ok = resolve_symbol(lib, "ncclBroadcast", &api->broadcast, &missing) && ok;
  ok = resolve_symbol(lib, "ncclSend", &api->send, &missing) && ok;
  ok = resolve_symbol(lib, "ncclRecv", &api->recv, &missing) && ok;
  ok = resolve_symbol(lib, "ncclCommGetAsyncError", &api->comm_get_async_error, &missing) && ok;
  ok = resolve_symbol(lib, "ncclGetErrorString", &api->get_error_string, &missing) && ok;
  ok = resolve_symbol(lib, "ncclCommAbort", &api->comm_abort, &missing) && ok;
  ok = resolve_symbol(lib, "ncclCommDestroy", &api->comm_destroy, &missing) && ok;
  if (!ok) {
    *why = path + " lacks " + missing + " (pleat needs NCCL 2.7 or later: grouped send and receive)";
    delete api;
    dlclose(lib);
    return nullptr;
  }
  api->host_stream_synchronize = reinterpret_cast<int (*)(Stream)>(dlsym(lib, "pleatHostNcclStreamSynchronize"));
  api->host_stream_query = reinterpret_cast<int (*)(Stream)>(dlsym(lib, "pleatHostNcclStreamQuery"));
  if (api->get_version(&api->version) != kSuccess) api->version = 0;
  g_loaded = api;  // kept for the process: communicators hold it
  return api;
}

Api* loaded() { return g_loaded; }

}  // namespace nccl
}  // namespace pleat
