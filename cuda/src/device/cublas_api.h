// cuBLAS, loaded at run time (dlopen): the few entry points pleat calls, declared here because
// the toolkit's cuBLAS headers are not where pleat builds (nvcc ships without them here) and the
// library is found on the GPU machine only (often in a Python environment's nvidia packages).
// Enum values are cublas_api.h's and library_types.h's.
#pragma once

#include <cuda_runtime.h>

#include <string>

namespace pleat {

namespace cublas {
constexpr int kSuccess = 0;
constexpr int kExecutionFailed = 13;  // CUBLAS_STATUS_EXECUTION_FAILED
constexpr int kOpN = 0;
constexpr int kOpT = 1;
constexpr int kR32F = 0;             // CUDA_R_32F
constexpr int kR16BF = 14;           // CUDA_R_16BF
constexpr int kCompute32FPedantic = 69;  // CUBLAS_COMPUTE_32F_PEDANTIC: fp32 products and sums, no TF32
constexpr int kCompute32F = 68;          // CUBLAS_COMPUTE_32F (bf16 inputs: tensor cores, fp32 accumulation)
constexpr int kGemmDefault = -1;         // CUBLAS_GEMM_DEFAULT
}  // namespace cublas

// The resolved entry points, and the library they came from.
struct CublasApi {
  using Handle = void*;
  int (*create)(Handle*) = nullptr;
  int (*destroy)(Handle) = nullptr;
  int (*set_stream)(Handle, cudaStream_t) = nullptr;
  int (*gemm_ex)(Handle, int transa, int transb, int m, int n, int k, const void* alpha, const void* a, int a_type, int lda, const void* b,
                 int b_type, int ldb, const void* beta, void* c, int c_type, int ldc, int compute, int algo) = nullptr;
  std::string path;
  Handle handle = nullptr;
};

// Loads cuBLAS from `path` (a file, or a name dlopen searches for) once per process and makes
// its handle; later calls return the loaded one whatever the path. Null with `why` set when the
// file does not load, lacks an entry point, or the handle cannot be made.
CublasApi* load_cublas(const std::string& path, std::string* why);

// The loaded cuBLAS, or null when load_cublas has not succeeded.
CublasApi* loaded_cublas();

// Row-major C[m, n] = A[m, k] B[k, n] on `stream` (column-major cuBLAS computes C^T = B^T A^T).
// `bf16`: A and B hold bfloat16 (uint16) values, products on tensor cores with fp32
// accumulation; else float32 with fp32 (pedantic: no TF32) arithmetic. Returns the cuBLAS status.
int gemm_row_major(CublasApi* api, cudaStream_t stream, bool bf16, const void* a, const void* b, float* c, int m, int n, int k);

// Row-major C[m, n] = op(A) op(B) + beta * C on `stream`, op(A) [m, k] and op(B) [k, n]: A is
// stored [m, k], or [k, m] when `trans_a` (op(A) is then its transpose); B is stored [k, n], or
// [n, k] when `trans_b`. Operands as gemm_row_major's; C float32. What a layer's backward needs
// (the input gradient X W^T, the weight gradient X^T G). k = 0 is an empty sum (C = beta * C,
// zeros for beta 0); an empty C does nothing. Returns the cuBLAS status.
int gemm_row_major_ex(CublasApi* api, cudaStream_t stream, bool bf16, bool trans_a, bool trans_b, const void* a, const void* b, float* c, int m, int n,
                      int k, float beta);

}  // namespace pleat
