/**
 * LibrarySearch: where `pleat doctor` looks for the GPU libraries (the CUDA driver, cuBLAS,
 * NCCL), without loading any of them. The folders, in order:
 *
 *   1. each folder of LD_LIBRARY_PATH;
 *   2. the folders the dynamic loader is configured with (/etc/ld.so.conf.d/*.conf);
 *   3. the system folders: /lib/x86_64-linux-gnu, /usr/lib/x86_64-linux-gnu, /usr/lib64,
 *      /usr/lib, /usr/local/lib, /usr/local/nvidia/lib64 (containers), /usr/lib/wsl/lib (WSL);
 *   4. CUDA: $CUDA_HOME/lib64, $CUDA_PATH/lib64, /usr/local/cuda/lib64,
 *      /usr/local/cuda/targets/x86_64-linux/lib;
 *   5. NVIDIA's Python wheels (nvidia-nccl-cu13, nvidia-cublas, ...): site-packages/nvidia/X/lib
 *      (and dist-packages) of every Python environment found: the parent of each PATH folder
 *      holding a `python3` or `python`, $VIRTUAL_ENV, $CONDA_PREFIX, and ~/.local.
 *
 * Only folders that exist are kept, each once. A library is reported by every path where a
 * file of a matching name exists, so a user sees every copy the loader could pick.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs"
import path from "node:path"

type Env = NodeJS.ProcessEnv

const systemDirs = ["/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib", "/usr/local/lib", "/usr/local/nvidia/lib64", "/usr/lib/wsl/lib"]

const entries = (dir: string): ReadonlyArray<string> => {
  try {
    return readdirSync(dir)
  } catch {
    return []
  }
}

const isDir = (dir: string): boolean => {
  try {
    return statSync(dir).isDirectory()
  } catch {
    return false
  }
}

const split = (value: string | undefined): ReadonlyArray<string> => (value ?? "").split(path.delimiter).filter((d) => d !== "")

/** The absolute folders listed in the loader's configuration files (comments and includes skipped). */
const loaderConfigDirs = (): ReadonlyArray<string> =>
  entries("/etc/ld.so.conf.d")
    .filter((name) => name.endsWith(".conf"))
    .flatMap((name) => {
      try {
        return readFileSync(path.join("/etc/ld.so.conf.d", name), "utf8").split("\n")
      } catch {
        return []
      }
    })
    .map((line) => line.trim())
    .filter((line) => line.startsWith("/"))

const cudaDirs = (env: Env): ReadonlyArray<string> => [
  ...[env.CUDA_HOME, env.CUDA_PATH].filter((d): d is string => d !== undefined && d !== "").map((d) => path.join(d, "lib64")),
  "/usr/local/cuda/lib64",
  "/usr/local/cuda/targets/x86_64-linux/lib",
]

/** The roots of the Python environments this process can see. */
const pythonRoots = (env: Env): ReadonlyArray<string> => {
  const onPath = split(env.PATH)
    .filter((dir) => existsSync(path.join(dir, "python3")) || existsSync(path.join(dir, "python")))
    .map((dir) => path.dirname(dir))
  const named = [env.VIRTUAL_ENV, env.CONDA_PREFIX, env.HOME === undefined ? undefined : path.join(env.HOME, ".local")]
  return [...onPath, ...named.filter((d): d is string => d !== undefined && d !== "")]
}

/** site-packages/nvidia/X/lib of an environment root, for every Python version and X. */
const nvidiaWheelDirs = (root: string): ReadonlyArray<string> =>
  ["lib", "lib64"].flatMap((lib) =>
    entries(path.join(root, lib))
      .filter((name) => /^python3(\.\d+)?$/.test(name))
      .flatMap((python) => ["site-packages", "dist-packages"].map((packages) => path.join(root, lib, python, packages, "nvidia")))
      .flatMap((nvidia) => entries(nvidia).map((name) => path.join(nvidia, name, "lib"))),
  )

const unique = (dirs: ReadonlyArray<string>): ReadonlyArray<string> => [...new Set(dirs.map((d) => path.resolve(d)))].filter(isDir)

/**
 * The folders searched, in order (only those that exist, each once).
 * @category constructors
 */
export const searchDirs = (env: Env): ReadonlyArray<string> =>
  unique([...split(env.LD_LIBRARY_PATH), ...loaderConfigDirs(), ...systemDirs, ...cudaDirs(env), ...pythonRoots(env).flatMap(nvidiaWheelDirs)])

/**
 * Every file in `dirs` whose name `matches`, in the order of `dirs`.
 * @category constructors
 */
export const find = (dirs: ReadonlyArray<string>, matches: (name: string) => boolean): ReadonlyArray<string> =>
  dirs.flatMap((dir) =>
    entries(dir)
      .filter(matches)
      .map((name) => path.join(dir, name)),
  )
