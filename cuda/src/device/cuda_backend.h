// CudaBackend: the caching allocator's DeviceBackend on a CUDA device (cudaMalloc / cudaFree,
// events without timing), and the rank's streams by number (0: the compute stream, then one
// per collective group), each created on first use as a non-blocking stream (never ordered
// behind the legacy default stream). One backend per process and device; calls come from the rank's thread.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <unordered_map>
#include <vector>

#include "caching_allocator.h"

namespace pleat {
namespace device {

class CudaBackend : public DeviceBackend {
 public:
  explicit CudaBackend(int device) : device_(device) {}
  ~CudaBackend() override;

  void* allocate(size_t bytes) override;
  void release(void* ptr) override;
  uint64_t record_event(int stream) override;
  bool event_done(uint64_t event) override;
  void destroy_event(uint64_t event) override;

  // The CUDA stream of stream number `stream` (created on first use); nullptr when creation failed.
  cudaStream_t stream(int stream);
  int device() const { return device_; }

 private:
  int device_;
  std::unordered_map<int, cudaStream_t> streams_;
  std::unordered_map<uint64_t, cudaEvent_t> events_;
  std::vector<cudaEvent_t> spare_events_;
  uint64_t next_event_ = 1;
};

}  // namespace device
}  // namespace pleat
