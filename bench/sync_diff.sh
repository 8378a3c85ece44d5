#!/usr/bin/env bash
# bench/sync_diff.sh: `cdp sync` at BENCH_SYNC_ROWS rows (default 10,000,000).
#  - Diff: a sync's rows (a DuckDB query over Parquet) against its last snapshot after
#    1% of rows changed, 0.5% were removed and 0.5% added: `cdp sync --dry-run` wall
#    time and peak RSS, against the same diff in DuckDB SQL (bench/sync_diff.py) on the
#    same Parquet files. Both must find the same counts (checked).
#  - Delivery: rows per second of a first full sync into the files destination
#    (Parquet) and of BENCH_SYNC_WEBHOOK_ROWS rows (default 200,000) into the webhook
#    stand-in (tests/standin/destinations.py, Python, on 127.0.0.1).
# Writes the "Syncs" section of BENCHMARKS.md. CDP_BIN picks the binary.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cdp/target}"
export CDP_NO_PROGRESS=1
ROWS="${BENCH_SYNC_ROWS:-10000000}"
HOOK_ROWS="${BENCH_SYNC_WEBHOOK_ROWS:-200000}"
WORK="$ROOT/bench/out/sync"
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
"$VENV/bin/python" bench/sync_diff.py gen "$WORK" "$ROWS"

cd "$WORK"
cat > pipeline.toml <<TOML
[pipeline]
name = "sync_bench"
[lake]
url = "file://lake"
[warehouse]
url = "duckdb://wh.duckdb"
[[sources]]
name = "crm"
kind = "files"
path = "in/*.csv"
entity = "person"
columns = { Id = "record_id" }
[entities.person]
key = "record_id"

[[syncs]]
name = "people"
query = "SELECT * FROM read_parquet('current.parquet')"
key = "id"
mode = "mirror"
consent = "consent"
to = { kind = "files", path = "out", format = "parquet" }
fields = { email = { column = "email", transform = ["trim", "lower"] }, first_name = "first_name", phone = "phone", score = "score" }

[[syncs]]
name = "hook"
query = "SELECT * FROM read_parquet('before.parquet') LIMIT $HOOK_ROWS"
key = "id"
mode = "upsert"
to = { kind = "webhook", url = "http://127.0.0.1:PORT/hook" }
fields = { email = "email", first_name = "first_name", phone = "phone", score = "score" }
TOML

# timed NAME CMD...: runs CMD with GNU time; prints "seconds peak_rss_mib".
timed() {
  local name=$1; shift
  /usr/bin/time -f "%e %M" -o "$name.time" "$@" > "$name.out" 2> "$name.err" \
    || { cat "$name.err" >&2; exit 1; }
  read -r secs kib < "$name.time"
  echo "$secs $((kib / 1024))"
}

cp before.parquet current.parquet
read -r full_s full_mb < <(timed full "$CDP_BIN" sync pipeline.toml people --format json)
cp after.parquet current.parquet
read -r dry_s dry_mb < <(timed dry "$CDP_BIN" sync pipeline.toml people --dry-run --format json)
read -r delta_s delta_mb < <(timed delta "$CDP_BIN" sync pipeline.toml people --format json)
read -r base_wall base_mb < <(timed baseline "$VENV/bin/python" "$ROOT/bench/sync_diff.py" baseline .)

# The webhook stand-in on a free loopback port.
python3 "$ROOT/tests/standin/destinations.py" > hook.port 2> hook.log &
hook_pid=$!
trap 'kill $hook_pid 2>/dev/null || true' EXIT
for _ in $(seq 50); do [ -s hook.port ] && break; sleep 0.1; done
port=$(python3 -c 'import json,sys; print(json.load(open("hook.port"))["port"])')
sed -i "s/127.0.0.1:PORT/127.0.0.1:$port/" pipeline.toml
read -r hook_s hook_mb < <(timed hook "$CDP_BIN" sync pipeline.toml hook --format json)

python3 - "$ROWS" "$HOOK_ROWS" "$full_s" "$full_mb" "$dry_s" "$dry_mb" "$delta_s" "$delta_mb" \
  "$base_wall" "$base_mb" "$hook_s" "$hook_mb" <<'PY' | tee result.json
