// Registers probeGpuLibrary on pleat_cpu.node's exports (library_probe_binding.cc): loads a GPU
// library (NCCL, cuBLAS) by path, lists the entry points pleat uses that it lacks, and asks its
// version, for `pleat doctor`.
#pragma once

#include <napi.h>

namespace pleat {
void RegisterLibraryProbeExports(Napi::Env env, Napi::Object exports);
}  // namespace pleat
