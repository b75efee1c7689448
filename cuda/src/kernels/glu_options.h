// The gated MLP activation's options (Megatron-Core's: GatedActivation.ts's Glu), as the CPU
// kernels (gated_activation.h) and the CUDA ones (gated_sinks_cuda.h) take them: the sigmoid's
// slope alpha, the linear half's offset, and the clamp `limit`, used only when `clamped`.
#pragma once

namespace pleat {

struct GluOptions {
  double alpha;
  double offset;
  double limit;
  bool clamped;
};

}  // namespace pleat
