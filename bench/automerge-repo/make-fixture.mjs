// make-fixture.mjs — small, deterministic village documents for the baseline's self-test.
//
// Writes, for each village, <name>.automerge (the saved document: a `visits` map
// of visit records with Chinese notes, a `demands` map of event logs) and
// <name>.changes (the incremental save of one offline day on top of it: new
// visits and demand events, loadable with Automerge.loadIncremental). The real
// benchmark fixtures come from minqing's own generator; this one only needs to
// look alike.
//
//   node make-fixture.mjs OUT_DIR [--villages 4] [--visits 300] \
//        [--new-visits 50] [--new-events 20] [--seed 1]
//
// --new-visits and --new-events are totals, spread round-robin over the villages.

import * as A from "@automerge/automerge"
import { mkdirSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { parseArgs } from "node:util"

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    villages: { type: "string", default: "4" },
    visits: { type: "string", default: "300" },
    "new-visits": { type: "string", default: "50" },
    "new-events": { type: "string", default: "20" },
    seed: { type: "string", default: "1" },
  },
})
if (positionals.length !== 1) {
  console.error("usage: node make-fixture.mjs OUT_DIR [--villages N] [--visits N] [--new-visits N] [--new-events N] [--seed N]")
  process.exit(2)
}
const out = positionals[0]
const villages = Number(values.villages)
const visits = Number(values.visits)
const newVisits = Number(values["new-visits"])
const newEvents = Number(values["new-events"])
let state = Number(values.seed) >>> 0

// mulberry32: a tiny seeded PRNG, so the same seed writes the same bytes.
function rand() {
  state = (state + 0x6d2b79f5) >>> 0
  let t = state
  t = Math.imul(t ^ (t >>> 15), t | 1)
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}
const pick = (xs) => xs[Math.floor(rand() * xs.length)]
const id = () => Array.from({ length: 16 }, () => "0123456789abcdef"[Math.floor(rand() * 16)]).join("")
const hex = (n) => Array.from({ length: n }, () => "0123456789abcdef"[Math.floor(rand() * 16)]).join("")

const phrases = [
  "走访了解家庭生产生活情况", "老人身体状况良好，子女在外务工", "反映村道路灯损坏，夜间出行不便",
  "低保申请材料已收齐，待镇里审核", "留守儿童学习情况良好，已联系学校老师", "独居老人需要定期上门看望",
  "提出自来水水压不足的问题", "宣传医保缴费政策，已现场办理", "退役军人优待证已送达",
  "残疾人两项补贴已按时发放", "邻里纠纷已调解，双方表示满意", "建议增设垃圾分类收集点",
]
const kinds = ["普遍走访", "重点走访", "补访"]
const stages = ["受理", "直办", "转办", "督办", "反馈", "回访", "销号"]
const note = () => Array.from({ length: 3 + Math.floor(rand() * 4) }, () => pick(phrases)).join("；") + "。"
const day = (d) => `2025-${String(1 + (d % 12)).padStart(2, "0")}-${String(1 + (d % 28)).padStart(2, "0")}`

function visit(i) {
  return {
    date: day(i),
    cadre: `cadre-${1 + Math.floor(rand() * 3)}`,
    household: `hh-${hex(8)}`,
    kind: pick(kinds),
    // Notes are plain string values, as in minqing (collaborative Text costs ~10x).
    note: new A.ImmutableString(note()),
  }
}

mkdirSync(out, { recursive: true })
let totalSaved = 0
let totalChanges = 0
for (let v = 0; v < villages; v++) {
  const name = `village-${String(v + 1).padStart(2, "0")}`
  // A fixed actor and time per village keeps the bytes reproducible.
  let doc = A.init({ actor: `${"a".repeat(30)}${String(v).padStart(2, "0")}` })
  doc = A.change(doc, { time: 0, message: "skeleton" }, (d) => {
    d.name = `第${v + 1}村`
    d.visits = {}
    d.demands = {}
  })
  // History in batches, like months of daily syncs.
  for (let start = 0; start < visits; start += 25) {
    doc = A.change(doc, { time: 1_700_000_000 + start }, (d) => {
      for (let i = start; i < Math.min(start + 25, visits); i++) d.visits[id()] = visit(i)
      const demand = id()
      d.demands[demand] = [{ stage: "受理", at: day(start), text: new A.ImmutableString(pick(phrases)) }]
    })
  }
  const saved = A.save(doc)
  writeFileSync(join(out, `${name}.automerge`), saved)
  totalSaved += saved.length

  // The offline day, by a different actor (the cadre's laptop).
  const heads = A.getHeads(doc)
  let day2 = A.clone(doc, { actor: `${"b".repeat(30)}${String(v).padStart(2, "0")}` })
  const myVisits = Math.floor(newVisits / villages) + (v < newVisits % villages ? 1 : 0)
  const myEvents = Math.floor(newEvents / villages) + (v < newEvents % villages ? 1 : 0)
  const demandIds = Object.keys(day2.demands)
  for (let i = 0; i < myVisits; i++) {
    day2 = A.change(day2, { time: 1_800_000_000 + i }, (d) => {
      d.visits[id()] = visit(visits + i)
    })
  }
  for (let i = 0; i < myEvents; i++) {
    day2 = A.change(day2, { time: 1_800_001_000 + i }, (d) => {
      const key = demandIds[i % demandIds.length]
      d.demands[key].push({ stage: stages[1 + (i % (stages.length - 1))], at: day(visits + i), text: new A.ImmutableString(pick(phrases)) })
    })
  }
  const changes = A.saveSince(day2, heads)
  writeFileSync(join(out, `${name}.changes`), changes)
  totalChanges += changes.length
  console.error(`${name}: ${visits} visits, ${saved.length} bytes saved; +${myVisits} visits +${myEvents} events, ${changes.length} bytes of changes`)
}
console.error(`total: ${totalSaved} bytes saved, ${totalChanges} bytes of changes`)
