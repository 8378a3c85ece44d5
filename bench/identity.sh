#!/usr/bin/env bash
# Identity benchmark (issue 4), called by bench/run.sh: at each size, `cdp resolve`
# (Fellegi-Sunter and guards), the deterministic rules alone (the same pipeline
# without [identity.matching]/[identity.guards]) and Splink on DuckDB
# (bench/baseline_splink.py) resolve the same clean records; time, peak RSS and
# pairwise P/R/F1 go to bench/out/identity.md.
# usage: bash bench/identity.sh [PERSONS...]   (default 40000 400000: about 100k
# and 1M person records)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cdp/target}"
export CDP_NO_PROGRESS=1
CDP="$CARGO_TARGET_DIR/release/cdp"
VENV="bench/.venv"
WORK="bench/out"
PIPELINE=pipelines/customer360.toml
SIZES=("$@")
[ ${#SIZES[@]} -gt 0 ] || SIZES=(40000 400000)
mkdir -p "$WORK"
[ -x "$CDP" ] || cargo build --release --locked

if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
# Splink leans on sqlglot to write its SQL, so that is pinned too.
if ! "$VENV/bin/python" -c 'import splink, sys; sys.exit(splink.__version__ != "4.0.17")' 2>/dev/null; then
  "$VENV/bin/pip" install --quiet "duckdb==1.4.*" "splink==4.0.17" "sqlglot==30.30.0"
fi

# The deterministic rules alone: the sample pipeline up to its matching section.
RULES_ONLY="$WORK/rules-only.toml"
awk '/^\[identity.matching\]/{skip=1} /^\[load\]/{skip=0} !skip' "$PIPELINE" > "$RULES_ONLY"

# measure NAME CMD...: "seconds peak_rss_mib" of a command, from GNU time.
measure() {
  local name=$1; shift
  /usr/bin/time -f "%e %M" -o "$WORK/$name.time" "$@" > "$WORK/$name.out" 2> "$WORK/$name.err"
  read -r secs kib < "$WORK/$name.time"
  echo "$secs $((kib / 1024))"
}
# accuracy NAME: "P R F1 exact%" from a `--truth` line in NAME.out.
accuracy() {
  sed -n 's/^precision=\([0-9.]*\) recall=\([0-9.]*\) f1=\([0-9.]*\) .*= \([0-9.]*\)%.*/\1 \2 \3 \4/p' "$WORK/$1.out"
}

rows=()
for n in "${SIZES[@]}"; do
  data="$WORK/data-$n"
  [ -f "$data/truth.csv" ] || "$CDP" gen --persons "$n" --seed 42 --out "$data" -q
  records=$(($(wc -l < "$data/truth.csv") - 1))
  for variant in cdp rules; do
    lake="$WORK/idlake-$variant-$n"
    pipeline=$PIPELINE
    [ "$variant" = rules ] && pipeline=$RULES_ONLY
    rm -rf "$lake" && mkdir -p "$lake"
    for step in ingest clean; do
      CDP_DATA_DIR="$data" "$CDP" "$step" "$pipeline" -q \
        --lake "file://$lake" --warehouse "duckdb://$lake/wh.duckdb" > /dev/null
    done
    read -r secs mib < <(measure "$variant-resolve-$n" "$CDP" resolve "$pipeline" \
      --lake "file://$lake" --warehouse "duckdb://$lake/wh.duckdb" --truth "$data/truth.csv")
    read -r p r f exact < <(accuracy "$variant-resolve-$n")
    label="cdp resolve"
    [ "$variant" = rules ] && label="deterministic rules alone (cdp)"
    rows+=("| $records | $label | $secs | $mib | $p | $r | $f | $exact |")
    # The second cdp run: nothing changed, so nothing is scored again.
    if [ "$variant" = cdp ]; then
      read -r secs mib < <(measure "cdp-rerun-$n" "$CDP" resolve "$pipeline" --force \
        --lake "file://$lake" --warehouse "duckdb://$lake/wh.duckdb" --truth "$data/truth.csv")
      read -r p r f exact < <(accuracy "cdp-rerun-$n")
      rows+=("| $records | cdp resolve again, input unchanged (model and pairs reused) | $secs | $mib | $p | $r | $f | $exact |")
      cp "$WORK/cdp-resolve-$n.out" "$WORK/cdp-resolve-$n.report"
    fi
  done
  parquet=$(ls "$WORK/idlake-cdp-$n"/clean/person/*/data.parquet)
  json="$WORK/splink-$n.json"
  read -r secs mib < <(measure "splink-$n" "$VENV/bin/python" bench/baseline_splink.py \
    "$parquet" "$data/truth.csv" "$json")
  read -r p r f exact < <("$VENV/bin/python" - "$json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
print(f"{j['precision']:.4f} {j['recall']:.4f} {j['f1']:.4f} {100 * j['exact_person_share']:.1f}")
PY
)
  rows+=("| $records | Splink 4.0.17 (DuckDB), threshold 0.995 | $secs | $mib | $p | $r | $f | $exact |")
done

{
  echo "## Identity resolution (issue 4)"
  echo
  echo "\`cdp gen --seed 42\` data (sizes in person records), cleaned once by \`cdp clean\`; each"
  echo "resolver then reads the same clean records. Seconds and peak RSS are the whole process"
  echo "(GNU time). P/R/F1 are pairwise; \"exact\" is the share of true persons whose records form"
  echo "exactly one predicted person."
  echo
  echo "| records | resolver | wall s | peak RSS MiB | precision | recall | F1 | exact % |"
  echo "|---:|---|---:|---:|---:|---:|---:|---:|"
  printf '%s\n' "${rows[@]}"
} > "$WORK/identity.md"
cat "$WORK/identity.md"
