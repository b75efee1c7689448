/**
 * pleat/model: the blocks models are made of (attention and feed-forward operators, embedding,
 * output head), the model context a rank builds them in, what selective recompute recomputes,
 * and the Mixtral-like model.
 */
export * as Block from "./Block.js"
export * as Embedding from "./Embedding.js"
export * as Head from "./Head.js"
export * as Mixtral from "./Mixtral.js"
export * as ModelContext from "./ModelContext.js"
export * as ModelLayouts from "./ModelLayouts.js"
export * as MoeStats from "./MoeStats.js"
export * as RecomputeModules from "./RecomputeModules.js"
