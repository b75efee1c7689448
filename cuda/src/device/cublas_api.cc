// cuBLAS through dlopen (cublas_api.h).
#include "cublas_api.h"

#include <dlfcn.h>

#include "dl_symbols.h"

namespace pleat {

namespace {

CublasApi* g_loaded = nullptr;

}  // namespace

CublasApi* load_cublas(const std::string& path, std::string* why) {
  if (g_loaded != nullptr) return g_loaded;
  void* lib = open_library(path, why);
  if (lib == nullptr) return nullptr;
  auto* api = new CublasApi();
  api->path = path;
  std::string missing;
  bool ok = resolve_symbol(lib, "cublasCreate_v2", &api->create, &missing);
  ok = resolve_symbol(lib, "cublasDestroy_v2", &api->destroy, &missing) && ok;
  ok = resolve_symbol(lib, "cublasSetStream_v2", &api->set_stream, &missing) && ok;
  ok = resolve_symbol(lib, "cublasGemmEx", &api->gemm_ex, &missing) && ok;
  if (!ok) {
    *why = path + " lacks " + missing;
    delete api;
    dlclose(lib);
    return nullptr;
  }
  const int made = api->create(&api->handle);
  if (made != cublas::kSuccess) {
    *why = path + ": cublasCreate failed with status " + std::to_string(made);
    delete api;
    dlclose(lib);
    return nullptr;
  }
  g_loaded = api;  // kept for the process: the handle lives as long as the addon
  return api;
}

CublasApi* loaded_cublas() { return g_loaded; }

int gemm_row_major(CublasApi* api, cudaStream_t stream, bool bf16, const void* a, const void* b, float* c, int m, int n, int k) {
  return gemm_row_major_ex(api, stream, bf16, false, false, a, b, c, m, n, k, 0.0f);
}

int gemm_row_major_ex(CublasApi* api, cudaStream_t stream, bool bf16, bool trans_a, bool trans_b, const void* a, const void* b, float* c, int m, int n,
                      int k, float beta) {
  if (m == 0 || n == 0) return cublas::kSuccess;  // C is empty
  if (k == 0 && (beta == 0.0f || beta == 1.0f)) {
    // An empty sum: C = beta * C. (cuBLAS rejects the leading dimension 0 an operand of k
    // columns has, even though it reads nothing.)
    if (beta == 1.0f) return cublas::kSuccess;
    return cudaMemsetAsync(c, 0, static_cast<size_t>(m) * static_cast<size_t>(n) * sizeof(float), stream) == cudaSuccess ? cublas::kSuccess
                                                                                                                        : cublas::kExecutionFailed;
  }
  const int set = api->set_stream(api->handle, stream);
  if (set != cublas::kSuccess) return set;
  const float alpha = 1.0f;
  const int type = bf16 ? cublas::kR16BF : cublas::kR32F;
  const int compute = bf16 ? cublas::kCompute32F : cublas::kCompute32FPedantic;
  // Column-major view: C^T[n, m] = op(B)^T[n, k] op(A)^T[k, m]. A row-major array of r rows and
  // c columns reads as its transpose with leading dimension c, so op(B)^T is B as stored ([k, n]:
  // no op, ld n) or its transpose ([n, k] stored: op T, ld k); op(A)^T likewise (ld k, or op T
  // with ld m).
  // Leading dimensions are at least 1, as cuBLAS requires of every operand.
  const auto ld = [](int x) { return x > 1 ? x : 1; };
  return api->gemm_ex(api->handle, trans_b ? cublas::kOpT : cublas::kOpN, trans_a ? cublas::kOpT : cublas::kOpN, n, m, k, &alpha, b, type,
                      ld(trans_b ? k : n), a, type, ld(trans_a ? m : k), &beta, c, cublas::kR32F, ld(n), compute, cublas::kGemmDefault);
}

}  // namespace pleat