import json, sys
a = sys.argv[1:]
rows, hook_rows = int(a[0]), int(a[1])
f = lambda x: float(x)
full, dry, delta, base, hook = (json.load(open(n + ".out")) for n in ("full", "dry", "delta", "baseline", "hook"))
full, dry, delta, hook = full[0], dry[0], delta[0], hook[0]
for k in ("added", "changed", "removed"):
    assert dry[k] == base[k], f"{k}: cdp {dry[k]} DuckDB {base[k]}"
    assert delta[k] == base[k], f"{k}: cdp {delta[k]} DuckDB {base[k]}"
assert full["accepted"] == full["added"] and hook["accepted"] == hook_rows, (full, hook)
print(json.dumps({
    "rows": rows, "full_sent": full["accepted"], "full_seconds": f(a[2]), "full_rss_mib": int(a[3]),
    "dry_seconds": f(a[4]), "dry_rss_mib": int(a[5]), "delta_seconds": f(a[6]), "delta_rss_mib": int(a[7]),
    "added": dry["added"], "changed": dry["changed"], "removed": dry["removed"],
    "duckdb_seconds": base["seconds"], "duckdb_runs": base["runs"], "duckdb_wall": f(a[8]),
    "duckdb_rss_mib": int(a[9]), "duckdb": base["duckdb"],
    "hook_rows": hook_rows, "hook_seconds": f(a[10]), "hook_rss_mib": int(a[11]),
}))
PY
cd "$ROOT"

python3 - "$WORK/result.json" <<'PY'
import json, pathlib, re, subprocess, sys
r = json.loads(pathlib.Path(sys.argv[1]).read_text())
cpu = subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"], capture_output=True, text=True).stdout.strip()
cores = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
speed = r["duckdb_seconds"] / r["dry_seconds"]
section = f"""## Syncs: diff against DuckDB SQL, and delivery

bench/sync_diff.sh: a sync over {r['rows']:,} rows (a DuckDB query over Parquet: key, email,
first name, phone, score, consent; 2% without consent), mode mirror, email trimmed and
lower-cased. After a first full sync, 1% of rows changed, 0.5% were removed and 0.5%
added. cdp: `cdp sync --dry-run` (process start, the query, mapping, consent, row
hashes, the snapshot read from the lake, the diff), wall time and peak RSS from GNU time.
DuckDB SQL: the same diff on the same Parquet files (bench/sync_diff.py: anti-joins for
added and removed, a join comparing every mapped field for changed, materialised),
DuckDB {r['duckdb']}, median of 3 in one process (process wall and RSS beside it). Both find
{r['added']:,} added, {r['changed']:,} changed and {r['removed']:,} removed (checked).
Machine: {cpu}, {cores} cores.

| diff | s | peak RSS MiB | speed vs DuckDB |
|---|---:|---:|---:|
| cdp sync --dry-run | {r['dry_seconds']:.2f} | {r['dry_rss_mib']:,} | {speed:.2f}x |
| DuckDB SQL (median in process) | {r['duckdb_seconds']:.2f} | | 1.00x |
| DuckDB SQL process (3 runs, with start) | {r['duckdb_wall']:.2f} | {r['duckdb_rss_mib']:,} | |

| delivery | rows | s | rows/s | peak RSS MiB |
|---|---:|---:|---:|---:|
| files (Parquet), first full sync | {r['full_sent']:,} | {r['full_seconds']:.2f} | {r['full_sent'] / r['full_seconds']:,.0f} | {r['full_rss_mib']:,} |
| files (Parquet), the diff above | {r['added'] + r['changed'] + r['removed']:,} | {r['delta_seconds']:.2f} | {(r['added'] + r['changed'] + r['removed']) / r['delta_seconds']:,.0f} | {r['delta_rss_mib']:,} |
| webhook stand-in (Python, loopback) | {r['hook_rows']:,} | {r['hook_seconds']:.2f} | {r['hook_rows'] / r['hook_seconds']:,.0f} | {r['hook_rss_mib']:,} |
"""
bench = pathlib.Path("BENCHMARKS.md")
text = bench.read_text() if bench.exists() else "# Benchmarks\n"
text = re.sub(r"\n## Syncs: diff against DuckDB SQL, and delivery\n.*?(?=\n## |\Z)", "", text, flags=re.S).rstrip("\n")
notes = pathlib.Path("bench/notes/sync.md")
if notes.exists():
    section += "\n" + notes.read_text()
bench.write_text(text + "\n\n" + section)
PY
