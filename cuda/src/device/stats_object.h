// The JS object of an allocator's counters, shared by the simulated-device binding (pleat_cpu)
// and the CUDA one (pleat_cuda): { allocatedBytes, reservedBytes, peakAllocatedBytes, segments,
// deviceAllocations, deviceReleases, pendingBlocks }.
#pragma once

#include <napi.h>

#include "caching_allocator.h"

namespace pleat {
namespace device {

inline Napi::Object stats_object(Napi::Env env, const AllocatorStats& s) {
  Napi::Object o = Napi::Object::New(env);
  const auto put = [&](const char* key, size_t v) { o.Set(key, Napi::Number::New(env, static_cast<double>(v))); };
  put("allocatedBytes", s.allocated_bytes);
  put("reservedBytes", s.reserved_bytes);
  put("peakAllocatedBytes", s.peak_allocated_bytes);
  put("segments", s.segments);
  put("deviceAllocations", s.device_allocations);
  put("deviceReleases", s.device_releases);
  put("pendingBlocks", s.pending_blocks);
  return o;
}

}  // namespace device
}  // namespace pleat
