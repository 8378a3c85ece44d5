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
