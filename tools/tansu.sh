#!/usr/bin/env bash
# Builds tansu (an Apache Kafka compatible broker, crates.io `tansu`) once into a cache
# outside git and prints the binary's path. The test peers (tests/peers/up.sh) run it
# with in-memory storage as the Kafka broker for `cdp stream` tests.
#
# Usage: tools/tansu.sh [CACHE_ROOT]   (default $HOME/.cache/cdp/tansu)
# Feature `dynostore` gives the in-memory storage engine (`memory://`), which the tests
# use; the default set has only `null://`, which keeps nothing. The other engines
# (postgres, libsql, turso, iceberg, delta, parquet) are left out.
# The build directory is deleted after the install to save disk.
set -euo pipefail

VERSION="0.6.0"
FEATURES="dynostore"
root="${1:-$HOME/.cache/cdp/tansu}"
bin="$root/bin/tansu"
if [ -x "$bin" ] && [ -f "$root/.version-$VERSION-$FEATURES" ]; then
  echo "$bin"
  exit 0
fi
target="${TANSU_TARGET_DIR:-$HOME/.cache/cdp/tansu-target}"
mkdir -p "$root"
CARGO_TARGET_DIR="$target" cargo install tansu --version "$VERSION" --locked \
  --features "$FEATURES" --root "$root" >&2
rm -rf "$target"
touch "$root/.version-$VERSION-$FEATURES"
echo "$bin"
