/**
 * Optimizer: AdamW with float32 state, a learning rate with linear warmup and a decay
 * (LrSchedule: cosine by default; linear, constant, WSD, inverse square root), and gradient
 * clipping by the global norm.
 *
 *   lr(k)   = LrSchedule.learningRate (k the 0-based step)
 *   clip    = min(1, maxNorm / (norm + 1e-6))                      (1 when maxNorm is 0: no clipping)
 *   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;  step t (from 1)
 *   w -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps) + lr * wd * w   (no decay on norms and biases)
 * Every replica of a shard sees the same synchronised gradient, so every replica stays equal.
 */
import * as ConfigError from "../errors/ConfigError.js"
import type * as DType from "../tensor/DType.js"
import * as AdamwInto from "../tensor/kernels/AdamwInto.js"
import * as LrSchedule from "./LrSchedule.js"
import type * as Params from "./Params.js"
import type * as RankParams from "./RankParams.js"

/**
 * Optimizer settings.
 * @category models
 */
export interface OptimizerConfig extends LrSchedule.Schedule {
  readonly lr: number
  readonly minLr: number
  readonly warmup: number
  readonly steps: number
  readonly beta1: number
  readonly beta2: number
  readonly eps: number
  readonly weightDecay: number
  readonly clip: number
}

/**
 * The hidden size the default learning rate was tuned at (the small model's).
 * @category configuration
 */
export const referenceHidden = 32

/**
 * The default peak learning rate of a model of width `hidden`: 3e-2 up to the small model's
 * width, then 3e-2 * 32 / hidden (muP's 1/width rule for AdamW on hidden matrices: each step
 * moves every weight by about lr, and a wider layer sums more of those moves). Measured on the
 * default model, 60 steps: at hidden 256, 3e-2 ends at loss 1.49 and 3.75e-3 (this rule) at
 * 0.21; at hidden 1024, 3e-2 diverges (loss 19 at step 20) and 9.4e-4 ends at 0.26; the
 * realistic MoE shape (hidden 1024, expert width 2816) went from ln(vocab) to 20-50 at 3e-2.
 * @category mapping
 */
export const defaultLr = (hidden: number): number => 3e-2 * Math.min(1, referenceHidden / hidden)

/**
 * Defaults that train a model of width `hidden` (the small model's by default): the peak
 * learning rate of `defaultLr`, decaying to a tenth of it.
 * @category constructors
 */
export const defaults = (steps: number, hidden: number = referenceHidden): OptimizerConfig => {
  const lr = defaultLr(hidden)
  return { lr, minLr: lr / 10, warmup: Math.max(1, Math.floor(steps / 10)), steps, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.01, clip: 1 }
}

/**
 * The settings a user may give (`pleat train --lr ...`), by their flag names; unset ones keep
 * `defaults`.
 * @category models
 */
export interface OptimizerOverrides {
  readonly lr?: number | undefined
  readonly "min-lr"?: number | undefined
  readonly "warmup-steps"?: number | undefined
  readonly "weight-decay"?: number | undefined
  readonly "clip-grad"?: number | undefined
  readonly "adam-beta1"?: number | undefined
  readonly "adam-beta2"?: number | undefined
  readonly "adam-eps"?: number | undefined
  readonly "lr-decay-style"?: (typeof LrSchedule.decayStyles)[number] | undefined
  readonly "lr-decay-steps"?: number | undefined
  readonly "lr-wsd-decay-steps"?: number | undefined
  readonly "lr-wsd-decay-style"?: (typeof LrSchedule.wsdDecayStyles)[number] | undefined
}

/**
 * `defaults(steps, hidden)` with the user's settings, checked: a ConfigError names the first
 * setting out of its range (lr above 0, min-lr within 0..lr, weight decay and clip 0 or more, betas in
 * [0, 1), eps above 0; warm-up steps are whole numbers by their Schema).
 * @category constructors
 */
