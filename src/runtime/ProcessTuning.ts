/**
 * ProcessTuning: the node flags and the environment a pleat process trains under. Both must be
 * in place when node starts, so they sit where node is started: the `pleat` executable's
 * `#!/usr/bin/env -S ...` line (with `shebangFlags`), `npm start`, `npm run bench` and `pleat
 * launch`'s rank command (a property keeps them equal to `nodeFlags` and `environment`). Worker threads share the
 * process's. Run `node dist/cli/main.js ...` to train with node's and glibc's defaults.
 *
 * `--no-concurrent-marking`: pleat's kernels run on a native pool with one thread per core while
 * the main thread waits in the call. V8's concurrent marking runs on helper threads of its own,
 * and marking cycles are frequent here (each step frees hundreds of MB of tensor storage, which
 * V8 counts as external memory pressure), so they take cores from the GEMMs. Measured on the
 * 2-core development machine in interleaved runs (bench/README.md, train suite): the realistic
 * MoE shape's steady step drops from ~1.90 s to ~1.57-1.72 s; the default model's tokens/s do not
 * change beyond noise. The price: marking runs incrementally on the main thread, so dead tensors
 * are freed later and the resident peak grows (3.6 -> 5.0 GiB at the realistic shape); a loop
 * that stays in native code for many large calls (bench moe's first case) keeps faulting in
 * fresh memory for its first ~20 calls (permute + unpermute at 0.08 of memcpy there, 0.60 without
 * the flag); the MoE dispatcher's steady state gains (all-to-all dispatch + combine 0.16-0.24 of
 * its ceiling against 0.10).
 * Node refuses it in NODE_OPTIONS, and `v8.setFlagsFromString` after start-up leaves concurrent
 * marking tasks running, so it is a command-line flag.
 *
 * `--initial-old-space-size=128`: V8 starts a mark-compact when the old generation outgrows a
 * limit it derives from what the last one left alive; a training process keeps ~20-30 MB of
 * objects alive (parameters' wrappers, tapes, fibers), so the limit sat a few MB above that and
 * every micro-batch's tape objects promoted by a scavenge started the next cycle: at hidden 1024
 * (once tensor storage stopped counting as new external memory, StorageRecycler) one
 * mark-compact every ~1.3 steps, ~25 ms of marking on the main thread each. Starting the limit at
 * 128 MB: over 40 steps, mark-compacts 24 -> 6 and their marking 575 -> 119 ms (hidden 256:
 * 3 -> 1, 72 -> 20 ms), for up to ~100 MB more resident JavaScript heap per isolate (each worker
 * thread has its own). It is not on the `pleat` executable's `#!` line: Linux before 5.1 (RHEL 8's
 * 4.18, among others) cuts a `#!` line at 127 bytes, and the line with it is 139 (`shebangFlags`);
 * `npm start`, `npm run bench` and `pleat launch` carry it.
 *
 * `GLIBC_TUNABLES=glibc.malloc.hugetlb=1` (glibc 2.35+; older ones ignore it): malloc advises
 * transparent huge pages for the heap, so tensor memory is faulted in 2 MiB at a time instead of
 * 4 KiB (a fault costs ~7 us on these VMs; the addon already keeps freed memory, see
 * cuda/src/binding.cc). The realistic shape's first step takes ~3.8 s instead of ~7.9 s, its
 * second ~3.3 s instead of ~5.1 s, an 8-step run 24 s instead of 28 s, for ~5% more resident
 * memory. It replaces a GLIBC_TUNABLES the caller set.
 *
 * `glibc.malloc.arena_max=1`: every thread allocates from the main arena. glibc gives each
 * thread that allocates (the threads backend's workers) an arena of its own, made of 64 MiB heaps
 * that it unmaps as soon as a whole heap is free, whatever the trim threshold, and a block larger
 * than a heap cannot come from one at all (the addon turns mmap off, cuda/src/binding.cc), so a
 * worker's tensor memory went back to the kernel step after step and was faulted in afresh: an
 * elementwise product into a fresh 11 MiB output took 5-10 ms against 0.3 ms into reused memory,
 * and a worker of the realistic shape on tp 2 spent ~120 ms a step in elementwise kernels that
 * take 8 ms on one rank. With one arena a worker reuses freed memory as the main thread does:
 * the realistic shape on 2 ranks of the threads backend went from ~550 to ~765 tokens/s (tp 2)
 * and ~600 to ~840 (ep 2) in interleaved runs, one rank 830 to 866. The lock is uncontended: a
 * process has a few threads and allocates few, large blocks.
 */

/**
 * The node flags pleat runs with.
 * @category configuration
 */
export const nodeFlags: ReadonlyArray<string> = ["--no-concurrent-marking", "--initial-old-space-size=128"]

/**
 * The node flags of the `pleat` executable's `#!` line: those of `nodeFlags` that fit in 127 bytes
 * with the environment (see above).
 * @category configuration
 */
export const shebangFlags: ReadonlyArray<string> = ["--no-concurrent-marking"]

/**
 * The environment pleat runs with, as NAME=VALUE words for `env`.
 * @category configuration
 */
export const environment: ReadonlyArray<string> = ["GLIBC_TUNABLES=glibc.malloc.hugetlb=1:glibc.malloc.arena_max=1"]

/**
 * Whether this process runs with every flag of `nodeFlags`.
 * @category guards
 */
export const active = (execArgv: ReadonlyArray<string> = process.execArgv): boolean => nodeFlags.every((flag) => execArgv.includes(flag))
