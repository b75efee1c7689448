/**
 * WriteFailure: a file system error met while a command writes its output (a full disk, a folder
 * removed or made read-only under it), said in one line instead of as an internal error.
 */

/**
 * The one-line account of `error` when it is a file system error (it carries an errno code),
 * else undefined (a fault of pleat's own, reported as such).
 * @category constructors
 */
export const describe = (error: unknown): string | undefined => {
  const code = (error as { readonly code?: unknown } | undefined)?.code
  if (typeof code !== "string" || !(error instanceof Error)) return undefined
  return error.message.replace(/\s+/g, " ").trim()
}
