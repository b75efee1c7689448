// CudaBackend (see cuda_backend.h). Failures are reported the allocator's way: allocate returns
// nullptr, an event that cannot be recorded counts as done only once the device is idle (the
// safe answer), and errors are cleared so they do not surface in an unrelated later call.
#include "cuda_backend.h"

namespace pleat {
namespace device {

CudaBackend::~CudaBackend() {
  for (auto& [id, e] : events_) (void)cudaEventDestroy(e);
  for (cudaEvent_t e : spare_events_) (void)cudaEventDestroy(e);
  for (auto& [n, s] : streams_) (void)cudaStreamDestroy(s);
}

void* CudaBackend::allocate(size_t bytes) {
  void* ptr = nullptr;
  if (cudaSetDevice(device_) != cudaSuccess || cudaMalloc(&ptr, bytes) != cudaSuccess) {
    (void)cudaGetLastError();
    return nullptr;
  }
  return ptr;
}

void CudaBackend::release(void* ptr) {
  // cudaFree waits for the device's work on the memory; the allocator only releases segments
  // that hold no live or pending block.
  (void)cudaFree(ptr);
}

cudaStream_t CudaBackend::stream(int number) {
  const auto it = streams_.find(number);
  if (it != streams_.end()) return it->second;
  cudaStream_t s = nullptr;
  // A stream belongs to the device current when it is made: this backend's, whatever the thread's.
  if (cudaSetDevice(device_) != cudaSuccess || cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking) != cudaSuccess) {
    (void)cudaGetLastError();
    return nullptr;
  }
  streams_[number] = s;
  return s;
}

uint64_t CudaBackend::record_event(int number) {
  cudaEvent_t e = nullptr;
  if (!spare_events_.empty()) {
    e = spare_events_.back();
    spare_events_.pop_back();
  } else if (cudaEventCreateWithFlags(&e, cudaEventDisableTiming) != cudaSuccess) {
    (void)cudaGetLastError();
    (void)cudaDeviceSynchronize();  // no event: make every queued use finish now instead
    e = nullptr;
  }
  if (e != nullptr && cudaEventRecord(e, stream(number)) != cudaSuccess) {
    (void)cudaGetLastError();
    (void)cudaDeviceSynchronize();
  }
  const uint64_t id = next_event_++;
  events_[id] = e;
  return id;
}

bool CudaBackend::event_done(uint64_t event) {
  const auto it = events_.find(event);
  if (it == events_.end() || it->second == nullptr) return true;  // synchronised when recorded
  const cudaError_t state = cudaEventQuery(it->second);
  if (state == cudaErrorNotReady) {
    (void)cudaGetLastError();
    return false;
  }
  (void)cudaGetLastError();
  return true;
}

void CudaBackend::destroy_event(uint64_t event) {
  const auto it = events_.find(event);
  if (it == events_.end()) return;
  if (it->second != nullptr) spare_events_.push_back(it->second);
  events_.erase(it);
}

}  // namespace device
}  // namespace pleat
