// Example 01: build a folded mapping from a script and ask it questions.
//
//   npx tsx examples/01-folded-groups.ts
//
// Expected output (abridged):
//   attention tp 2 x cp 2 x dp 4 x pp 2, moe etp 1 x ep 8 x edp 2 x pp 2
//   rank 5: attention tp 1 cp 0 dp 1 pp 0 | moe etp 0 ep 5 edp 0 | pp next 21, prev 21
//   rank 5 dispatches tokens within [0,1,2,3,4,5,6,7] (its local rank there is 5)
//   rank 5 reduces dense gradients over dp-cp [1,3,5,7,9,11,13,15], expert gradients over edp [5,13]
import { Families, Folding, ParallelConfig, RankGrid } from "../src/mapping/index.js"

// 32 ranks: attention uses tp 2 x cp 2 x dp 4 per stage; MoE folds the same 16 ranks into ep 8 x edp 2.
const config = ParallelConfig.make({ world: 32, tp: 2, cp: 2, pp: 2, ep: 8, etp: 1 })
const fold = Folding.make(config)
const s = config.sizes
console.log(`attention tp ${s.tp} x cp ${s.cp} x dp ${s.dp} x pp ${s.pp}, moe etp ${s.etp} x ep ${s.ep} x edp ${s.edp} x pp ${s.pp}`)

const rank = 5
const p = Folding.place(fold, rank)
console.log(
  `rank ${rank}: attention tp ${p.tp} cp ${p.cp} dp ${p.dp} pp ${p.pp} | moe etp ${p.etp} ep ${p.ep} edp ${p.edp}` +
    ` | pp next ${Folding.ppNext(fold, rank)}, prev ${Folding.ppPrev(fold, rank)}`,
)

const dispatch = RankGrid.groupOf(fold.expert, rank, ["etp", "ep"])
const local = RankGrid.localRank(fold.expert, rank, ["etp", "ep"])
console.log(`rank ${rank} dispatches tokens within [${dispatch.join(",")}] (its local rank there is ${local})`)

const dpcp = RankGrid.groupOf(fold.dense, rank, ["dp", "cp"])
const edp = RankGrid.groupOf(fold.expert, rank, ["edp"])
console.log(`rank ${rank} reduces dense gradients over dp-cp [${dpcp.join(",")}], expert gradients over edp [${edp.join(",")}]`)

// Every family at once, as `pleat groups --json` prints them.
const families = Families.all(config)
console.log(`${Object.keys(families).length} families; ep groups: ${JSON.stringify(families.ep)}`)
