#!/usr/bin/env bash
# run.sh — drive the automerge-repo baseline by hand, on 127.0.0.1 only.
#
#   bash run.sh sequence FIXTURES WORK [DELAY_MS|direct]
#       Starts a fresh server in WORK/server with FIXTURES/<name>.automerge
#       imported, then runs initial → incremental (FIXTURES/<name>.changes) → noop
#       with one client storage WORK/client, each scenario through its own
#       `minqing-shaper --tcp --delay-ms DELAY_MS` (or straight to the server with
#       `direct`). Prints one JSON line per scenario: the client's line plus
#       "delay_ms" and "shaper" (the shaper's final counters; bytes there are
#       TCP stream bytes, the same quantity as the client's own bytes_*).
#
#   bash run.sh selftest [WORK]
#       Makes 4 small villages with make-fixture.mjs, runs the sequence direct
#       and through the shaper at 50 ms one-way, and checks the lines look sane.
#
# Environment: SHAPER (path to minqing-shaper; default: the workspace's
# target/debug/minqing-shaper, built with cargo if missing), NODE (default node).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
NODE="${NODE:-node}"
SHAPER="${SHAPER:-$ROOT/target/debug/minqing-shaper}"
PIDS=()

cleanup() {
  for pid in "${PIDS[@]:-}"; do
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT

need_deps() {
  [ -d "$HERE/node_modules/@automerge/automerge-repo" ] || (cd "$HERE" && npm install --no-audit --no-fund >&2)
}

need_shaper() {
  if [ ! -x "$SHAPER" ]; then
    (cd "$ROOT" && cargo build -q -p minqing-testkit --bin minqing-shaper >&2)
  fi
}

# wait_line FILE PATTERN: waits (up to 30 s) for a line matching PATTERN in FILE.
wait_line() {
  for _ in $(seq 300); do
    if grep -q "$2" "$1" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "run.sh: timed out waiting for '$2' in $1" >&2
  cat "$1" >&2 || true
  return 1
}

# sequence FIXTURES WORK DELAY
sequence() {
  local fixtures="$1" work="$2" delay="$3"
  rm -rf "$work/server" "$work/client"
  mkdir -p "$work"
  "$NODE" "$HERE/server.mjs" --storage "$work/server" --fixtures "$fixtures" \
    --docs-out "$work/docs.json" >"$work/server.out" 2>"$work/server.err" &
  local server_pid=$!
  PIDS+=("$server_pid")
  wait_line "$work/server.out" '^listening '
  local port
  port="$(awk '/^listening /{print $2; exit}' "$work/server.out")"

  for scenario in initial incremental noop; do
    local url="ws://127.0.0.1:$port" shaper_pid="" shaper_out="$work/shaper-$scenario.out"
    if [ "$delay" != direct ]; then
      # A fifo keeps the shaper's stdin open so that `quit` can be sent at the end.
      rm -f "$work/shaper.in" && mkfifo "$work/shaper.in"
      "$SHAPER" --tcp --listen 127.0.0.1:0 --upstream "127.0.0.1:$port" --delay-ms "$delay" \
        <"$work/shaper.in" >"$shaper_out" 2>"$work/shaper.err" &
      shaper_pid=$!
      PIDS+=("$shaper_pid")
      exec 7>"$work/shaper.in"
      wait_line "$shaper_out" '^listening '
      url="ws://$(awk '/^listening /{print $2; exit}' "$shaper_out")"
    fi
    local line
    line="$("$NODE" "$HERE/client.mjs" --scenario "$scenario" --url "$url" \
      --warmup-url "ws://127.0.0.1:$port" --docs "$work/docs.json" \
      --storage "$work/client" --changes "$fixtures")" || true
    local shaper_json=null
    if [ -n "$shaper_pid" ]; then
      echo quit >&7
      exec 7>&-
      wait "$shaper_pid" || true
      shaper_json="$(grep '^{' "$shaper_out" | tail -n 1)"
    fi
    LINE="$line" SHAPER_JSON="$shaper_json" DELAY="$delay" "$NODE" -e '
      const r = JSON.parse(process.env.LINE || "{\"error\":\"client printed nothing\"}")
      r.delay_ms = process.env.DELAY === "direct" ? null : Number(process.env.DELAY)
      r.shaper = JSON.parse(process.env.SHAPER_JSON)
      console.log(JSON.stringify(r))'
  done
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
}

selftest() {
  local work="${1:-$(mktemp -d)}"
  mkdir -p "$work"
  need_deps
  need_shaper
  "$NODE" "$HERE/make-fixture.mjs" "$work/fixtures" --villages 4 --visits 300 \
    --new-visits 20 --new-events 8 2>"$work/fixture.log"
  {
    sequence "$work/fixtures" "$work/direct" direct
    sequence "$work/fixtures" "$work/shaped" 50
  } | tee "$work/results.jsonl"
  "$NODE" -e '
    const lines = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").map(JSON.parse)
    const bad = []
    const check = (ok, what, r) => { if (!ok) bad.push(`${r.scenario} @ ${r.delay_ms ?? "direct"}: ${what}`) }
    for (const r of lines) {
      check(!r.error, `error ${r.error}`, r)
      check(r.docs === 4, "docs should be 4", r)
      check(r.ms > 0 && r.bytes_sent > 0 && r.bytes_received > 0, "time and bytes must be positive", r)
      if (r.scenario === "initial") check(r.bytes_received >= 0.5 * r.saved_bytes, "initial must receive the documents", r)
      if (r.scenario === "incremental") check(r.bytes_sent >= 0.5 * r.changes_bytes, "incremental must send the changes", r)
      if (r.shaper) {
        // The shaper counts the same TCP stream; it may also see the close frames.
        check(r.shaper.up.bytes >= r.bytes_sent && r.shaper.down.bytes >= r.bytes_received, "shaper bytes below the client socket bytes", r)
        check(r.ms >= 2 * 2 * r.delay_ms, "a WebSocket sync costs at least two round trips", r)
      }
    }
    check(lines.length === 6, `expected 6 lines, got ${lines.length}`, {})
    if (bad.length) { console.error("selftest FAILED:\n  " + bad.join("\n  ")); process.exit(1) }
    console.error(`selftest: ${lines.length} scenario lines look sane (${process.argv[1]})`)
    console.log(`${lines.length} passed, 0 failed`)
  ' "$work/results.jsonl"
}

case "${1:-}" in
  sequence)
    [ $# -ge 3 ] || { echo "usage: bash run.sh sequence FIXTURES WORK [DELAY_MS|direct]" >&2; exit 2; }
    need_deps
    [ "${4:-direct}" = direct ] || need_shaper
    sequence "$2" "$3" "${4:-direct}"
    ;;
  selftest)
    selftest "${2:-}"
    ;;
  *)
    echo "usage: bash run.sh sequence FIXTURES WORK [DELAY_MS|direct] | bash run.sh selftest [WORK]" >&2
    exit 2
    ;;
esac
