/**
 * CublasLibrary: where cuBLAS is looked for, as `pleat doctor` reports it: $PLEAT_CUBLAS_LIB
 * (the file), then libcublas.so* in LibrarySearch's folders (the loader's, CUDA's, the Python
 * environments' nvidia wheels), then the names the dynamic loader resolves on its own.
 */
import path from "node:path"
import * as LibrarySearch from "./LibrarySearch.js"

const cublasName = /^libcublas(Lt)?\.so(\.\d+)*$/

/**
 * libcublas.so* and libcublasLt.so* files in `dirs`, in order.
 * @category constructors
 */
export const files = (dirs: ReadonlyArray<string>): ReadonlyArray<string> => LibrarySearch.find(dirs, (name) => cublasName.test(name))

/**
 * What to dlopen, in order: the override, the cuBLAS files found (not cuBLASLt), then bare
 * names for the loader.
 * @category constructors
 */
export const candidates = (env: NodeJS.ProcessEnv): ReadonlyArray<string> => [
  ...(env.PLEAT_CUBLAS_LIB === undefined || env.PLEAT_CUBLAS_LIB === "" ? [] : [env.PLEAT_CUBLAS_LIB]),
  ...files(LibrarySearch.searchDirs(env)).filter((f) => !path.basename(f).startsWith("libcublasLt")),
  "libcublas.so.13",
  "libcublas.so.12",
  "libcublas.so",
]
