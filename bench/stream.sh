#!/usr/bin/env bash
# bench/stream.sh: `cdp stream` end to end (consume, clean, match, lake, DuckDB append)
# from Kinesis on the moto emulator and from Kafka on a tansu broker (tools/tansu.sh),
# BENCH_STREAM_EVENTS events each (default 100,000), into the sample pipeline's
# warehouse after a batch run of the sample data (so matching has a saved identity
# state). Writes the "Streaming" section of BENCHMARKS.md. The moto server comes from
# the test peers' venv (make peers); Kafka events are produced by
# examples/kafka_produce.rs. The latency table comes from bench/stream_latency.sh's last
# result (bench/run.sh runs it first).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cdp/target}"
export CDP_NO_PROGRESS=1
EVENTS="${BENCH_STREAM_EVENTS:-100000}"
WORK="$ROOT/bench/out/stream"
VENV="$ROOT/.venv/peers"
if [ -z "${CDP_BIN:-}" ]; then
  cargo build --release --locked ${DUCKDB_LIB_DIR:+--no-default-features}
  CDP_BIN="$CARGO_TARGET_DIR/release/cdp"
fi
[ -x "$VENV/bin/moto_server" ] || make peers > /dev/null
rm -rf "$WORK" && mkdir -p "$WORK"
port=$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$VENV/bin/moto_server" -H 127.0.0.1 -p "$port" > "$WORK/moto.log" 2>&1 &
moto=$!
trap 'kill $moto 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  "$VENV/bin/python" -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)' "$port" 2>/dev/null && break
  sleep 0.1
done
endpoint="http://127.0.0.1:$port"
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
mkdir -p "$WORK/pipelines"
cp -r pipelines/audiences "$WORK/pipelines/"
tansu=$(bash tools/tansu.sh)
kport=$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$tansu" broker --listener-url "tcp://127.0.0.1:$kport" --advertised-listener-url "tcp://127.0.0.1:$kport" \
  --storage-engine memory://tansu/ > "$WORK/tansu.log" 2>&1 &
broker=$!
trap 'kill $moto $broker 2>/dev/null || true' EXIT
cargo build --release --locked ${DUCKDB_LIB_DIR:+--no-default-features} --example kafka_produce
{ cat pipelines/customer360.toml
  printf '\n[[streams]]\nname = "signups"\nkind = "kinesis"\nentity = "person"\nstream_name = "signups"\nregion = "us-east-1"\nendpoint_url = "%s"\n' "$endpoint"
  printf '\n[[streams]]\nname = "clicks"\nkind = "kafka"\nentity = "person"\nbootstrap_servers = ["127.0.0.1:%s"]\ntopics = ["signups"]\ngroup = "bench"\n' "$kport"
} > "$WORK/pipelines/customer360.toml"
target=(--lake "file://$WORK/lake" --warehouse "duckdb://$WORK/warehouse.duckdb")
"$CDP_BIN" -q run "$WORK/pipelines/customer360.toml" "${target[@]}" > /dev/null
put=$("$VENV/bin/python" bench/stream.py "$endpoint" signups "$EVENTS")
/usr/bin/time -f "%e %M" -o "$WORK/stream.time" "$CDP_BIN" stream "$WORK/pipelines/customer360.toml" signups \
  "${target[@]}" --until-idle 0 --format json > "$WORK/stream.json" 2> "$WORK/stream.err"
read -r secs kib < "$WORK/stream.time"
kput=$("$CARGO_TARGET_DIR/release/examples/kafka_produce" "127.0.0.1:$kport" signups "$EVENTS")
/usr/bin/time -f "%e %M" -o "$WORK/kafka.time" "$CDP_BIN" stream "$WORK/pipelines/customer360.toml" clicks \
  "${target[@]}" --until-idle 0 --format json > "$WORK/kafka.json" 2> "$WORK/kafka.err"
read -r ksecs kkib < "$WORK/kafka.time"

python3 - "$put" "$secs" "$kib" "$WORK/stream.json" "$kput" "$ksecs" "$kkib" "$WORK/kafka.json" <<'PY' | tee "$WORK/result.json"
import json, sys
a = sys.argv[1:]
def row(source, put, secs, kib, path):
    r = json.load(open(path))
    assert r["loaded"] + r["quarantined"] == r["events"], r
    return {**r, "from": source, "put": json.loads(put), "wall_seconds": float(secs),
            "rss_mib": int(kib) // 1024, "events_per_second": r["events"] / float(secs)}
print(json.dumps({"runs": [row("Kinesis on moto", *a[0:4]), row("Kafka on tansu (memory)", *a[4:8])]}))
PY

python3 - "$WORK/result.json" <<'PY'
import json, pathlib, re, subprocess, sys
r = json.loads(pathlib.Path(sys.argv[1]).read_text())
cpu = subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"], capture_output=True, text=True).stdout.strip()
cores = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
rows = "\n".join(
    f"| {x['from']} | {x['events']:,} | {x['loaded']:,} | {x['quarantined']:,} | {x['matched']:,} | {x['batches']} | {x['wall_seconds']:.2f} | {x['events_per_second']:,.0f} | {x['rss_mib']:,} |"
    for x in r["runs"]
)
n = r["runs"][0]["events"]
section = f"""## Streaming

bench/stream.sh: {n:,} JSON person events in a 2-shard Kinesis stream on moto's emulator,
and the same number in a 2-partition Kafka topic on a tansu broker with in-memory storage
(a tenth of them people the sample already knows, a hundredth not JSON), each read by
`cdp stream --until-idle 0` into the sample pipeline's DuckDB warehouse after a batch run
of the sample data, with the default batch limits (10,000 events, 16 MiB, 1 s). End to
end: reading (GetRecords; Fetch), the person entity's column rules and checks, matching
against the saved identity state, Parquet to the lake, and one warehouse transaction per
micro-batch with the shard's or partition's position. Wall time with process start, and
peak RSS. Machine: {cpu}, {cores} cores.

| from | events | loaded | quarantined | matched | batches | s | events/s | peak RSS MiB |
|---|---:|---:|---:|---:|---:|---:|---:|---:|
{rows}
"""
latency = pathlib.Path("bench/out/stream_latency/result.json")
if latency.exists():
    l = json.loads(latency.read_text())
    section += f"""
bench/stream_latency.sh: produce to queryable at a steady {l['rate']:,} events/s for {l['seconds']} s
(Kafka on tansu; the producer stamps each event's `updated_at`, cdp each row's `_loaded_at`
in the transaction that makes it queryable), over {l['rows']:,} loaded rows in {l['batches']} micro-batches.

| rate events/s | rows | p50 ms | p99 ms | max ms |
|---:|---:|---:|---:|---:|
| {l['rate']:,} | {l['rows']:,} | {l['p50_ms']:,.0f} | {l['p99_ms']:,.0f} | {l['max_ms']:,.0f} |
"""
bench = pathlib.Path("BENCHMARKS.md")
text = bench.read_text() if bench.exists() else "# Benchmarks\n"
text = re.sub(r"\n## Streaming\n.*?(?=\n## |\Z)", "", text, flags=re.S).rstrip("\n")
notes = pathlib.Path("bench/notes/stream.md")
if notes.exists():
    section += "\n" + notes.read_text()
bench.write_text(text + "\n\n" + section)
PY
