// client.mjs — a scripted automerge-repo client: runs one scenario, prints ONE JSON line.
//
//   node client.mjs --scenario initial|incremental|noop --url ws://127.0.0.1:PORT \
//        --docs docs.json --storage DIR [--changes DIR] [--warmup 1] [--warmup-url ws://127.0.0.1:P]
//        [--timeout-ms 120000]
//
// Untimed set-up first: the Repo is made with its nodefs storage (DIR) and no
// network; for incremental/noop every document in docs.json is loaded from that
// storage and, for incremental, DIR_CHANGES/<name>.changes (automerge change
// bytes) is applied with Automerge.loadIncremental inside handle.update and
// flushed — the cadre's offline day. Then --warmup rounds of in-memory automerge
// work warm the wasm module (its first run is slow), and with --warmup-url a
// throwaway WebSocket connection (straight to the server, not through the
// shaper) warms the socket code.
//
// Timed: from adding the WebSocket adapter (TCP connect, HTTP upgrade, join) until
//   initial      every document is found (repo.find, all at once), and
//   all          the server's heads for every document, as the server itself
//                reports them in the sync protocol (handle.getSyncInfo(server
//                storageId).lastHeads, i.e. syncState.theirHeads), equal the
//                local heads: the client knows the server has everything it has,
//                and has everything the server has;
//   then         repo.flush() (the client's own storage is durable).
// For incremental this is "the device pushed its day's work and knows the relay
// has it"; for noop it is "the device knows there is nothing to do".
//
// Output: {"scenario","ms","connect_ms","bytes_sent","bytes_received","docs",
//          "saved_bytes","changes_bytes","messages_sent","messages_received","turns"}
// bytes_* are counted on the client's TCP socket (HTTP upgrade and WebSocket
// framing included), the same quantity the minqing-shaper counts as stream bytes.
// turns counts direction changes in the message sequence (≈ 2 × round trips).
// On failure: {"scenario", "error": "..."} and exit code 1.

