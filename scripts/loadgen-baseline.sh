#!/usr/bin/env bash
# The fast-path measurements of BENCHMARKS.md: the bundled service (release build, SQLite, the
# bot answering every message) and the bare echo server, driven by the same load generator, in
# one run. Each measurement starts a fresh server on a fresh database and prints loadgen's JSON
# line prefixed by its name; repeat with RUNS=N and read the medians.
#
#   bash scripts/loadgen-baseline.sh                 # 3 runs of every scenario, 20 s each
#   RUNS=1 DURATION=10 SCENARIOS="c100 open1000" bash scripts/loadgen-baseline.sh
#   TARGETS="service service-pool echo" ...   # service-pool: SQLite group commit off
#
# Loopback only; every run is bounded by DURATION (plus loadgen's drain) and stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-3}
DURATION=${DURATION:-20}
SCENARIOS=${SCENARIOS:-"c100 c1000 open1000"}
TARGETS=${TARGETS:-"service echo"}
PORT=${PORT:-18080}
DB_DIR=$(mktemp -d /tmp/omnidesk-loadgen.XXXXXX)
trap 'kill "${SERVER:-}" 2>/dev/null || true; rm -rf "$DB_DIR"' EXIT

cargo build --quiet --release --example server --example loadgen --example echo_server
BIN=${CARGO_TARGET_DIR:-target}/release/examples

start() {
  rm -f "$DB_DIR"/desk.db*
  case $1 in
    service|service-pool)
      group_commit=true
      [ "$1" = service-pool ] && group_commit=false
      OMNIDESK_CONFIG=examples/loadgen/server.toml OMNIDESK_DATABASE="$DB_DIR/desk.db" \
        OMNIDESK_GROUP_COMMIT=$group_commit OMNIDESK_PORT=$PORT "$BIN/server" \
        >"$DB_DIR/server.log" 2>&1 &
      ;;
    echo) "$BIN/echo_server" --port "$PORT" >"$DB_DIR/server.log" 2>&1 & ;;
  esac
  SERVER=$!
  for _ in $(seq 1 300); do
    curl -s -o /dev/null -X POST "http://127.0.0.1:$PORT/chat/session" && return 0
    sleep 0.1
  done
  echo "server did not start:" >&2; cat "$DB_DIR/server.log" >&2; exit 1
}

stop() { kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; SERVER=; }

for run in $(seq 1 "$RUNS"); do
  for scenario in $SCENARIOS; do
    case $scenario in
      c100) args=(--visitors 100) ;;
      c1000) args=(--visitors 1000) ;;
      open1000) args=(--visitors 1000 --rate 1000) ;;
      *) echo "unknown scenario $scenario" >&2; exit 2 ;;
    esac
    for target in $TARGETS; do
      start "$target"
      line=$("$BIN/loadgen" --url "http://127.0.0.1:$PORT" "${args[@]}" --duration "$DURATION" \
        --server-pid "$SERVER" --quiet || true)
      echo "$target $scenario run$run $line"
      stop
    done
  done
done
