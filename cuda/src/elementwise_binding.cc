// The Node-API binding of the element-wise kernels (binary ops with broadcasting, scale) (kernels/elementwise.h).
#include "elementwise_binding.h"

namespace pleat {

void RegisterElementwiseExports(Napi::Env env, Napi::Object exports) {
  (void)env;
  (void)exports;
}

}  // namespace pleat
