#!/usr/bin/env bash
# bench/load.sh (run by `make bench`, or alone): `cdp load` of BENCH_LOAD_ROWS rows
# (default 10,000,000) into DuckDB against DuckDB's own `COPY ... FROM 'file.parquet'`
# into the same table, and the lake's upload throughput to the S3 emulator (`cdp
# ingest` of the same Parquet file onto an s3:// lake, beside the same onto a local
# lake). Replaces the "Load and lake upload" section of BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cdp/target}"
export CDP_NO_PROGRESS=1
ROWS="${BENCH_LOAD_ROWS:-10000000}"
WORK="bench/out/load"
DATA="$WORK/rows-$ROWS.parquet"
PY=".venv/peers/bin/python"
mkdir -p "$WORK"

cargo build --release --locked
CDP="${CDP_BENCH_BIN:-$CARGO_TARGET_DIR/release/cdp}"
make --no-print-directory peers >/dev/null

# time_it NAME CMD...: wall seconds and peak RSS (MiB) of a command, from GNU time.
time_it() {
  local name=$1; shift
  /usr/bin/time -f "%e %M" -o "$WORK/$name.time" "$@" > "$WORK/$name.out" 2> "$WORK/$name.err"
  read -r secs kib < "$WORK/$name.time"
  echo "$secs $((kib / 1024))"
}

if [ ! -f "$DATA" ]; then
  # Twelve person-like columns: text, dates, a timestamp, numbers; Snappy like cdp's own.
  "$PY" - "$DATA" "$ROWS" <<'PY'
import sys, duckdb
path, rows = sys.argv[1], int(sys.argv[2])
duckdb.sql(f"""
COPY (
  SELECT 'src' || (i % 5) AS source, 'R' || lpad(i::VARCHAR, 10, '0') AS record_id,
         'first' || (i % 5003) AS first_name, 'last' || (i % 20011) AS last_name,
         'user' || i || '@example.org' AS email, '+1555' || lpad((i % 10000000)::VARCHAR, 7, '0') AS phone,
         'city' || (i % 997) AS city, lpad((i % 99999)::VARCHAR, 5, '0') AS postcode,
         DATE '1940-01-01' + (i % 25000)::INTEGER AS birth_date,
         TIMESTAMP '2020-01-01' + to_seconds(i % 100000000) AS updated_at,
         (i % 100000) / 100.0 AS total_spent, (1 + i % 6)::INTEGER AS household_size
  FROM range({rows}) t(i)
) TO '{path}' (FORMAT parquet, COMPRESSION snappy)
""")
PY
fi
bytes=$(stat -c %s "$DATA")
sha=$(sha256sum "$DATA" | cut -d' ' -f1)

