// openblas (see openblas.h).
#include "openblas.h"

#include <dlfcn.h>

#include <climits>

namespace pleat {

namespace {

// cblas.h values (fixed by the CBLAS standard), declared here so no header is needed.
constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112;

using SgemmFn = void (*)(int order, int trans_a, int trans_b, int m, int n, int k, float alpha,
                         const float* a, int lda, const float* b, int ldb, float beta, float* c,
                         int ldc);
using SetThreadsFn = void (*)(int);

struct Loaded {
  OpenBlasStatus status{false, ""};
  SgemmFn sgemm = nullptr;
  SetThreadsFn set_threads = nullptr;
};

const Loaded& loaded() {
  static const Loaded l = [] {
    Loaded r;
    const char* name = "libopenblas.so.0";
    void* h = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (h == nullptr) {
      const char* e = dlerror();
      r.status.detail = e != nullptr ? e : "dlopen failed";
      return r;
    }
    // The handle is kept for the life of the process: the function pointers live in it.
    r.sgemm = reinterpret_cast<SgemmFn>(dlsym(h, "cblas_sgemm"));
    r.set_threads = reinterpret_cast<SetThreadsFn>(dlsym(h, "openblas_set_num_threads"));
    if (r.sgemm == nullptr) {
      r.status.detail = std::string(name) + " has no cblas_sgemm";
      return r;
    }
    r.status = OpenBlasStatus{true, name};
    return r;
  }();
  return l;
}

}  // namespace

const OpenBlasStatus& openblas_status() { return loaded().status; }

bool openblas_sgemm(const GemmArgs& g) {
  const Loaded& l = loaded();
  if (l.sgemm == nullptr) return false;
  if (g.m > INT_MAX || g.n > INT_MAX || g.k > INT_MAX) return false;
  const int m = static_cast<int>(g.m), n = static_cast<int>(g.n), k = static_cast<int>(g.k);
  const int lda = g.trans_a ? m : k, ldb = g.trans_b ? k : n;
  for (size_t b = 0; b < g.batch; ++b) {
    l.sgemm(kRowMajor, g.trans_a ? kTrans : kNoTrans, g.trans_b ? kTrans : kNoTrans, m, n, k, 1.0f,
            g.a + b * g.stride_a, lda > 0 ? lda : 1, g.b + b * g.stride_b, ldb > 0 ? ldb : 1,
            g.accumulate ? 1.0f : 0.0f, g.out + b * g.m * g.n, n > 0 ? n : 1);
  }
  return true;
}

bool openblas_set_threads(int n) {
  const Loaded& l = loaded();
  if (l.set_threads == nullptr) return false;
  l.set_threads(n);
  return true;
}

}  // namespace pleat
