/**
 * WorkerFlags: the node flags a rank worker starts with.
 *
 * Given no `execArgv`, a worker inherits its parent's flags, V8 and process-wide options
 * included (those are the process's anyway). Given a list, node refuses every such option in it
 * (ERR_WORKER_INVALID_EXEC_ARGV): `node --max-old-space-size=8192 dist/cli/main.js train
 * --backend threads` (or --expose-gc, --stack-size, --perf-basic-prof) failed to start its
 * workers with an internal error. So a worker inherits, except where the parent loaded tsx
 * through its flags (`--import tsx`, as vitest and `node --import tsx` do): such a worker
 * registers tsx itself after preloading Effect (Pool.ts), so it gets the parent's flags without
 * the loader and without those workers refuse.
 */

/**
 * A flag with the separate values that follow it (`--import tsx`, `--stack-size=984`).
 * @category models
 */
export type FlagGroup = ReadonlyArray<string>

/**
 * The flags in `argv`, each with the words after it that do not start with "-".
 * @category mapping
 */
export const groups = (argv: ReadonlyArray<string>): Array<FlagGroup> => {
  const out: Array<Array<string>> = []
  for (const word of argv) {
    const last = out[out.length - 1]
    if (word.startsWith("-") || last === undefined) out.push([word])
    else last.push(word)
  }
  return out
}

const loaderFlag = /^(--import|--loader|--experimental-loader|--require|-r)(=|$)/

/**
 * Whether a flag group loads tsx (the worker registers it itself).
 * @category guards
 */
export const loadsTsx = (group: FlagGroup): boolean => loaderFlag.test(group[0] ?? "") && group.some((word) => /tsx/.test(word))

/**
 * The `execArgv` of a rank worker whose parent runs with `argv`: undefined (inherit everything)
 * unless the parent loads tsx through its flags; then the parent's flag groups, in order,
 * without the tsx loaders and without those `refused` says a worker refuses.
 * @category mapping
 */
export const forWorker = (argv: ReadonlyArray<string>, refused: (group: FlagGroup) => boolean): ReadonlyArray<string> | undefined => {
  const all = groups(argv)
  if (!all.some(loadsTsx)) return undefined
  return all.filter((group) => !loadsTsx(group) && !refused(group)).flat()
}