export const configure = (steps: number, o: OptimizerOverrides, hidden: number = referenceHidden): OptimizerConfig => {
  const base = defaults(steps, hidden)
  // once a job: the optimizer's settings
  const c: OptimizerConfig = {
    ...base,
    lr: o.lr ?? base.lr,
    minLr: o["min-lr"] ?? (o.lr === undefined ? base.minLr : o.lr / 10),
    warmup: o["warmup-steps"] ?? base.warmup,
    weightDecay: o["weight-decay"] ?? base.weightDecay,
    clip: o["clip-grad"] ?? base.clip,
    beta1: o["adam-beta1"] ?? base.beta1,
    beta2: o["adam-beta2"] ?? base.beta2,
    eps: o["adam-eps"] ?? base.eps,
    decayStyle: o["lr-decay-style"],
    decaySteps: o["lr-decay-steps"],
    wsdDecaySteps: o["lr-wsd-decay-steps"],
    wsdDecayStyle: o["lr-wsd-decay-style"],
  }
  const problem = (field: string, value: number, reason: string, fix: string) => {
    throw ConfigError.make(field, value, reason, fix)
  }
  if (!(c.lr > 0)) problem("lr", c.lr, "is not above 0", "use a learning rate such as 3e-4")
  if (!(c.minLr >= 0 && c.minLr <= c.lr)) problem("min-lr", c.minLr, `is not within 0..${c.lr} (--lr)`, `use a value from 0 to ${c.lr}`)
  if (!(c.weightDecay >= 0)) problem("weight-decay", c.weightDecay, "is negative", "use 0 (none) or more, such as 0.1")
  if (!(c.clip >= 0)) problem("clip-grad", c.clip, "is negative", "use 0 (no clipping) or a norm such as 1")
  for (const [field, beta] of [
    ["adam-beta1", c.beta1],
    ["adam-beta2", c.beta2],
  ] as const)
    if (!(beta >= 0 && beta < 1)) problem(field, beta, "is not in [0, 1)", "use a decay such as 0.9 or 0.95")
  if (!(c.eps > 0)) problem("adam-eps", c.eps, "is not above 0", "use a small positive number such as 1e-8")
  LrSchedule.check(c)
  return c
}

/**
 * The scale of the step's gradients: min(1, clip / (norm + 1e-6)), or 1 when clipping is off
 * (clip 0).
 * @category mapping
 */
export const clipScale = (c: OptimizerConfig, gradNorm: number): number => (c.clip > 0 ? Math.min(1, c.clip / (gradNorm + 1e-6)) : 1)

/**
 * AdamW moments of one shard (float32 whatever the parameter dtype).
 * @category models
 */
export interface Moments {
  readonly m: Float32Array
  readonly v: Float32Array
}

/**
 * Moments for every held shard.
 * @category constructors
 */
export const moments = (params: ReadonlyMap<string, RankParams.Held>): Map<string, Moments> =>
  new Map([...params].map(([name, h]) => [name, { m: new Float32Array(h.value.size), v: new Float32Array(h.value.size) }]))

/**
 * The weight decay of a parameter: none on norms and biases (1-D parameters, and the experts'
 * biases), as Megatron.
 * @category mapping
 */
export const decayOf = (c: OptimizerConfig, spec: Params.ParamSpec): number => (spec.shape.length === 1 || spec.bias === true ? 0 : c.weightDecay)

/**
 * AdamW on `n` consecutive elements: weights w[wAt..], gradients g[gAt..] (scaled by
 * `clipScale`), moments s.m, s.v [sAt..]; step t counts from 1. Both optimizers (replicated and
 * distributed) and a device's (DeviceOptimizer) update through tensor/kernels/AdamwInto.ts, so
 * they compute the same arithmetic: the native kernel when the native kernels are in use, else
 * its loop, the same bits.
 * @category combinators
 */
export const updateRange = (...args: Parameters<typeof updateRangeLoop>): void => {
  const [c, t, lr, clipScale, decay, n, w, wAt, g, gAt, s, sAt] = args
  AdamwInto.adamwInto(w.subarray(wAt, wAt + n), g.subarray(gAt, gAt + n), s.m.subarray(sAt, sAt + n), s.v.subarray(sAt, sAt + n), AdamwInto.scalarsOf(c, t, lr, clipScale, decay))
}

/**
 * `updateRange` on the loop alone (AdamwInto.adamwLoop): the specification the native kernel
 * reproduces bit for bit (it runs where the addon is not loaded, or under
 * PLEAT_KERNELS=reference).
 * @category combinators
 */
export const updateRangeLoop = (
  c: OptimizerConfig,
  t: number,
  lr: number,
  clipScale: number,
  decay: number,
  n: number,
  w: DType.Storage,
  wAt: number,
  g: DType.Storage,
  gAt: number,
  s: Moments,
  sAt: number,
): void =>
  AdamwInto.adamwLoop(w.subarray(wAt, wAt + n), g.subarray(gAt, gAt + n), s.m.subarray(sAt, sAt + n), s.v.subarray(sAt, sAt + n), AdamwInto.scalarsOf(c, t, lr, clipScale, decay))

/**
 * One AdamW step (step t counts from 1) with the gradient scaled by `clipScale`.
 * @category combinators
 */
export const step = (c: OptimizerConfig, params: ReadonlyMap<string, RankParams.Held>, state: ReadonlyMap<string, Moments>, t: number, lr: number, clipScale: number): void => {
  for (const [name, h] of params) {
    const s = state.get(name) as Moments
    updateRange(c, t, lr, clipScale, decayOf(c, h.spec), h.value.size, h.value.data, 0, h.grad, 0, s, 0)
  }
}

/**
 * The bytes of optimizer state the moments take (m and v, float32).
 * @category mapping
 */
export const stateBytes = (state: ReadonlyMap<string, Moments>): number => [...state.values()].reduce((a, s) => a + s.m.byteLength + s.v.byteLength, 0)
