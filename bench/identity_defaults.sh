#!/usr/bin/env bash
# Identity defaults against the full configuration, called by bench/run.sh: on each
# population `cdp gen` writes (PERSONS[:embedded][:SEED]; embedded: the namesake-dense
# surnames), pipelines/customer360.toml (the sample's full [identity] section, the best
# configuration written so far) and pipelines/customer360_defaults.toml (the same
# pipeline with [identity] reduced to attributes and survivorship: the
# rest from the column kinds and the data) run end to end; pairwise P/R/F1 of each go to
# bench/out/identity_defaults.md. Then the same for names, addresses and birth dates only:
# bench/names_addresses.toml (the full section without what needs an email or a phone)
# against bench/names_addresses_defaults.toml, and for a two-source linkage
# (bench/two_sources.toml against bench/two_sources_defaults.toml), each scored over the
# records it reads.
# usage: bash bench/identity_defaults.sh [POPULATION...]   (default 4000:census:7 4000:embedded:7)
# CDP: the binary (default: the release build).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cdp/target}"
export CDP_NO_PROGRESS=1
CDP="${CDP:-$CARGO_TARGET_DIR/release/cdp}"
WORK="bench/out"
POPS=("$@")
[ ${#POPS[@]} -gt 0 ] || POPS=(4000:census:7 4000:embedded:7)
mkdir -p "$WORK"
[ -x "$CDP" ] || cargo build --release --locked

# score PIPELINE DATA DIR [TRUTH]: "precision recall f1" of a run with --truth.
score() {
  local pipeline=$1 data=$2 dir=$3 truth=${4:-$2/truth.csv}
  rm -rf "$dir" && mkdir -p "$dir"
  CDP_DATA_DIR="$data" "$CDP" run "$pipeline" --lake "file://$dir/lake" \
    --warehouse "duckdb://$dir/w.duckdb" --truth "$truth" -q > "$dir/out.txt"
  sed -n 's/^precision=\([0-9.]*\) recall=\([0-9.]*\) f1=\([0-9.]*\).*/\1 \2 \3/p' "$dir/out.txt"
}

{
  echo "## Identity defaults against the full configuration"
  echo
  build=release; case "$CDP" in */debug/*) build=debug ;; esac
  echo "\`bench/identity_defaults.sh\` ($(date -u +%Y-%m-%d), $("$CDP" --version 2>/dev/null || echo cdp), $build build):"
  echo "pipelines/customer360.toml (the full \`[identity]\` section) against"
  echo "pipelines/customer360_defaults.toml (\`[identity]\` reduced to attributes and survivorship;"
  echo "everything else from the column kinds and the run's data), end to end with \`--truth\`."
  echo
  echo "| population | records | full P | full R | full F1 | defaults P | defaults R | defaults F1 |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|"
  for pop in "${POPS[@]}"; do
    IFS=: read -r persons surnames seed <<< "$pop"
    surnames=${surnames:-census}; seed=${seed:-7}
    data="$WORK/defaults-data-$persons-$surnames-$seed"
    rm -rf "$data"
    "$CDP" gen --persons "$persons" --seed "$seed" --surnames "$surnames" --out "$data" -q > /dev/null
    records=$(($(wc -l < "$data/truth.csv") - 1))
    read -r fp fr ff < <(score pipelines/customer360.toml "$data" "$WORK/defaults-full")
    read -r dp dr df < <(score pipelines/customer360_defaults.toml "$data" "$WORK/defaults-kinds")
    echo "| \`cdp gen --persons $persons --surnames $surnames --seed $seed\` | $records | $fp | $fr | $ff | $dp | $dr | $df |"
    # The same people seen through names, addresses and birth dates only.
    grep -v '^support_users,' "$data/truth.csv" > "$data/truth-names-addresses.csv"
    records=$(($(wc -l < "$data/truth-names-addresses.csv") - 1))
    read -r fp fr ff < <(score bench/names_addresses.toml "$data" "$WORK/defaults-full" "$data/truth-names-addresses.csv")
    read -r dp dr df < <(score bench/names_addresses_defaults.toml "$data" "$WORK/defaults-kinds" "$data/truth-names-addresses.csv")
    echo "| the same, names, addresses and birth dates only | $records | $fp | $fr | $ff | $dp | $dr | $df |"
    # Two-source linkage, each side one record a person: the help desk and the vendor file.
    { head -1 "$data/truth.csv"; grep -E '^(support_users|enrichment),' "$data/truth.csv"; } > "$data/truth-two-sources.csv"
    records=$(($(wc -l < "$data/truth-two-sources.csv") - 1))
    read -r fp fr ff < <(score bench/two_sources.toml "$data" "$WORK/defaults-full" "$data/truth-two-sources.csv")
    read -r dp dr df < <(score bench/two_sources_defaults.toml "$data" "$WORK/defaults-kinds" "$data/truth-two-sources.csv")
    echo "| the same, two-source linkage (help desk and vendor file, each one record a person) | $records | $fp | $fr | $ff | $dp | $dr | $df |"
  done
} > "$WORK/identity_defaults.md"
cat "$WORK/identity_defaults.md"
