/**
 * pleat/testing: what pleat proves about itself, for users proving things about their own
 * models: fast-check arbitraries of valid mappings, routing cases and pipeline schedules, the
 * check that a rank program under any mapping equals the same program on one rank
 * (EqualsOneRank), and the same for a whole model trained in lockstep (ModelEqualsOneRank).
 *
 *   import { EqualsOneRank, Mappings } from "pleat/testing"
 *   await EqualsOneRank.check({ module: import.meta.url, export: "myBlock", mappings: Mappings.mappings({ maxWorld: 8 }) })
 *
 * @module pleat/testing
 */
export * as EqualsOneRank from "./EqualsOneRank.js"
export * as Mappings from "./Mappings.js"
export * as ModelEqualsOneRank from "./ModelEqualsOneRank.js"
export * as Routing from "./Routing.js"
export * as Runs from "./Runs.js"
export * as Schedules from "./Schedules.js"
