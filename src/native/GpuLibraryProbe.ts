/**
 * GpuLibraryProbe: loads NCCL or cuBLAS by path (cuda/src/library_probe_binding.cc: dlopen,
 * dlsym of the entry points pleat uses, the library's own version query, dlclose), for `pleat
 * doctor`. Neither query needs a GPU.
 */
import { addonIfBuilt, type GpuLibraryProbe } from "./CpuAddon.js"

/**
 * The probe of the library at `path`; undefined when the CPU addon is not built or predates it.
 * @category kernels
 */
export const probe = (path: string, kind: "nccl" | "cublas", symbols: ReadonlyArray<string>): GpuLibraryProbe | undefined => {
  const loaded = addonIfBuilt()
  return loaded?.probeGpuLibrary?.(path, kind, symbols)
}

/**
 * A version code as text: NCCL's major * 10000 + minor * 100 + patch (major * 1000 + ... before
 * NCCL 2.9, codes under 10000), cuBLAS's the same as the probe returns it.
 * @category mapping
 */
export const versionText = (code: number): string => {
  const major = code >= 10000 ? Math.floor(code / 10000) : Math.floor(code / 1000)
  const minor = code >= 10000 ? Math.floor((code % 10000) / 100) : Math.floor((code % 1000) / 100)
  return `${major}.${minor}.${code % 100}`
}
