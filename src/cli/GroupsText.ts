/**
 * GroupsText: the human-readable form of `pleat groups`.
 *
 * Sizes first (with where dp, edp and etp came from, since a silently defaulted etp is the most
 * common surprise), then a table of every rank's coordinates in both grids, then each family.
 */
import type * as ParallelConfig from "../mapping/ParallelConfig.js"
import type * as Report from "../mapping/Report.js"

const describeFamily: Readonly<Record<string, string>> = {
  tp: "attention tensor parallel",
  cp: "attention context parallel",
  dp: "attention data parallel",
  pp: "pipeline (shared by both grids)",
  "dp-cp": "gradient reduction of dense parameters",
  "tp-cp": "router aux-loss token counts",
  "tp-pp": "model parallel",
  "tp-dp": "tensor + data (amax)",
  "tp-dp-cp": "tensor + data + context (expert-bias counts, global aux loss)",
  etp: "expert tensor parallel",
  ep: "expert parallel",
  edp: "expert data parallel (gradient reduction of expert parameters)",
  "etp-ep": "token dispatch (all-to-all / allgather)",
  "etp-ep-pp": "expert model parallel with pipeline",
  embedding: "first and last pipeline stage (tied embedding)",
}

const formatGroups = (groups: ReadonlyArray<ReadonlyArray<number>>, limit: number): string => {
  const shown = groups.slice(0, limit).map((g) => `[${g.join(",")}]`)
  const more = groups.length > limit ? ` ... (${groups.length - limit} more)` : ""
  return shown.join(" ") + more
}

/**
 * Renders a report as text; `groupLimit` caps how many groups of each family are printed.
 * @category mapping
 */
export const render = (report: Report.Report, config: ParallelConfig.ParallelConfig, groupLimit = 64): string => {
  const s = report.sizes
  const lines: Array<string> = []
  const etpSource = config.etpGiven ? "given" : "defaulted to tp; pass --etp to choose"
  lines.push(`world ${report.world}, order ${report.order}${config.vpp === undefined ? "" : `, vpp ${config.vpp}`}`)
  lines.push(`attention: tp ${s.tp} x cp ${s.cp} x dp ${s.dp} x pp ${s.pp}   (dp = world/(tp*cp*pp))`)
  lines.push(`moe:       etp ${s.etp} x ep ${s.ep} x edp ${s.edp} x pp ${s.pp}   (edp = world/(etp*ep*pp); etp ${s.etp} ${etpSource})`)
  lines.push("")
  const header = ["rank", "tp", "cp", "dp", "pp", "|", "etp", "ep", "edp"]
  const width = Math.max(4, String(report.world - 1).length)
  const pad = (x: string | number) => String(x).padStart(width)
  lines.push(header.map((h) => (h === "|" ? "|" : pad(h))).join(" "))
  for (const r of report.ranks) {
    lines.push([r.rank, r.tp, r.cp, r.dp, r.pp, "|", r.etp, r.ep, r.edp].map((x) => (x === "|" ? "|" : pad(x))).join(" "))
  }
  lines.push("")
  for (const [name, groups] of Object.entries(report.groups)) {
    const size = groups[0]?.length ?? 0
    lines.push(`${name} (${groups.length} groups of ${size}; ${describeFamily[name] ?? ""}):`)
    lines.push(`  ${formatGroups(groups, groupLimit)}`)
  }
  return `${lines.join("\n")}\n`
}
