/**
 * FoldPicture: an SVG of one pipeline stage drawn twice, attention grid beside MoE grid.
 *
 * Each rank of the stage is a cell at the same place in both panels. Left, cells are filled by
 * their attention replica (the tp-cp group, i.e. the dp coordinate) with the tp coordinate as
 * shade; right, by their dispatch group (the etp-ep group, i.e. the edp coordinate) with the ep
 * coordinate as shade. Ranks that share a colour on the right exchange tokens in the MoE
 * all-to-all; comparing the panels shows which attention ranks an expert group folds together.
 */
import * as Folding from "../mapping/Folding.js"
import * as Order from "../mapping/Order.js"
import type * as ParallelConfig from "../mapping/ParallelConfig.js"
import { escapeXml } from "./Svg.js"

const hues = [210, 20, 120, 280, 45, 330, 170, 0, 250, 90, 190, 310]

const colour = (group: number, shade: number, shades: number): string => {
  const hue = hues[group % hues.length] as number
  const turn = Math.floor(group / hues.length) * 17
  const light = shades <= 1 ? 62 : 45 + Math.round((35 * shade) / (shades - 1))
  return `hsl(${(hue + turn) % 360},65%,${light}%)`
}

/**
 * Renders the picture of pipeline stage `stage` (0 by default) as an SVG document.
 * @category mapping
 */
export const render = (config: ParallelConfig.ParallelConfig, stage = 0): string => {
  const fold = Folding.make(config)
  const s = config.sizes
  const perStage = config.world / s.pp
  const ranks = Folding.places(fold).filter((p) => p.pp === stage)
  // Rows of tp*cp cells keep an attention replica on one row when that fits.
  const replica = s.tp * s.cp
  const cols = replica >= 2 && replica <= 16 ? Math.min(replica, perStage) : Math.min(perStage, 16)
  const rows = Math.ceil(perStage / cols)
  const labels = perStage <= 256
  const cell = labels ? 64 : Math.max(6, Math.floor(640 / cols))
  const gap = labels ? 6 : 1
  const panelWidth = cols * (cell + gap) + gap
  const panelHeight = rows * (cell + gap) + gap
  const top = 78
  const left = 16
  const between = 40
  const width = left * 2 + panelWidth * 2 + between
  const height = top + panelHeight + 56
  const out: Array<string> = []
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif">`)
  out.push(`<rect width="100%" height="100%" fill="white"/>`)
  const title = `pleat fold: world ${config.world}, order ${Order.format(config.order)}, pipeline stage ${stage} of ${s.pp}`
  out.push(`<text x="${left}" y="24" font-size="16" font-weight="bold">${escapeXml(title)}</text>`)
  const panels = [
    {
      x: left,
      heading: `attention: tp ${s.tp} x cp ${s.cp} x dp ${s.dp}`,
      note: "colour = dp replica (tp-cp group), shade = tp",
      group: (p: Folding.RankPlace) => p.dp,
      shade: (p: Folding.RankPlace) => p.tp,
      shades: s.tp,
      label: (p: Folding.RankPlace) => [`tp${p.tp} cp${p.cp}`, `dp${p.dp}`],
    },
    {
      x: left + panelWidth + between,
      heading: `MoE: etp ${s.etp}${config.etpGiven ? "" : " (=tp, default)"} x ep ${s.ep} x edp ${s.edp}`,
      note: "colour = dispatch group (etp-ep), shade = ep",
      group: (p: Folding.RankPlace) => p.edp,
      shade: (p: Folding.RankPlace) => p.ep,
      shades: s.ep,
      label: (p: Folding.RankPlace) => [`etp${p.etp} ep${p.ep}`, `edp${p.edp}`],
    },
  ]
  for (const panel of panels) {
    out.push(`<text x="${panel.x}" y="48" font-size="14">${escapeXml(panel.heading)}</text>`)
    out.push(`<text x="${panel.x}" y="66" font-size="11" fill="#555">${escapeXml(panel.note)}</text>`)
    ranks.forEach((p, i) => {
      const x = panel.x + gap + (i % cols) * (cell + gap)
      const y = top + gap + Math.floor(i / cols) * (cell + gap)
      const fill = colour(panel.group(p), panel.shade(p), panel.shades)
      out.push(`<g><title>rank ${p.rank}: tp ${p.tp} cp ${p.cp} dp ${p.dp} | etp ${p.etp} ep ${p.ep} edp ${p.edp}</title>`)
      out.push(`<rect x="${x}" y="${y}" width="${cell}" height="${cell}" rx="${labels ? 6 : 1}" fill="${fill}" stroke="#333" stroke-width="${labels ? 1 : 0.3}"/>`)
      if (labels) {
        const [l1, l2] = panel.label(p)
        out.push(`<text x="${x + cell / 2}" y="${y + 22}" font-size="14" font-weight="bold" text-anchor="middle">r${p.rank}</text>`)
        out.push(`<text x="${x + cell / 2}" y="${y + 40}" font-size="10" text-anchor="middle">${l1}</text>`)
        out.push(`<text x="${x + cell / 2}" y="${y + 54}" font-size="10" text-anchor="middle">${l2}</text>`)
      }
      out.push(`</g>`)
    })
  }
  const repeats = s.pp > 1 ? `; the other ${s.pp - 1} stage(s) repeat this picture with rank + k*${perStage}` : ""
  const legend = `same cell = same rank in both panels; ${perStage} ranks per stage${repeats}`
  out.push(`<text x="${left}" y="${height - 20}" font-size="11" fill="#555">${escapeXml(legend)}</text>`)
  out.push(`</svg>`)
  return `${out.join("\n")}\n`
}
