#!/usr/bin/env bash
# bench/stream_latency.sh: produce-to-queryable latency of `cdp stream` from Kafka on a
# tansu broker (tools/tansu.sh) into the sample pipeline's DuckDB warehouse, after a
# batch run of the sample data. examples/kafka_produce.rs produces BENCH_LATENCY_RATE
# events/s (default 10,000) for BENCH_LATENCY_SECONDS (default 30) on a fixed schedule,
# each event's `updated_at` the time it was produced; cdp stamps each row's `_loaded_at`
# in the transaction that makes it queryable. Latency = _loaded_at - updated_at per
# loaded row (milliseconds), p50/p99/max. DuckDB takes one writer process, so the
# figures are read after the stream stops (--max-events), not by polling. Writes
# bench/out/stream_latency/result.json; bench/stream.sh puts it in BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cdp/target}"
export CDP_NO_PROGRESS=1
RATE="${BENCH_LATENCY_RATE:-10000}"
SECONDS_RUN="${BENCH_LATENCY_SECONDS:-30}"
EVENTS=$((RATE * SECONDS_RUN))
WORK="$ROOT/bench/out/stream_latency"
VENV="$ROOT/.venv/peers"
if [ -z "${CDP_BIN:-}" ]; then
  cargo build --release --locked ${DUCKDB_LIB_DIR:+--no-default-features}
  CDP_BIN="$CARGO_TARGET_DIR/release/cdp"
fi
cargo build --release --locked ${DUCKDB_LIB_DIR:+--no-default-features} --example kafka_produce
[ -x "$VENV/bin/python" ] || make peers > /dev/null
rm -rf "$WORK" && mkdir -p "$WORK/pipelines"
cp -r pipelines/audiences "$WORK/pipelines/"
tansu=$(bash tools/tansu.sh)
kport=$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$tansu" broker --listener-url "tcp://127.0.0.1:$kport" --advertised-listener-url "tcp://127.0.0.1:$kport" \
  --storage-engine memory://tansu/ > "$WORK/tansu.log" 2>&1 &
broker=$!
trap 'kill $broker 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  "$VENV/bin/python" -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)' "$kport" 2>/dev/null && break
  sleep 0.1
done
{ cat pipelines/customer360.toml
  printf '\n[[streams]]\nname = "clicks"\nkind = "kafka"\nentity = "person"\nbootstrap_servers = ["127.0.0.1:%s"]\ntopics = ["signups"]\ngroup = "bench"\n' "$kport"
} > "$WORK/pipelines/customer360.toml"
target=(--lake "file://$WORK/lake" --warehouse "duckdb://$WORK/warehouse.duckdb")
"$CDP_BIN" -q run "$WORK/pipelines/customer360.toml" "${target[@]}" > /dev/null
produce="$CARGO_TARGET_DIR/release/examples/kafka_produce"
"$produce" "127.0.0.1:$kport" signups 0 > /dev/null
"$CDP_BIN" stream "$WORK/pipelines/customer360.toml" clicks "${target[@]}" \
  --max-events "$EVENTS" --format json > "$WORK/stream.json" 2> "$WORK/stream.err" &
cdp=$!
trap 'kill $broker $cdp 2>/dev/null || true' EXIT
# Produce once the consumer holds its lease (the identity index is loaded by then).
for _ in $(seq 600); do
  ls "$WORK/lake/stream/clicks/_state/lease/"*.json > /dev/null 2>&1 && break
  sleep 0.1
done
"$produce" "127.0.0.1:$kport" signups "$EVENTS" "$RATE" > "$WORK/produce.json"
wait $cdp
"$CDP_BIN" sql --warehouse "duckdb://$WORK/warehouse.duckdb" --format json \
  "SELECT count(*) AS rows,
          quantile_cont(ms, 0.5) AS p50_ms, quantile_cont(ms, 0.99) AS p99_ms, max(ms) AS max_ms
   FROM (SELECT epoch_ms(_loaded_at) - epoch_ms(updated_at) AS ms FROM stream_clicks)" > "$WORK/latency.json"
python3 - "$RATE" "$SECONDS_RUN" "$WORK" <<'PY' | tee "$WORK/result.json"
import json, sys
rate, secs, work = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
lat = json.load(open(f"{work}/latency.json"))
lat = lat[0] if isinstance(lat, list) else lat
stream = json.load(open(f"{work}/stream.json"))
produced = json.load(open(f"{work}/produce.json"))
print(json.dumps({"rate": rate, "seconds": secs, "produced": produced, "events": stream["events"],
                  "loaded": stream["loaded"], "batches": stream["batches"], **lat}))
PY
