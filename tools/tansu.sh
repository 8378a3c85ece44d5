#!/usr/bin/env bash
# Builds tansu (an Apache Kafka compatible broker, crates.io `tansu`) once into a cache
# outside git and prints the binary's path. The test peers (tests/peers/up.sh) run it
# with in-memory storage as the Kafka broker for `cdp stream` tests.
#
# Usage: tools/tansu.sh [CACHE_ROOT]   (default $HOME/.cache/cdp/tansu)
# The default feature set is enough (memory storage); the storage engines tansu offers
# as features (postgres, libsql, turso, dynostore, iceberg, delta, parquet) are left out.
# The build directory is deleted after the install to save disk.
set -euo pipefail

VERSION="0.6.0"
root="${1:-$HOME/.cache/cdp/tansu}"
bin="$root/bin/tansu"
if [ -x "$bin" ] && [ -f "$root/.version-$VERSION" ]; then
  echo "$bin"
  exit 0
fi
target="${TANSU_TARGET_DIR:-$HOME/.cache/cdp/tansu-target}"
mkdir -p "$root"
CARGO_TARGET_DIR="$target" cargo install tansu --version "$VERSION" --locked \
  --root "$root" >&2
rm -rf "$target"
touch "$root/.version-$VERSION"
echo "$bin"
