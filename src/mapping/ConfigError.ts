/**
 * ConfigError moved to src/errors (the lowest layer, visible to every layer); this re-export keeps
 * the old import path compiling until its last users move.
 * @deprecated import from "../errors/ConfigError.js"
 */
export * from "../errors/ConfigError.js"
