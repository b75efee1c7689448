// The Node-API binding of the MoE dispatch kernels (dispatch plan, fused permute / unpermute) (kernels/dispatch.h).
#include "dispatch_binding.h"

namespace pleat {

void RegisterDispatchExports(Napi::Env env, Napi::Object exports) {
  (void)env;
  (void)exports;
}

}  // namespace pleat
