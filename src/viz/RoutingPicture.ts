/**
 * RoutingPicture: an SVG of one step's recorded routing (RoutingFiles), one row per MoE layer and
 * one cell per expert, coloured by the expert's tokens against the layer's mean: white at the
 * mean, red above it (darkest at twice the mean or more), blue below (darkest at none); each
 * row ends with the layer's imbalance (max / mean). Cells carry their counts when they fit.
 */
import { escapeXml } from "./Svg.js"

/** The colour of a load `ratio` times the mean. */
const colour = (ratio: number): string => {
  const over = Math.max(-1, Math.min(1, ratio - 1))
  const light = Math.round(97 - 52 * Math.abs(over))
  return over >= 0 ? `hsl(0,75%,${light}%)` : `hsl(215,75%,${light}%)`
}

/**
 * The picture of one step: `rows` holds each MoE layer's tokens per expert.
 * @category mapping
 */
export const render = (title: string, rows: ReadonlyArray<{ readonly layer: number; readonly counts: ReadonlyArray<number> }>): string => {
  const experts = Math.max(1, ...rows.map((r) => r.counts.length))
  const labels = experts <= 64
  const cell = labels ? 34 : Math.max(3, Math.floor(1024 / experts))
  const left = 84
  const top = 52
  const right = 120
  // Wide enough for the legend's five swatches too.
  const width = Math.max(left + experts * cell + right, left + 250 + 5 * 50 + 16)
  const height = top + rows.length * (cell + 2) + 44
  const out: Array<string> = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${left}" y="22" font-size="15">${escapeXml(title)}</text>`,
  ]
  if (labels) {
    for (let e = 0; e < experts; e++) out.push(`<text x="${left + e * cell + cell / 2}" y="${top - 8}" font-size="10" text-anchor="middle">${e}</text>`)
  }
  rows.forEach((row, i) => {
    const y = top + i * (cell + 2)
    const total = row.counts.reduce((a, b) => a + b, 0)
    const mean = total / Math.max(1, row.counts.length)
    out.push(`<text x="${left - 8}" y="${y + cell / 2 + 4}" font-size="12" text-anchor="end">layer ${row.layer}</text>`)
    row.counts.forEach((n, e) => {
      const x = left + e * cell
      out.push(
        `<rect x="${x}" y="${y}" width="${cell - 1}" height="${cell}" fill="${colour(mean === 0 ? 1 : n / mean)}"><title>layer ${row.layer}, expert ${e}: ${n} tokens</title></rect>`,
      )
      if (labels) out.push(`<text x="${x + cell / 2}" y="${y + cell / 2 + 4}" font-size="10" text-anchor="middle">${n}</text>`)
    })
    const worst = mean === 0 ? 1 : Math.max(...row.counts) / mean
    out.push(`<text x="${left + experts * cell + 8}" y="${y + cell / 2 + 4}" font-size="12">max/mean ${worst.toFixed(2)}</text>`)
  })
  const legendY = top + rows.length * (cell + 2) + 24
  out.push(
    `<text x="${left}" y="${legendY}" font-size="11">tokens per expert against the layer's mean: </text>`,
    ...[0, 0.5, 1, 1.5, 2].map(
      (r, i) =>
        `<rect x="${left + 250 + i * 50}" y="${legendY - 11}" width="46" height="14" fill="${colour(r)}"/><text x="${left + 273 + i * 50}" y="${legendY}" font-size="10" text-anchor="middle">${r}x</text>`,
    ),
    "</svg>",
  )
  return `${out.join("\n")}\n`
}
