// openblas: an optional side-by-side comparison for the tensor bench. The addon never links
// OpenBLAS; where libopenblas.so.0 happens to be installed it is dlopen'ed on first use and
// cblas_sgemm looked up. Nothing else in pleat depends on it.
#pragma once

#include <string>

#include "matmul.h"

namespace pleat {

struct OpenBlasStatus {
  bool available;
  std::string detail;  // the library path, or why it is unavailable (dlerror text)
};

// Loads the library once (thread-safe) and reports the result.
const OpenBlasStatus& openblas_status();

// Row-major cblas_sgemm for every batch entry (alpha 1, beta 0 or 1 when accumulating). False
// when unavailable or a size does not fit OpenBLAS's 32-bit ints.
bool openblas_sgemm(const GemmArgs& g);

// openblas_set_num_threads when the library exports it; false otherwise.
bool openblas_set_threads(int n);

}  // namespace pleat
