// Error checks for CUDA runtime calls in the binding (llm.c's cudaCheck, minus exit()).
//
// A library must not exit the process, so a failed call returns a CudaStatus naming the call,
// the error code and name, its message and the file:line; the binding turns it into a JS Error.
#pragma once

#include <cuda_runtime.h>

#include <cstring>
#include <string>

namespace pleat {

struct CudaStatus {
  bool ok = true;
  std::string message;  // empty when ok
};

// "cuda/src/cuda_binding.cc" instead of the absolute path the build passes in __FILE__.
inline const char* short_path(const char* file) {
  const char* p = std::strstr(file, "cuda/src/");
  return p != nullptr ? p : file;
}

inline CudaStatus cuda_failure(const char* call, cudaError_t err, const char* file, int line) {
  CudaStatus s;
  s.ok = false;
  s.message = std::string(call) + " failed: " + cudaGetErrorName(err) + " (" +
              std::to_string(static_cast<int>(err)) + "): " + cudaGetErrorString(err) + " at " +
              short_path(file) + ":" + std::to_string(line);
  return s;
}

}  // namespace pleat

// Use inside a function returning pleat::CudaStatus.
#define PLEAT_CUDA_CHECK(call)                                            \
  do {                                                                    \
    const cudaError_t pleat_err_ = (call);                                \
    if (pleat_err_ != cudaSuccess) {                                      \
      return ::pleat::cuda_failure(#call, pleat_err_, __FILE__, __LINE__); \
    }                                                                     \
  } while (0)
