/**
 * LrSchedule: the learning rate at each step, as Megatron-Core's OptimizerParamScheduler shapes
 * it: a linear warm-up, then a decay to the minimum over the decay steps, then the minimum.
 *
 * With k the 0-based step, W the warm-up steps, D the decay steps (the run's --steps unless
 * --lr-decay-steps fixes them, so a resumed run that trains longer keeps its schedule), and
 * p = (k - W) / (D - W) the fraction of the decay done:
 *
 *   k < W                  peak * (k + 1) / W
 *   constant               peak (after the warm-up)
 *   k > D                  min (the decays below reach it at k = D)
 *   cosine                 min + (peak - min) (1 + cos(pi p)) / 2
 *   linear                 min + (peak - min) (1 - p)
 *   inverse-square-root    max(min, peak * sqrt(max(W, 1) / max(k, 1)))
 *   wsd                    peak until the last A steps of the decay (A = --lr-wsd-decay-steps),
 *                          then min + (peak - min) c(q), q = (k - (D - A)) / A, with c by
 *                          --lr-wsd-decay-style: exponential 2 * 0.5^q - 1, linear 1 - q,
 *                          cosine (1 + cos(pi q)) / 2, minus-sqrt 1 - sqrt(q)
 *
 * The decay's formulas are Megatron's with its step count num_steps = k; its warm-up reaches the
 * peak at step W - 1 here (pleat's first step trains at peak / W, not 0).
 */
import * as ConfigError from "../errors/ConfigError.js"

/**
 * The decay shapes.
 * @category configuration
 */
export const decayStyles = ["cosine", "linear", "constant", "wsd", "inverse-square-root"] as const

/**
 * The shapes of a WSD schedule's final anneal.
 * @category configuration
 */
export const wsdDecayStyles = ["exponential", "linear", "cosine", "minus-sqrt"] as const

/**
 * A schedule: the optimizer settings it reads (absent decay settings: cosine over `steps`).
 * @category models
 */
export interface Schedule {
  readonly lr: number
  readonly minLr: number
  readonly warmup: number
  readonly steps: number
  readonly decayStyle?: (typeof decayStyles)[number] | undefined
  /** The step the decay reaches minLr at (none: `steps`). */
  readonly decaySteps?: number | undefined
  /** wsd: the steps of the final anneal, and its shape (none: a tenth of the decay, exponential). */
  readonly wsdDecaySteps?: number | undefined
  readonly wsdDecayStyle?: (typeof wsdDecayStyles)[number] | undefined
}

/** The decay steps in effect. */
const decayStepsOf = (c: Schedule): number => c.decaySteps ?? c.steps

/** The wsd anneal steps in effect: given, or a tenth of the decay after the warm-up (at least 1). */
const wsdDecayStepsOf = (c: Schedule): number => c.wsdDecaySteps ?? Math.max(1, Math.floor((decayStepsOf(c) - c.warmup) / 10))

const annealed = (style: (typeof wsdDecayStyles)[number], q: number): number =>
  style === "exponential" ? 2 * 0.5 ** q - 1 : style === "linear" ? 1 - q : style === "cosine" ? (1 + Math.cos(Math.PI * q)) / 2 : 1 - Math.sqrt(q)

/**
 * The learning rate at step k (0-based).
 * @category mapping
 */
export const learningRate = (c: Schedule, k: number): number => {
  if (k < c.warmup) return (c.lr * (k + 1)) / c.warmup
  const style = c.decayStyle ?? "cosine"
  if (style === "constant") return c.lr
  const decaySteps = decayStepsOf(c)
  if (k > decaySteps) return c.minLr
  if (style === "inverse-square-root") return Math.max(c.minLr, c.lr * Math.sqrt(Math.max(c.warmup, 1) / Math.max(k, 1)))
  const p = (k - c.warmup) / Math.max(1, decaySteps - c.warmup)
  const span = c.lr - c.minLr
  if (style === "linear") return c.minLr + span * (1 - p)
  if (style === "cosine") return c.minLr + (span * (1 + Math.cos(Math.PI * p))) / 2
  const anneal = wsdDecayStepsOf(c)
  const start = decaySteps - anneal
  return k <= start ? c.lr : c.minLr + span * annealed(c.wsdDecayStyle ?? "exponential", (k - start) / anneal)
}

/**
 * Checks the decay settings (their flags named): the decay steps cover the warm-up, the wsd
 * anneal fits inside the decay, and the wsd settings come with wsd.
 * @category guards
 */
export const check = (c: Schedule): void => {
  const style = c.decayStyle ?? "cosine"
  const decaySteps = decayStepsOf(c)
  if (c.decaySteps !== undefined && (style === "constant" || decaySteps < c.warmup))
    throw ConfigError.make(
      "lr-decay-steps",
      c.decaySteps,
      style === "constant" ? "has no decay to end (--lr-decay-style constant)" : `ends the decay before the warm-up's ${c.warmup} steps`,
      style === "constant" ? "drop --lr-decay-steps, or choose a decaying --lr-decay-style" : `use --lr-decay-steps ${c.warmup} or more, or fewer --warmup-steps`,
    )
  for (const [flag, given] of [
    ["lr-wsd-decay-steps", c.wsdDecaySteps],
    ["lr-wsd-decay-style", c.wsdDecayStyle],
  ] as const)
    if (given !== undefined && style !== "wsd")
      throw ConfigError.make(flag, given, `shapes a wsd schedule, and --lr-decay-style is ${style}`, `add --lr-decay-style wsd, or drop --${flag}`)
  if (style === "wsd" && c.wsdDecaySteps !== undefined && c.wsdDecaySteps > decaySteps - c.warmup)
    throw ConfigError.make(
      "lr-wsd-decay-steps",
      c.wsdDecaySteps,
      `is longer than the ${decaySteps - c.warmup} steps between the warm-up and the end of the decay (step ${decaySteps})`,
      `use at most ${Math.max(1, decaySteps - c.warmup)}, or more --lr-decay-steps (or --steps)`,
    )
}
