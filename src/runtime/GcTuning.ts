/**
 * GcTuning: the V8 flags a pleat process trains under, given on node's command line.
 *
 * pleat's kernels run on a native pool with one thread per core while the main thread waits in
 * the call. V8's concurrent marking runs on helper threads of its own, and marking cycles are
 * frequent here (each step frees hundreds of MB of tensor storage, which V8 counts as external
 * memory pressure), so they take cores from the GEMMs. With `--no-concurrent-marking`, measured on
 * the 2-core development machine (bench/README.md, train suite), the default model trains at 768
 * tokens/s locally instead of 631 and at 326 instead of 262 on the threads backend, and the
 * realistic MoE shape's step drops from ~1.75 s to ~1.45 s. Marking still happens, incrementally
 * on the main thread, so dead tensors are freed later: the resident peak grows (3.6 -> 5.0 GiB at
 * the realistic shape) and the second step, the first to meet the grown heap, is slower.
 *
 * These are node flags, not NODE_OPTIONS (node refuses them there) nor `v8.setFlagsFromString`
 * (after start-up concurrent marking keeps running): the `pleat` executable's `#!/usr/bin/env -S
 * node ...` line, `npm start`, `npm run bench` and `pleat launch`'s rank command carry them (a
 * property keeps them equal to `nodeFlags`); worker threads share the process's flags. Run
 * `node dist/cli/main.js` to train with V8's defaults.
 */

/**
 * The node flags pleat runs with.
 * @category configuration
 */
export const nodeFlags: ReadonlyArray<string> = ["--no-concurrent-marking"]

/**
 * Whether this process runs with every flag of `nodeFlags`.
 * @category guards
 */
export const active = (execArgv: ReadonlyArray<string> = process.execArgv): boolean => nodeFlags.every((flag) => execArgv.includes(flag))
