#!/usr/bin/env bash
# bench/match.sh: `cdp match --serve` over BENCH_MATCH_PERSONS known persons (default
# 1,000,000, from `cdp gen`, ingested, cleaned and resolved), loaded by
# bench/match_load.py on loopback: lookups per second and p50/p99 latency, plus the
# time to load the index and the server's RSS. Then the same server again under
# bench/match_load.rs, a lean generator in plain Rust (compiled here with rustc, no
# crates) that leaves the cores to the server and reports the server's CPU per lookup.
# Prints the figures as JSON and keeps them in bench/out/match/result.json. CDP_BIN picks
# the binary (default: the release build).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cdp/target}"
export CDP_NO_PROGRESS=1
PERSONS="${BENCH_MATCH_PERSONS:-1000000}"
SECONDS_LOAD="${BENCH_MATCH_SECONDS:-20}"
CONNECTIONS="${BENCH_MATCH_CONNECTIONS:-16}"
WORK="bench/out/match"
PIPELINE=pipelines/customer360.toml
if [ -z "${CDP_BIN:-}" ]; then
  cargo build --release --locked --no-default-features
  CDP_BIN="$CARGO_TARGET_DIR/release/cdp"
fi
rm -rf "$WORK" && mkdir -p "$WORK"
data="$WORK/data" lake="$WORK/lake"
"$CDP_BIN" gen --persons "$PERSONS" --seed 42 --out "$data" -q > /dev/null
for step in ingest clean resolve load; do
  CDP_DATA_DIR="$data" "$CDP_BIN" "$step" "$PIPELINE" -q \
    --lake "file://$lake" --warehouse "duckdb://$WORK/wh.duckdb" > /dev/null
done
# Queries: clean records of the lake (known persons), a share of them with the first
# name dropped so that scoring, not only the rules, answers.
cols="email_key, phone, first_name_formal, first_name, last_name, birth_date, postcode, street, city, state"
"$CDP_BIN" sql --warehouse "duckdb://$WORK/wh.duckdb" --format json \
  "SELECT $cols FROM read_parquet('$lake/clean/person/*/data.parquet') USING SAMPLE 50000 ROWS (reservoir, 42)" \
  > "$WORK/sample.json"
python3 bench/match_load.py queries "$WORK/sample.json" "$WORK/queries.jsonl"

started=$(date +%s.%N)
"$CDP_BIN" match "$PIPELINE" --lake "file://$lake" --serve 127.0.0.1:0 > "$WORK/serve.out" 2> "$WORK/serve.err" &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
until grep -q "listening on" "$WORK/serve.out" 2>/dev/null; do sleep 0.05; done
loaded=$(python3 -c "import time,sys; print(round(time.time() - float(sys.argv[1]), 2))" "$started")
addr=$(sed -n 's/^listening on //p' "$WORK/serve.out")
rss_mib=$(awk '/VmRSS/ {print int($2 / 1024)}' "/proc/$server/status")
python3 bench/match_load.py load "$addr" "$WORK/queries.jsonl" "$SECONDS_LOAD" "$CONNECTIONS" \
  "$PERSONS" "$loaded" "$rss_mib" > "$WORK/python.json"
rustc -O --edition 2021 bench/match_load.rs -o "$WORK/match_load"
"$WORK/match_load" "$addr" "$WORK/queries.jsonl" "$SECONDS_LOAD" "$CONNECTIONS" "$server" > "$WORK/lean.json"
python3 - "$WORK" "$SECONDS_LOAD" <<'PY' | tee "$WORK/result.json"
import json, pathlib, sys
work = pathlib.Path(sys.argv[1])
r = json.loads((work / "python.json").read_text())
r["seconds"] = float(sys.argv[2])
r["lean"] = json.loads((work / "lean.json").read_text())
print(json.dumps(r, indent=2))
PY

python3 - "$WORK/result.json" <<'PY'
import json, pathlib, re, subprocess, sys
r = json.loads(pathlib.Path(sys.argv[1]).read_text())
l = r["lean"]
cpu = subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"], capture_output=True, text=True).stdout.strip()
cores = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
section = f"""## Record lookups: cdp match --serve

bench/match.sh: `cdp gen --persons {r['persons']:,}` ingested, cleaned and resolved with the
sample pipeline; `cdp match --serve` on loopback over the saved state, loaded for
{r['seconds']:g} s by each of two generators in turn, each with {r['connections']}
keep-alive connections posting records sampled from the clean person records (a share
with the email and phone dropped, so that scoring answers): bench/match_load.py
({r['connections']} Python processes) and bench/match_load.rs ({r['connections']} threads of plain
Rust). The generator shares the 2 cores with the server. Machine: {cpu}, {cores} cores.
Index load {r['index_load_seconds']} s; server RSS {r['server_rss_mib']:,} MiB.

| load generator | lookups | lookups/s | p50 ms | p99 ms | server CPU µs per lookup |
|---|---:|---:|---:|---:|---:|
| match_load.py (Python) | {r['lookups']:,} | {r['lookups_per_second']:,} | {r['p50_ms']} | {r['p99_ms']} | |
| match_load.rs (Rust) | {l['lookups']:,} | {l['lookups_per_second']:,} | {l['p50_ms']} | {l['p99_ms']} | {l['server_cpu_us_per_lookup']} |
"""
bench = pathlib.Path("BENCHMARKS.md")
text = bench.read_text() if bench.exists() else "# Benchmarks\n"
text = re.sub(r"\n## Record lookups: cdp match --serve\n.*?(?=\n## |\Z)", "", text, flags=re.S).rstrip("\n")
notes = pathlib.Path("bench/notes/match.md")
if notes.exists():
    section += "\n" + notes.read_text()
bench.write_text(text + "\n\n" + section)
PY
