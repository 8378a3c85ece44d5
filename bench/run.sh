#!/usr/bin/env bash
# make bench: measures cdp against baselines on this machine and writes BENCHMARKS.md.
# BENCH_PERSONS (default 3,900,000, about 10 million person records) sets the size
# of the clean benchmark; BENCH_IDENTITY_PERSONS the sizes of the
# identity benchmark (default: those bench/identity.sh names).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cdp/target}"
export CDP_NO_PROGRESS=1
PERSONS="${BENCH_PERSONS:-3900000}"
WORK="bench/out"
DATA="$WORK/data-$PERSONS"
VENV="bench/.venv"
mkdir -p "$WORK"

cargo build --release --locked ${DUCKDB_LIB_DIR:+--no-default-features}
CDP="$CARGO_TARGET_DIR/release/cdp"

if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet "duckdb==1.4.*"
fi

# Always generated afresh, so a changed generator is what gets measured.
rm -rf "$DATA"
"$CDP" gen --persons "$PERSONS" --seed 42 --out "$DATA" -q > /dev/null
person_records=$(($(wc -l < "$DATA/truth.csv") - 1))
order_rows=$(($(wc -l < "$DATA/shop/orders.csv") - 1))

# time_it NAME CMD...: wall seconds and peak RSS (MiB) of a command, from GNU time.
time_it() {
  local name=$1; shift
  /usr/bin/time -f "%e %M" -o "$WORK/$name.time" "$@" > "$WORK/$name.out" 2> "$WORK/$name.err"
  read -r secs kib < "$WORK/$name.time"
  echo "$secs $((kib / 1024))"
}

run_dir="$WORK/run"
rm -rf "$run_dir" && mkdir -p "$run_dir"
export CDP_DATA_DIR="$DATA"
lake="file://$run_dir/lake"
wh="duckdb://$run_dir/warehouse.duckdb"
read -r ingest_s ingest_mb < <(time_it ingest "$CDP" ingest pipelines/customer360.toml --lake "$lake" --warehouse "$wh")
read -r clean_s clean_mb < <(time_it clean "$CDP" clean pipelines/customer360.toml --lake "$lake" --warehouse "$wh")

base_dir="$WORK/baseline"
rm -rf "$base_dir" && mkdir -p "$base_dir"
read -r base_s base_mb < <(time_it baseline "$VENV/bin/python" bench/baseline_clean.py "$DATA" "$base_dir")

total=$((person_records + order_rows))
rate() { python3 -c "print(f'{$1/$2:,.0f}')"; }
machine="$(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB RAM"
{
  echo "# Benchmarks"
  echo
  echo "Tables produced by \`make bench\` ($(date -u +%Y-%m-%d)); do not edit them by hand. The notes"
  echo "under a table come from bench/notes/ (written by hand; each names the run it reads)."
  echo "Machine: $machine."
  echo
  echo "## Clean: throughput against a DuckDB SQL baseline"
  echo
  echo "\`cdp gen --persons $PERSONS --seed 42\`: $person_records person records and $order_rows orders"
  echo "($total rows) in CSV and JSON lines. cdp: \`cdp clean\` with pipelines/customer360.toml"
  echo "(every normaliser, libphonenumber phones, 9 person and 5 order checks, quarantine,"
  echo "reports). Baseline: the same files cleaned directly in DuckDB SQL (bench/baseline_clean.py:"
  echo "the same normalisers with the same reference tables, the same checks and quarantine; its"
  echo "docstring lists what SQL cannot do: libphonenumber validation, NFKC, line numbers and"
  echo "superseding), DuckDB from PyPI, all cores."
  echo
  echo "| run | wall s | rows/s | peak RSS MiB |"
  echo "|---|---:|---:|---:|"
  echo "| cdp clean | $clean_s | $(rate $total $clean_s) | $clean_mb |"
  echo "| DuckDB SQL baseline | $base_s | $(rate $total $base_s) | $base_mb |"
  echo "| (cdp ingest, for reference) | $ingest_s | $(rate $total $ingest_s) | $ingest_mb |"
} > BENCHMARKS.md

# Identity resolution: cdp, the rules alone and Splink at about 5k, 100k and 1M records.
# shellcheck disable=SC2086
bash bench/identity.sh ${BENCH_IDENTITY_PERSONS:-}
{ echo; cat "$WORK/identity.md"; } >> BENCHMARKS.md
[ ! -f bench/notes/identity.md ] || { echo; cat bench/notes/identity.md; } >> BENCHMARKS.md
# Identity defaults (column kinds) against the full [identity] section.
bash bench/identity_defaults.sh
{ echo; cat "$WORK/identity_defaults.md"; } >> BENCHMARKS.md
[ ! -f bench/notes/identity_defaults.md ] || { echo; cat bench/notes/identity_defaults.md; } >> BENCHMARKS.md
bash bench/identity_generalise.sh
{ echo; cat "$WORK/identity_generalise.md"; } >> BENCHMARKS.md
[ ! -f bench/notes/identity_generalise.md ] || { echo; cat bench/notes/identity_generalise.md; } >> BENCHMARKS.md
# Loading and lake upload: BENCH_LOAD_ROWS, default 10,000,000.
bash bench/load.sh
# Audiences: BENCH_AUDIENCE_PERSONS, default 1,000,000.
CDP_BIN="$CDP" bash bench/audiences.sh > /dev/null
# Syncs: the diff at BENCH_SYNC_ROWS (default 10,000,000) and delivery.
CDP_BIN="$CDP" bash bench/sync_diff.sh > /dev/null
# Features and report: BENCH_FEATURES_PERSONS, default 10,000,000.
CDP_BIN="$CDP" bash bench/features.sh > /dev/null
# Streaming from Kinesis on moto: BENCH_STREAM_EVENTS, default 100,000.
CDP_BIN="$CDP" bash bench/stream_latency.sh > /dev/null
CDP_BIN="$CDP" bash bench/stream.sh > /dev/null
# Record lookups: BENCH_MATCH_PERSONS, default 1,000,000.
CDP_BIN="$CDP" bash bench/match.sh > /dev/null
cat BENCHMARKS.md