import * as A from "@automerge/automerge"
import { Repo } from "@automerge/automerge-repo"
import { WebSocketClientAdapter } from "@automerge/automerge-repo-network-websocket"
import { NodeFSStorageAdapter } from "@automerge/automerge-repo-storage-nodefs"
import { existsSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { parseArgs } from "node:util"

const { values } = parseArgs({
  options: {
    scenario: { type: "string" },
    url: { type: "string" },
    docs: { type: "string" },
    storage: { type: "string" },
    changes: { type: "string" },
    warmup: { type: "string", default: "1" },
    "warmup-url": { type: "string" },
    "timeout-ms": { type: "string", default: "120000" },
  },
})
const scenario = values.scenario
function fail(message) {
  process.stdout.write(JSON.stringify({ scenario, error: message }) + "\n")
  process.exit(1)
}
if (!["initial", "incremental", "noop"].includes(scenario) || !values.url || !values.docs || !values.storage) {
  console.error("usage: node client.mjs --scenario initial|incremental|noop --url ws://127.0.0.1:PORT --docs docs.json --storage DIR [--changes DIR] [--warmup N] [--timeout-ms N]")
  process.exit(2)
}
const host = new URL(values.url).hostname
if (!["127.0.0.1", "localhost", "[::1]"].includes(host)) fail(`refusing ${values.url}: the baseline only talks to 127.0.0.1`)
if (scenario === "incremental" && !values.changes) fail("incremental needs --changes DIR")

const docs = JSON.parse(readFileSync(values.docs, "utf8"))
const names = Object.keys(docs).sort()
const savedBytes = names.reduce((n, k) => n + (docs[k].saved_bytes ?? 0), 0)
const timeoutMs = Number(values["timeout-ms"])
const timer = setTimeout(() => fail(`not synced within ${timeoutMs} ms`), timeoutMs)

const sameHeads = (a, b) => !!a && !!b && a.length === b.length && [...a].sort().every((h, i) => h === [...b].sort()[i])

// In-memory automerge work, untimed, so that wasm compilation and JIT do not land in the timing.
function warmup(rounds) {
  for (let r = 0; r < rounds; r++) {
    let a = A.from({ visits: {} })
    a = A.change(a, (d) => {
      for (let i = 0; i < 300; i++) d.visits[`v${i}`] = { note: new A.ImmutableString("走访了解家庭生产生活情况".repeat(3)), kind: "普遍走访" }
    })
    let b = A.load(A.save(a))
    let c = A.init()
    let [sa, sc] = [A.initSyncState(), A.initSyncState()]
    for (let i = 0; i < 10; i++) {
      let msg
      ;[sa, msg] = A.generateSyncMessage(b, sa)
      if (msg) [c, sc] = A.receiveSyncMessage(c, sc, msg)
      ;[sc, msg] = A.generateSyncMessage(c, sc)
      if (msg) [b, sa] = A.receiveSyncMessage(b, sa, msg)
    }
  }
}

// --- untimed set-up: storage, offline work ---
const repo = new Repo({ storage: new NodeFSStorageAdapter(values.storage), network: [] })
const handles = {}
let changesBytes = 0
if (scenario !== "initial") {
  for (const name of names) {
    try {
      handles[name] = await repo.find(docs[name].url)
    } catch (e) {
      fail(`${name} is not in the client storage ${values.storage} (run the initial scenario first): ${e.message}`)
    }
  }
  if (scenario === "incremental") {
    for (const name of names) {
      const file = join(values.changes, `${name}.changes`)
      if (!existsSync(file)) continue
      const bytes = new Uint8Array(readFileSync(file))
      changesBytes += bytes.length
      handles[name].update((doc) => A.loadIncremental(doc, bytes))
    }
  }
  await repo.flush()
}
warmup(Number(values.warmup))
// Optionally warm the WebSocket client code too, with a throwaway connection that
// is not counted: point --warmup-url at the server directly, not through the shaper.
if (values["warmup-url"]) {
  const h = new URL(values["warmup-url"]).hostname
  if (!["127.0.0.1", "localhost", "[::1]"].includes(h)) fail(`refusing ${values["warmup-url"]}: loopback only`)
  const { WebSocket } = await import("ws")
  await new Promise((resolve) => {
    const ws = new WebSocket(values["warmup-url"])
    ws.on("open", () => ws.close())
    ws.on("close", resolve)
    ws.on("error", resolve)
  })
}

// --- timed: connect and sync ---
let messagesSent = 0
let messagesReceived = 0
let turns = 0
let lastDir = 0
const note = (dir) => {
  if (lastDir !== 0 && lastDir !== dir) turns++
  lastDir = dir
}
const adapter = new WebSocketClientAdapter(values.url)
const send = adapter.send.bind(adapter)
adapter.send = (message) => {
  messagesSent++
  note(1)
  send(message)
}
adapter.on("message", () => {
  messagesReceived++
  note(2)
})

const t0 = performance.now()
let connectMs = null
repo.networkSubsystem.addNetworkAdapter(adapter)
const server = await new Promise((resolve) => {
  repo.networkSubsystem.on("peer", ({ peerId }) => resolve(peerId))
})
connectMs = performance.now() - t0
const trace = (what) => process.env.CLIENT_TRACE && console.error(`${(performance.now() - t0).toFixed(1)} ms: ${what}`)
trace("peer")
const serverStorageId = repo.peerMetadataByPeerId[server]?.storageId
if (!serverStorageId) fail("the server announced no storage id; cannot read its heads")

if (scenario === "initial") {
  const found = await Promise.all(names.map((name) => repo.find(docs[name].url)))
  names.forEach((name, i) => (handles[name] = found[i]))
  trace("found")
}

await new Promise((resolve) => {
  const done = () =>
    names.every((name) => {
      const h = handles[name]
      const local = h.heads()
      return sameHeads(h.getSyncInfo(serverStorageId)?.lastHeads, local)
    })
  const check = () => {
    if (done()) resolve()
  }
  for (const name of names) {
    handles[name].on("remote-heads", check)
    handles[name].on("heads-changed", check)
  }
  check()
})
trace("heads agree")
await repo.flush()
const ms = performance.now() - t0

const sock = adapter.socket?._socket
const result = {
  scenario,
  // Informational: whether the server still has the heads it wrote at import.
  heads_as_imported: names.every((name) => sameHeads(handles[name].heads(), docs[name].heads)),
  ms: Math.round(ms * 100) / 100,
  connect_ms: Math.round(connectMs * 100) / 100,
  bytes_sent: sock?.bytesWritten ?? null,
  bytes_received: sock?.bytesRead ?? null,
  docs: names.length,
  saved_bytes: savedBytes,
  changes_bytes: changesBytes,
  messages_sent: messagesSent,
  messages_received: messagesReceived,
  turns,
}
process.stdout.write(JSON.stringify(result) + "\n")
clearTimeout(timer)
// Untimed: automerge-repo saves sync states throttled (saveDebounceRate, 100 ms);
// a real client lives on, so give those saves time to land before leaving, or the
// next run would start without them and look worse than automerge-repo is.
await new Promise((r) => setTimeout(r, 500))
try {
  await repo.shutdown()
} catch {
  // The websocket adapter asserts on a second disconnect; nothing is lost.
}
process.exit(0)
