/**
 * ProcessGpu: the GPU a process computes on when one process runs per GPU (mpirun, srun,
 * `pleat launch`): the launcher's local rank modulo the GPUs CUDA sees, selected before the
 * process's first device allocation (what the NCCL backend's communicators and `--device cuda`'s
 * tensors then use). A process that no launcher started has local rank 0: device 0.
 */
import * as Cuda from "../native/Cuda.js"
import { cudaArrays } from "../native/CudaArrays.js"
import * as Launcher from "./Launcher.js"

/**
 * Selects this process's GPU; returns its index, or undefined without a GPU or the CUDA addon
 * (whoever needs one then says so).
 * @category constructors
 */
export const select = (env: NodeJS.ProcessEnv = process.env): number | undefined => {
  const status = Cuda.cudaStatus()
  const arrays = cudaArrays()
  if (!status.available || "why" in arrays) return undefined
  const device = Launcher.fromEnvironment(env).localRank % status.devices
  arrays.addon.deviceSelect(device)
  return device
}
