/**
 * CudaProbe: the `cuda` entry of `pleat doctor`: whether the CUDA addon (pleat_cuda.node) is
 * built and loads, whether a CUDA driver is installed (libcuda.so.1 in the folders
 * LibrarySearch lists), and what the CUDA runtime inside the addon reports: devices (each with
 * its name, memory and compute capability), runtime
 * and driver versions, or its error. Available means pleat can run its CUDA kernels here: the
 * addon loads and the runtime sees at least one device.
 */
import * as Addon from "../../native/Addon.js"
import * as Cuda from "../../native/Cuda.js"
import * as LibrarySearch from "../../native/LibrarySearch.js"

/**
 * The cuda entry.
 * @category models
 */
export interface CudaReport {
  /** Whether pleat_cuda.node was built (npm ci builds it wherever nvcc was found), device or not. */
  readonly built: boolean
  /** Whether CUDA kernels can run here: the addon loads and the runtime sees a device. */
  readonly available: boolean
  /** Why pleat cannot run CUDA kernels here, when it cannot. */
  readonly reason?: string
  readonly addon: "loads" | "not built" | "does not load"
  /** Usable devices the CUDA runtime reports (0 when the addon is unusable). */
  readonly devices: number
  /** Each device with its memory, as the runtime describes it (empty without one). */
  readonly gpus: Cuda.DeviceInfo["gpus"]
  /** The CUDA runtime version linked into the addon (13000 is 13.0), when it loads. */
  readonly runtimeVersion: number | null
  /** The installed driver's CUDA version (0: no driver), when the addon loads. */
  readonly driverVersion: number | null
  /** Every libcuda.so.1 found (the driver's library). */
  readonly driver: ReadonlyArray<string>
}

/**
 * Probes CUDA (never throws).
 * @category constructors
 */
export const probe = (dirs: ReadonlyArray<string>): CudaReport => {
  const driver = LibrarySearch.find(dirs, (name) => name === "libcuda.so.1")
  const status = Cuda.cudaStatus()
  const built = Addon.isBuilt("pleat_cuda")
  if (status.available) {
    const info = Cuda.deviceInfo()
    return {
      built,
      available: true,
      addon: "loads",
      devices: status.devices,
      gpus: info.gpus ?? [],
      runtimeVersion: info.runtimeVersion,
      driverVersion: info.driverVersion,
      driver,
    }
  }
  if (status.reason === "not built") {
    const addon = built ? "does not load" : "not built"
    const reason = addon === "not built" ? "pleat_cuda.node is not built (npm run build:native builds it where nvcc is found)" : status.detail
    return { built, available: false, reason, addon, devices: 0, gpus: [], runtimeVersion: null, driverVersion: null, driver }
  }
  const info = Cuda.deviceInfo()
  const noDriver = driver.length === 0 ? "; no CUDA driver (libcuda.so.1) found" : ""
  return {
    built,
    available: false,
    reason: `${status.detail}${noDriver}`,
    addon: "loads",
    devices: 0,
    gpus: [],
    runtimeVersion: info.runtimeVersion,
    driverVersion: info.driverVersion,
    driver,
  }
}