# A lake whose last clean run produced exactly this file.
lake="$WORK/lake"
rm -rf "$lake" "$WORK"/*.duckdb "$WORK"/*.duckdb.wal
mkdir -p "$lake/clean/person/bench" "$lake/_state/steps"
cp "$DATA" "$lake/clean/person/bench/data.parquet"
cat > "$lake/_state/steps/clean.json" <<JSON
{"step": "clean", "run_id": "bench", "started_at": "", "finished_at": "", "input": "bench",
 "rows_in": $ROWS, "rows_out": $ROWS,
 "outputs": {"person": {"key": "clean/person/bench/data.parquet", "rows": $ROWS, "sha256": "$sha"}}}
JSON
export CDP_BENCH_PARQUET="$DATA"
# Three rounds, cdp and DuckDB alternating, each into a new database file; the median
# of each is reported (other work on a shared machine moves single runs a lot).
base="duckdb://$WORK/baseline.duckdb"
cdp_runs=() base_runs=()
for round in 1 2 3; do
  rm -f "$WORK"/*.duckdb "$WORK"/*.duckdb.wal
  read -r s mb < <(CDP_LAKE="file://$lake" CDP_WAREHOUSE="duckdb://$WORK/cdp.duckdb" \
    time_it "load$round" "$CDP" load bench/load.toml --force)
  cdp_runs+=("$s $mb")
  "$CDP" sql --warehouse "$base" "CREATE TABLE person AS SELECT * FROM read_parquet('$DATA') LIMIT 0" >/dev/null
  read -r s mb < <(time_it "baseline$round" "$CDP" sql --warehouse "$base" "COPY person FROM '$DATA' (FORMAT parquet)")
  base_runs+=("$s $mb")
  n_cdp=$("$CDP" sql --warehouse "duckdb://$WORK/cdp.duckdb" --format csv "SELECT count(*) FROM person" | tail -1)
  n_base=$("$CDP" sql --warehouse "$base" --format csv "SELECT count(*) FROM person" | tail -1)
  [ "$n_cdp" = "$ROWS" ] && [ "$n_base" = "$ROWS" ] || { echo "row counts differ: cdp $n_cdp, DuckDB $n_base, want $ROWS" >&2; exit 1; }
done
median() { printf '%s\n' "$@" | sort -n | sed -n 2p; }
read -r load_s load_mb < <(median "${cdp_runs[@]}")
read -r base_s base_mb < <(median "${base_runs[@]}")
all_cdp=$(printf '%s\n' "${cdp_runs[@]}" | cut -d' ' -f1 | paste -sd/)
all_base=$(printf '%s\n' "${base_runs[@]}" | cut -d' ' -f1 | paste -sd/)

# Upload: the same file landed by `cdp ingest` on a local lake and on the S3 emulator.
started_peers=0
if [ ! -f .venv/peers-run/env ]; then bash tests/peers/up.sh >/dev/null; started_peers=1; fi
stop_peers() { if [ "$started_peers" = 1 ]; then bash tests/peers/down.sh >/dev/null; fi; }
trap stop_peers EXIT
# shellcheck disable=SC1091
source .venv/peers-run/env
export AWS_ACCESS_KEY_ID=cdp-test AWS_SECRET_ACCESS_KEY=cdp-test AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
export CDP_BENCH_S3_ENDPOINT="$CDP_TEST_S3_ENDPOINT" CDP_BENCH_CACHE="$WORK/cache"
bucket="bench-$(date +%s)"
"$PY" - "$CDP_TEST_S3_ENDPOINT" "$bucket" <<'PY'
import sys, boto3
boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1").create_bucket(Bucket=sys.argv[2])
PY
rm -rf "$WORK/ingest-lake" "$WORK/cache"
read -r local_s _ < <(CDP_LAKE="file://$WORK/ingest-lake" CDP_WAREHOUSE="duckdb://$WORK/unused.duckdb" \
  time_it ingest_local "$CDP" ingest bench/load.toml)
read -r s3_s s3_mb < <(CDP_LAKE="s3://$bucket/lake" CDP_WAREHOUSE="duckdb://$WORK/unused.duckdb" \
  time_it ingest_s3 "$CDP" ingest bench/load.toml)

py() { python3 -c "print($1)"; }
mib=$(py "f'{$bytes/1048576:,.0f}'")
{
  echo "## Load into DuckDB and lake upload"
  echo
  echo "Produced by \`bench/load.sh\` ($(date -u +%Y-%m-%d)), part of \`make bench\`."
  echo "$(py "f'{$ROWS:,}'") rows of 12 person-like columns in one Snappy Parquet file ($mib MiB)."
  echo "cdp: \`cdp load\` of that file as the current clean snapshot into a new DuckDB file"
  echo "(one transaction: \`CREATE OR REPLACE TABLE ... AS SELECT * FROM read_parquet(...)\`, the"
  echo "row count, the ledger row). DuckDB alone: \`COPY person FROM 'file.parquet'\` into an empty"
  echo "table of the same schema in a new file, through the same DuckDB build (\`cdp sql\`)."
  echo
  echo "| run | wall s, median (3 runs) | rows/s | peak RSS MiB |"
  echo "|---|---:|---:|---:|"
  echo "| cdp load | $load_s ($all_cdp) | $(py "f'{$ROWS/$load_s:,.0f}'") | $load_mb |"
  echo "| DuckDB COPY FROM parquet | $base_s ($all_base) | $(py "f'{$ROWS/$base_s:,.0f}'") | $base_mb |"
  echo
  echo "cdp load / DuckDB alone: **$(py "f'{$load_s/$base_s:.2f}'")x** (target: within 1.2x). Load average"
  echo "during the runs: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores (other builds share this machine)."
  echo
  echo "Lake upload: \`cdp ingest\` landing the same $mib MiB file (SHA-256 of the source, copy"
  echo "into the lake, SHA-256 again, then for S3 a multipart upload in 16 MiB parts with CRC32"
  echo "checksums) onto a local lake and onto the S3 emulator (moto on 127.0.0.1, in-memory)."
  echo
  echo "| lake | wall s | MiB/s | peak RSS MiB |"
  echo "|---|---:|---:|---:|"
  echo "| local directory | $local_s | $(py "f'{$bytes/1048576/$local_s:,.1f}'") | |"
  echo "| S3 emulator | $s3_s | $(py "f'{$bytes/1048576/$s3_s:,.1f}'") | $s3_mb |"
} > "$WORK/load.md"

# Replace the section in BENCHMARKS.md (or append it).
python3 - "$WORK/load.md" <<'PY'
import re, sys, pathlib
new = pathlib.Path(sys.argv[1]).read_text()
bench = pathlib.Path("BENCHMARKS.md")
text = bench.read_text() if bench.exists() else "# Benchmarks\n"
text = re.sub(r"\n## Load (?:and lake upload \(issue 5\)|into DuckDB and lake upload)\n.*?(?=\n## |\Z)", "", text, flags=re.S).rstrip("\n")
bench.write_text(text + "\n\n" + new)
PY
cat "$WORK/load.md"
