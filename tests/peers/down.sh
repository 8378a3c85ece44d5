#!/usr/bin/env bash
# Stops the test peers that up.sh started, by their recorded pids.
set -uo pipefail
cd "$(dirname "$0")/../.."
PEERS_DIR="${PEERS_DIR:-.venv/peers-run}"
for name in s3 snowflake kafka; do
  pid_file="$PEERS_DIR/$name.pid"
  [ -f "$pid_file" ] || continue
  pid=$(cat "$pid_file")
  if kill "$pid" 2>/dev/null; then
    for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$pid_file"
done
rm -f "$PEERS_DIR/env"
echo "peers down"
