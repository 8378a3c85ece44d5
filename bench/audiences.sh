#!/usr/bin/env bash
# bench/audiences.sh: 20 audiences of mixed shapes (bench/audiences.toml) built by cdp
# over a warehouse of BENCH_AUDIENCE_PERSONS persons (default 1,000,000) and their
# orders, against the same audiences written by hand in SQL, in one DuckDB process
# (bench/audiences.py). Prints the figures as JSON and keeps them in
# bench/out/audiences/result.json. CDP_BIN picks the binary (default: the release build).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cdp/target}"
export CDP_NO_PROGRESS=1
PERSONS="${BENCH_AUDIENCE_PERSONS:-1000000}"
WORK="bench/out/audiences"
VENV="bench/.venv-audiences"
if [ -z "${CDP_BIN:-}" ]; then
  cargo build --release --locked
  CDP_BIN="$CARGO_TARGET_DIR/release/cdp"
fi
# DuckDB from PyPI, the 1.5 line cdp links, so both read one warehouse file.
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "duckdb==1.5.5"
fi
rm -rf "$WORK" && mkdir -p "$WORK"
export CDP_WAREHOUSE="duckdb://$WORK/warehouse.duckdb" CDP_LAKE="file://$WORK/lake"
"$VENV/bin/python" bench/audiences.py "$CDP_BIN" bench/audiences.toml "$WORK/warehouse.duckdb" "$PERSONS" | tee "$WORK/result.json"

# Replace the section in BENCHMARKS.md (or append it).
python3 - "$WORK/result.json" "${CDP_BIN}" <<'PY'
import json, pathlib, platform, re, subprocess, sys
r = json.loads(pathlib.Path(sys.argv[1]).read_text())
cpu = subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"], capture_output=True, text=True).stdout.strip()
cores = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
rows = "\n".join(
    f"| {a['audience']} | {a['members']:,} | {a['cdp_seconds']:.3f} | {a['hand_seconds']:.3f} | {a['hand_seconds'] / a['cdp_seconds']:.2f}x |"
    for a in r["audiences"]
)
speed = r["total_hand_seconds"] / r["total_cdp_seconds"]
section = f"""## Audiences: compiled SQL against hand-written SQL

bench/audiences.sh: a DuckDB warehouse filled directly with {r['persons']:,} persons
(`customer_360`), their shop records (`identity_graph`) and {r['orders']:,} orders, shaped like
the sample's; the 20 audiences of bench/audiences.toml (properties, related-record windows
and aggregates, traits, audiences of audiences, a holdout with splits). Each audience's
query as cdp compiles it (`cdp audience preview --sql`) and the same audience written by
hand (bench/audiences.py) run in one DuckDB {r['duckdb']} process as `CREATE TABLE AS`,
median of 3; both select the same persons (checked). Machine: {cpu}, {cores} cores; load
average {r.get('load_average', '?')} at the end of the run.

| audience | members | cdp s | hand-written s | speed vs hand |
|---|---:|---:|---:|---:|
{rows}
| **all 20** | | **{r['total_cdp_seconds']:.3f}** | **{r['total_hand_seconds']:.3f}** | **{speed:.2f}x** |

`cdp audience build` of all 20 (work tables, sizes and guard, one transaction publishing the
audience tables, membership history, holdouts and runs): {r['build_all_seconds']:.1f} s.
`cdp audience preview winback_split --by state`: {r['preview_seconds']:.2f} s (both with
process start).
"""
bench = pathlib.Path("BENCHMARKS.md")
text = bench.read_text() if bench.exists() else "# Benchmarks\n"
text = re.sub(r"\n## Audiences: compiled SQL against hand-written SQL\n.*?(?=\n## |\Z)", "", text, flags=re.S).rstrip("\n")
notes = pathlib.Path("bench/notes/audiences.md")
if notes.exists():
    section += "\n" + notes.read_text()
bench.write_text(text + "\n\n" + section)
PY
