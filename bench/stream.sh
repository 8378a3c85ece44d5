#!/usr/bin/env bash
# bench/stream.sh: `cdp stream` end to end (consume, clean, match, lake, DuckDB append)
# from Kinesis on the moto emulator, BENCH_STREAM_EVENTS events (default 100,000) into
# the sample pipeline's warehouse after a batch run of the sample data (so matching has
# a saved identity state). Writes the "Streaming" section of BENCHMARKS.md.
# The moto server comes from the test peers' venv (make peers).
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
{ cat pipelines/customer360.toml; printf '\n[[streams]]\nname = "signups"\nkind = "kinesis"\nentity = "person"\nstream_name = "signups"\nregion = "us-east-1"\nendpoint_url = "%s"\n' "$endpoint"; } > "$WORK/pipelines/customer360.toml"
target=(--lake "file://$WORK/lake" --warehouse "duckdb://$WORK/warehouse.duckdb")
"$CDP_BIN" -q run "$WORK/pipelines/customer360.toml" "${target[@]}" > /dev/null
put=$("$VENV/bin/python" bench/stream.py "$endpoint" signups "$EVENTS")
/usr/bin/time -f "%e %M" -o "$WORK/stream.time" "$CDP_BIN" stream "$WORK/pipelines/customer360.toml" signups \
  "${target[@]}" --until-idle 0 --format json > "$WORK/stream.json" 2> "$WORK/stream.err"
read -r secs kib < "$WORK/stream.time"

python3 - "$put" "$secs" "$kib" "$WORK/stream.json" <<'PY' | tee "$WORK/result.json"
import json, sys
put, secs, kib = json.loads(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
r = json.load(open(sys.argv[4]))
assert r["loaded"] + r["quarantined"] == r["events"], r
print(json.dumps({**r, "put_seconds": put["put_seconds"], "wall_seconds": secs, "rss_mib": kib // 1024,
                  "events_per_second": r["events"] / secs}))
PY

python3 - "$WORK/result.json" <<'PY'
import json, pathlib, re, subprocess, sys
r = json.loads(pathlib.Path(sys.argv[1]).read_text())
cpu = subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"], capture_output=True, text=True).stdout.strip()
cores = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
section = f"""## Streaming

bench/stream.sh: {r['events']:,} JSON person events in a 2-shard Kinesis stream on moto's
emulator (a tenth of them people the sample already knows, a hundredth not JSON), read by
`cdp stream --until-idle 0` into the sample pipeline's DuckDB warehouse after a batch run
of the sample data. End to end: GetRecords, the person entity's column rules and checks,
matching against the saved identity state, Parquet to the lake, and one warehouse
transaction per micro-batch with the shard's position. Wall time with process start, and
peak RSS. Machine: {cpu}, {cores} cores.

| events | loaded | quarantined | matched | batches | s | events/s | peak RSS MiB |
|---:|---:|---:|---:|---:|---:|---:|---:|
| {r['events']:,} | {r['loaded']:,} | {r['quarantined']:,} | {r['matched']:,} | {r['batches']} | {r['wall_seconds']:.2f} | {r['events_per_second']:,.0f} | {r['rss_mib']:,} |
"""
bench = pathlib.Path("BENCHMARKS.md")
text = bench.read_text() if bench.exists() else "# Benchmarks\n"
text = re.sub(r"\n## Streaming\n.*?(?=\n## |\Z)", "", text, flags=re.S).rstrip("\n")
notes = pathlib.Path("bench/notes/stream.md")
if notes.exists():
    section += "\n" + notes.read_text()
bench.write_text(text + "\n\n" + section)
PY
