#!/usr/bin/env bash
# Identity benchmark, called by bench/run.sh: at each size, `cdp resolve`
# (Fellegi-Sunter and guards), the deterministic rules alone (the same pipeline
# without [identity.matching]/[identity.guards]) and Splink on DuckDB
# (bench/baseline_splink.py) resolve the same clean records; time, peak RSS and
# pairwise P/R/F1 go to bench/out/identity.md, with an estimate of the F1 the
# records allow (bench/identity_ceiling.py).
# usage: bash bench/identity.sh [PERSONS[:embedded]...]   (default 2000 40000 400000
# 40000:embedded: about 5k, 100k and 1M person records with census-shaped surnames, and
# 100k from the namesake-dense population `cdp gen --surnames embedded`)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cdp/target}"
export CDP_NO_PROGRESS=1
CDP="$CARGO_TARGET_DIR/release/cdp"
VENV="bench/.venv"
WORK="bench/out"
PIPELINE=pipelines/customer360.toml
SIZES=("$@")
[ ${#SIZES[@]} -gt 0 ] || SIZES=(2000 40000 400000 40000:embedded)
mkdir -p "$WORK"
[ -x "$CDP" ] || cargo build --release --locked

# shellcheck source=bench/splink_venv.sh
source bench/splink_venv.sh

# The deterministic rules alone: the sample pipeline up to its matching section.
RULES_ONLY="$WORK/rules-only.toml"
# Its audience files, which the pipeline names relative to itself.
rm -rf "$WORK/audiences" && cp -r pipelines/audiences "$WORK/audiences"
# (defaults = false: without it the column kinds would fill matching and guards back in)
awk '/^\[identity.matching\]/{skip=1} /^\[load\]/{skip=0} !skip' "$PIPELINE" \
  | sed 's/^\[identity\]$/[identity]\ndefaults = false/' > "$RULES_ONLY"

# measure NAME CMD...: "seconds peak_rss_mib" of a command, from GNU time.
measure() {
  local name=$1; shift
  /usr/bin/time -f "%e %M" -o "$WORK/$name.time" "$@" > "$WORK/$name.out" 2> "$WORK/$name.err"
  read -r secs kib < "$WORK/$name.time"
  echo "$secs $((kib / 1024))"
}
# median NAME PREP CMD...: runs PREP then CMD, three times; prints "median_seconds
# peak_rss_mib all_seconds" (peak over the runs; all as a/b/c). The machine's timing
# drifts by 10-20% between runs, so one run is not a figure. NAME.out is the last run's.
median() {
  local name=$1 prep=$2; shift 2
  local all=() rss=0 secs mib
  for _ in 1 2 3; do
    $prep
    read -r secs mib < <(measure "$name" "$@")
    all+=("$secs")
    [ "$mib" -gt "$rss" ] && rss=$mib
  done
  local mid
  mid=$(printf '%s\n' "${all[@]}" | sort -g | sed -n 2p)
  echo "$mid $rss $(IFS=/; echo "${all[*]}")"
}
# accuracy NAME: "P R F1 exact%" from a `--truth` line in NAME.out.
accuracy() {
  sed -n 's/^precision=\([0-9.]*\) recall=\([0-9.]*\) f1=\([0-9.]*\) .*= \([0-9.]*\)%.*/\1 \2 \3 \4/p' "$WORK/$1.out"
}

rows=()
for size in "${SIZES[@]}"; do
  persons=${size%%:*} pool=census
  [ "$size" = "$persons" ] || pool=${size#*:}
  # n names this size's files; always generated afresh, so a changed generator is measured.
  n=$persons
  [ "$pool" = census ] || n="$persons-$pool"
  data="$WORK/data-$n"
  rm -rf "$data"
  "$CDP" gen --persons "$persons" --seed 42 --surnames "$pool" --out "$data" -q > /dev/null
  records=$(($(wc -l < "$data/truth.csv") - 1))
  [ "$pool" = census ] || records="$records, $pool surnames"

  for variant in cdp rules; do
    lake="$WORK/idlake-$variant-$n"
    pipeline=$PIPELINE
    [ "$variant" = rules ] && pipeline=$RULES_ONLY
    rm -rf "$lake" "$lake.cleaned" && mkdir -p "$lake"
    for step in ingest clean; do
      CDP_DATA_DIR="$data" "$CDP" "$step" "$pipeline" -q \
        --lake "file://$lake" --warehouse "duckdb://$lake/wh.duckdb" > /dev/null
    done
    # Each timed first resolve starts from the lake as cleaning left it: a copy made of
    # hard links (no I/O under the timing; the lake only ever adds files or renames
    # new ones into place, so the links never change).
    cp -al "$lake" "$lake.cleaned"
    restore() { rm -rf "$lake" && cp -al "$lake.cleaned" "$lake"; }
    read -r secs mib all < <(median "$variant-resolve-$n" restore "$CDP" resolve "$pipeline" \
      --lake "file://$lake" --warehouse "duckdb://$lake/wh.duckdb" --truth "$data/truth.csv")
    rm -rf "$lake.cleaned"
    read -r p r f exact < <(accuracy "$variant-resolve-$n")
    label="cdp resolve"
    [ "$variant" = rules ] && label="deterministic rules alone (cdp)"
    rows+=("| $records | $label | $secs ($all) | $mib | $p | $r | $f | $exact |")
    # The second cdp run: nothing changed, so nothing is scored again.
    if [ "$variant" = cdp ]; then
      read -r secs mib all < <(median "cdp-rerun-$n" : "$CDP" resolve "$pipeline" --force \
        --lake "file://$lake" --warehouse "duckdb://$lake/wh.duckdb" --truth "$data/truth.csv")
      read -r p r f exact < <(accuracy "cdp-rerun-$n")
      rows+=("| $records | cdp resolve again, input unchanged (model and pairs reused) | $secs ($all) | $mib | $p | $r | $f | $exact |")
      cp "$WORK/cdp-resolve-$n.out" "$WORK/cdp-resolve-$n.report"
    fi
  done
  parquet=$(ls "$WORK/idlake-cdp-$n"/clean/person/*/data.parquet)
  json="$WORK/splink-$n.json"
  read -r secs mib all < <(median "splink-$n" : "$VENV/bin/python" bench/baseline_splink.py \
    "$parquet" "$data/truth.csv" "$json")
  read -r p r f exact < <("$VENV/bin/python" - "$json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
print(f"{j['precision']:.4f} {j['recall']:.4f} {j['f1']:.4f} {100 * j['exact_person_share']:.1f}")
PY
)
  rows+=("| $records | Splink 4.0.17 (DuckDB), threshold 0.995 | $secs ($all) | $mib | $p | $r | $f | $exact |")
  # What the records allow: see bench/identity_ceiling.py.
  IFS=$'\t' read -r _ fitting unlinked alone _ < <("$VENV/bin/python" \
    bench/identity_ceiling.py "$parquet" "$data/truth.csv")
  rows+=("| $records | ceiling estimate: perfect, except the $fitting records whose evidence fits two persons and the $unlinked that share no value with their person, left alone | - | - | $alone | - |")
done

{
  echo "## Identity resolution: accuracy and speed against Splink"
  echo
  echo "\`cdp gen --seed 42\` data (sizes in person records; surnames as common as in the 2010 US"
  echo "census, except the rows marked \"embedded surnames\": \`--surnames embedded\`, the"
  echo "namesake-dense population), cleaned once by \`cdp clean\`; each"
  echo "resolver then reads the same clean records. Seconds and peak RSS are the whole process"
  echo "(GNU time): the median of three runs (each run in brackets; a first resolve starts each"
  echo "time from the lake as cleaning left it) and the highest peak. P/R/F1 are pairwise;"
  echo "\"exact\" is the share of true persons whose records form exactly one predicted person."
  echo "The ceiling row is no resolver: it estimates the F1 the records allow"
  echo "(bench/identity_ceiling.py): a record whose linking evidence (the values another record"
  echo "of its own person carries, with first names read from mailboxes as cdp reads them) is"
  echo "held in full by another person too fits two people, and is left alone by an otherwise"
  echo "perfect resolver. It does not count household evidence (a family mailbox held by a"
  echo "relative at the address of the person the record names, which cdp's"
  echo "[identity.households] reads), so a resolver may pass it."
  echo
  echo "| records | resolver | wall s, median (runs) | peak RSS MiB | precision | recall | F1 | exact % |"
  echo "|---:|---|---:|---:|---:|---:|---:|---:|"
  printf '%s\n' "${rows[@]}"
} > "$WORK/identity.md"
cat "$WORK/identity.md"
