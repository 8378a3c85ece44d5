#!/usr/bin/env bash
# Puts DuckDB's prebuilt shared library (libduckdb.so, with its parquet, json and ICU
# extensions built in) in a cache directory and prints that directory, so that
# `make` links cdp against it instead of compiling DuckDB's C++ (the bundled build,
# about 20 minutes on two cores). The library comes from the npm registry package
# DuckDB publishes for its Node.js bindings, pinned to one version and checked
# against a SHA-512 before it is unpacked: the same bytes on every machine.
#
# Usage: tools/libduckdb.sh [CACHE_ROOT]   (default $HOME/.cache/cdp/libduckdb)
# Exits 1, saying why, where it cannot (no npm, another platform, a bad download);
# `make DUCKDB=bundled` then compiles DuckDB instead.
set -euo pipefail

# Keep in step with the `duckdb` crate's version in Cargo.toml (1.10506.x is 1.5.6).
PACKAGE="@duckdb/node-bindings-linux-x64"
VERSION="1.5.6-r.1"
SHA512="21772b64913a904a8cd19e30c1d5671811d7fdface4b7dd53cd0300d743f43e16cf386f4e7c41ef78721ac208870d2651bc6375072145387817824315b998dd5"

root="${1:-$HOME/.cache/cdp/libduckdb}"
dir="$root/$VERSION"
if [ -f "$dir/libduckdb.so" ] && [ -f "$dir/.verified" ]; then
  echo "$dir"
  exit 0
fi
if [ "$(uname -sm)" != "Linux x86_64" ]; then
  echo "libduckdb.sh: no pinned prebuilt DuckDB for $(uname -sm); use make DUCKDB=bundled" >&2
  exit 1
fi
if ! command -v npm > /dev/null; then
  echo "libduckdb.sh: npm is not installed; install Node.js or use make DUCKDB=bundled" >&2
  exit 1
fi
work="$(mktemp -d "${TMPDIR:-/tmp}/cdp-libduckdb.XXXXXX")"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "$PACKAGE@$VERSION" > /dev/null)
tarball="$(ls "$work"/*.tgz)"
got="$(sha512sum "$tarball" | cut -d' ' -f1)"
if [ "$got" != "$SHA512" ]; then
  echo "libduckdb.sh: $PACKAGE@$VERSION has SHA-512 $got, expected $SHA512; not used" >&2
  exit 1
fi
tar -xzf "$tarball" -C "$work" package/libduckdb.so package/LICENSE
mkdir -p "$root"
# Published whole or not at all: a directory renamed into place.
staging="$root/.staging-$$"
rm -rf "$staging"
mkdir -p "$staging"
mv "$work/package/libduckdb.so" "$work/package/LICENSE" "$staging/"
touch "$staging/.verified"
rm -rf "$dir"
mv "$staging" "$dir"
echo "$dir"
