#!/usr/bin/env bash
# bench/features.sh: `cdp features` and `cdp report` over BENCH_FEATURES_PERSONS persons
# (default 10,000,000) and their orders, in a DuckDB warehouse filled directly the way
# the audience benchmark fills it (bench/audiences.py; pipeline bench/audiences.toml).
# Time and peak RSS of each (median wall of 3 runs for features), beside the same
# features written by hand in DuckDB SQL and written to Parquet in one process
# (bench/features.py), which must agree with cdp's. Writes the "Features and report"
# section of BENCHMARKS.md. CDP_BIN picks the binary.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cdp/target}"
export CDP_NO_PROGRESS=1
PERSONS="${BENCH_FEATURES_PERSONS:-10000000}"
WORK="$ROOT/bench/out/features"
VENV="$ROOT/bench/.venv-audiences"
if [ -z "${CDP_BIN:-}" ]; then
  cargo build --release --locked ${DUCKDB_LIB_DIR:+--no-default-features}
  CDP_BIN="$CARGO_TARGET_DIR/release/cdp"
fi
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "duckdb==1.5.5"
fi
rm -rf "$WORK" && mkdir -p "$WORK"
sizes=$(cd bench && "$VENV/bin/python" features.py fill "$WORK/warehouse.duckdb" "$PERSONS")
target=(--lake "file://$WORK/lake" --warehouse "duckdb://$WORK/warehouse.duckdb")

# timed NAME CMD...: wall seconds and peak RSS (MiB) from GNU time.
timed() {
  local name=$1; shift
  /usr/bin/time -f "%e %M" -o "$WORK/$name.time" "$@" > "$WORK/$name.out" 2> "$WORK/$name.err" \
    || { cat "$WORK/$name.err" >&2; exit 1; }
  read -r secs kib < "$WORK/$name.time"
  echo "$secs $((kib / 1024))"
}
feature_runs=()
feature_rss=0
for i in 1 2 3; do
  read -r s mb < <(timed "features$i" "$CDP_BIN" features bench/audiences.toml "${target[@]}" --as-of 2026-12-01 --format json)
  feature_runs+=("$s")
  [ "$mb" -gt "$feature_rss" ] && feature_rss=$mb
done
read -r report_s report_mb < <(timed report "$CDP_BIN" report bench/audiences.toml "${target[@]}" --out "$WORK/report.html")
hand=$(cd bench && "$VENV/bin/python" features.py hand "$WORK/warehouse.duckdb" "$WORK/hand.parquet")

python3 - "$sizes" "$hand" "$report_s" "$report_mb" "$feature_rss" "${feature_runs[@]}" <<'PY' | tee "$WORK/result.json"
import json, statistics, sys
sizes, hand = json.loads(sys.argv[1]), json.loads(sys.argv[2])
runs = [float(x) for x in sys.argv[6:]]
cdp_report = json.load(open("bench/out/features/features1.out"))
print(json.dumps({**sizes, "features_seconds": statistics.median(runs), "features_runs": runs,
                  "features_rss_mib": int(sys.argv[5]), "columns": len(cdp_report["columns"]),
                  "hand_seconds": hand["seconds"], "hand_runs": hand["runs"], "duckdb": hand["duckdb"],
                  "hand_traits_seconds": hand["traits_seconds"], "hand_traits_runs": hand["traits_runs"],
                  "report_seconds": float(sys.argv[3]), "report_rss_mib": int(sys.argv[4])}))
PY

python3 - "$WORK/result.json" <<'PY'
import json, pathlib, re, subprocess, sys
r = json.loads(pathlib.Path(sys.argv[1]).read_text())
cpu = subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"], capture_output=True, text=True).stdout.strip()
cores = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
section = f"""## Features and report

bench/features.sh: {r['persons']:,} persons and {r['orders']:,} orders in a DuckDB warehouse filled
directly (as the audience benchmark fills it). `cdp features --as-of 2026-12-01` writes
{r['columns']} columns per person (RFM and quintile scores, tenure, 30/90/365-day windows,
currency shares, sources seen, has email) to `person_features` and to the lake as Parquet
with its schema: wall time with process start, median of 3, and peak RSS. Beside it the
same features written by hand in DuckDB SQL (bench/features.py), materialised and written
to Parquet, median of 3 in one DuckDB {r['duckdb']} process, twice: the 18 columns this
baseline has always had, and with the bench pipeline's three traits added as a hand-writer
would add them (21 columns, like cdp's). Both agree with cdp on every person (checked). `cdp report` over the same warehouse (no runs in its lake: the identity,
audience and campaign queries, the page and its JSON). Machine: {cpu}, {cores} cores.

| run | columns | s | peak RSS MiB | cdp's speed against it |
|---|---:|---:|---:|---:|
| cdp features | {r['columns']} | {r['features_seconds']:.2f} | {r['features_rss_mib']:,} | |
| hand-written DuckDB SQL + Parquet | 18 | {r['hand_seconds']:.2f} | | {r['hand_seconds'] / r['features_seconds']:.2f}x |
| hand-written, with the three traits | 21 | {r['hand_traits_seconds']:.2f} | | {r['hand_traits_seconds'] / r['features_seconds']:.2f}x |
| cdp report | | {r['report_seconds']:.2f} | {r['report_rss_mib']:,} | |
"""
bench = pathlib.Path("BENCHMARKS.md")
text = bench.read_text() if bench.exists() else "# Benchmarks\n"
text = re.sub(r"\n## Features and report\n.*?(?=\n## |\Z)", "", text, flags=re.S).rstrip("\n")
notes = pathlib.Path("bench/notes/features.md")
if notes.exists():
    section += "\n" + notes.read_text()
bench.write_text(text + "\n\n" + section)
PY
