/**
 * pleat/errors: ConfigError, the typed error every check of a user's input raises (field, value,
 * reason, fix).
 */
export * as ConfigError from "./ConfigError.js"
