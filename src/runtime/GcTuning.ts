/**
 * GcTuning: the V8 flags a pleat process trains under, given on node's command line.
 *
 * pleat's kernels run on a native pool with one thread per core while the main thread waits in
 * the call. V8's concurrent marking runs on helper threads of its own, and marking cycles are
 * frequent here (each step frees hundreds of MB of tensor storage, which V8 counts as external
 * memory pressure). With `--no-concurrent-marking`, measured on the 2-core development machine in
 * interleaved runs (bench/README.md, train suite), the realistic MoE shape's steady step drops
 * from ~1.90 s to ~1.57-1.72 s (its GEMMs run faster: fewer threads compete for the two cores);
 * the default model's tokens/s do not change beyond noise. The price: marking runs incrementally
 * on the main thread, so dead tensors are freed later, the resident peak grows (3.6 -> 5.0 GiB at
 * the realistic shape) and the second step, the first to meet the grown heap, takes 3-4 s longer.
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
