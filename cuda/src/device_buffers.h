// Device buffers freed with their holder (blocks of the caching allocator on one stream: the
// device timings of scripts/device-check, and the NCCL backend's staged arrays), and the event
// timing of device_timing_binding.cc and moe_layer_timing.cc: data that stays on the GPU, so what
// is timed is the kernels and not the PCIe.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>
#include <vector>

#include "device_memory_binding.h"

namespace pleat {

// Device buffers of one holder on stream `stream`, freed with it (on the thread that destroys it:
// the allocator's calls come from the JS thread).
class DeviceBuffers {
 public:
  explicit DeviceBuffers(DeviceMemory* m, int stream = 0) : m_(m), stream_(stream) {}
  ~DeviceBuffers() {
    for (void* p : blocks_) m_->allocator.free(p);
  }
  template <typename T>
  T* make(size_t count, const T* from = nullptr) {
    void* p = m_->allocator.allocate(std::max<size_t>(count, 1) * sizeof(T), stream_);
    if (p == nullptr) return nullptr;
    blocks_.push_back(p);
    if (from != nullptr && count > 0) {
      // On the holder's stream and waited for: a plain cudaMemcpy from pageable memory runs on
      // the legacy default stream, which does not order with pleat's non-blocking streams, and
      // may return before the data reaches the device.
      cudaStream_t s = m_->backend.stream(stream_);
      if (s == nullptr || cudaMemcpyAsync(p, from, count * sizeof(T), cudaMemcpyHostToDevice, s) != cudaSuccess || cudaStreamSynchronize(s) != cudaSuccess)
        return nullptr;
    }
    return static_cast<T*>(p);
  }

 private:
  DeviceMemory* m_;
  int stream_;
  std::vector<void*> blocks_;
};

// Mean milliseconds of `reps` runs of `launch` on `s` after 3 untimed ones.
template <typename F>
inline cudaError_t mean_ms(cudaStream_t s, int reps, F launch, double* ms) {
  for (int i = 0; i < 3; ++i)
    if (cudaError_t e = launch(); e != cudaSuccess) return e;
  cudaEvent_t start, stop;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  cudaEventRecord(start, s);
  cudaError_t e = cudaSuccess;
  for (int i = 0; i < reps && e == cudaSuccess; ++i) e = launch();
  cudaEventRecord(stop, s);
  if (e == cudaSuccess) e = cudaEventSynchronize(stop);
  float elapsed = 0;
  if (e == cudaSuccess) e = cudaEventElapsedTime(&elapsed, start, stop);
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  *ms = static_cast<double>(elapsed) / reps;
  return e;
}

}  // namespace pleat
