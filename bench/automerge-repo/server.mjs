// server.mjs — an automerge-repo sync server on 127.0.0.1, the relay of the baseline.
//
//   node server.mjs --storage DIR [--port 0] [--fixtures DIR] [--docs-out FILE]
//
// An http server with a `ws` WebSocketServer, a Repo with nodefs storage in DIR
// and `sharePolicy: async () => false`: like the packaged sync server, it
// announces nothing to anyone, but hands any document a client asks for by id
// (the default `access` policy), and accepts the changes clients push. It binds
// 127.0.0.1 only (the packaged automerge-repo-sync-server listens on all
// interfaces).
//
// --fixtures DIR: every DIR/<name>.automerge (saved automerge bytes) is imported
// with repo.import(bytes) and flushed; the map name → { url, documentId, heads,
// saved_bytes } is written to DIR_STORAGE/docs.json (and to --docs-out if given).
// If the storage already has a docs.json, the documents are not imported again.
//
// Prints `listening PORT` on stdout when ready. SIGTERM/SIGINT flush and exit.

import { Repo } from "@automerge/automerge-repo"
import { WebSocketServerAdapter } from "@automerge/automerge-repo-network-websocket"
import { NodeFSStorageAdapter } from "@automerge/automerge-repo-storage-nodefs"
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs"
import http from "node:http"
import { join } from "node:path"
import { parseArgs } from "node:util"
import { WebSocketServer } from "ws"

const { values } = parseArgs({
  options: {
    port: { type: "string", default: process.env.PORT ?? "0" },
    storage: { type: "string" },
    fixtures: { type: "string" },
    "docs-out": { type: "string" },
  },
})
if (!values.storage) {
  console.error("usage: node server.mjs --storage DIR [--port 0] [--fixtures DIR] [--docs-out FILE]")
  process.exit(2)
}
const HOST = "127.0.0.1"
mkdirSync(values.storage, { recursive: true })

const httpServer = http.createServer((_req, res) => {
  res.writeHead(200, { "content-type": "text/plain" })
  res.end("minqing baseline: automerge-repo sync server\n")
})
const wss = new WebSocketServer({ server: httpServer })
const repo = new Repo({
  network: [new WebSocketServerAdapter(wss)],
  storage: new NodeFSStorageAdapter(join(values.storage, "repo")),
  sharePolicy: async () => false,
})

const docsFile = join(values.storage, "docs.json")
let docs = {}
if (existsSync(docsFile)) {
  docs = JSON.parse(readFileSync(docsFile, "utf8"))
} else if (values.fixtures) {
  const names = readdirSync(values.fixtures)
    .filter((f) => f.endsWith(".automerge"))
    .sort()
  for (const file of names) {
    const name = file.slice(0, -".automerge".length)
    const bytes = readFileSync(join(values.fixtures, file))
    const handle = repo.import(new Uint8Array(bytes))
    docs[name] = {
      url: handle.url,
      documentId: handle.documentId,
      heads: handle.heads(),
      saved_bytes: bytes.length,
    }
  }
  await repo.flush()
  writeFileSync(docsFile, JSON.stringify(docs, null, 2))
}
if (values["docs-out"]) writeFileSync(values["docs-out"], JSON.stringify(docs, null, 2))

httpServer.listen(Number(values.port), HOST, () => {
  const { port } = httpServer.address()
  process.stdout.write(`listening ${port}\n`)
})

let stopping = false
async function stop() {
  if (stopping) return
  stopping = true
  try {
    await repo.flush()
  } finally {
    wss.close()
    httpServer.close()
    process.exit(0)
  }
}
process.on("SIGTERM", stop)
process.on("SIGINT", stop)
