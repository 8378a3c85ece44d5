#!/usr/bin/env bash
# Starts the test peers on 127.0.0.1: moto (S3 and the other AWS services), fakesnow
# behind the JSON bridge (Snowflake) and tansu (a Kafka broker, in-memory storage; built
# once into a cache by tools/tansu.sh). Writes their addresses to $PEERS_DIR/env for `source`, pids to
# $PEERS_DIR/*.pid, logs to $PEERS_DIR/*.log. Idempotent: a running peer is kept.
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV="${PEERS_VENV:-.venv/peers}"
PEERS_DIR="${PEERS_DIR:-.venv/peers-run}"
mkdir -p "$PEERS_DIR"
PEERS_DIR="$(cd "$PEERS_DIR" && pwd)"

free_port() {
  "$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
alive() { [ -f "$PEERS_DIR/$1.pid" ] && kill -0 "$(cat "$PEERS_DIR/$1.pid")" 2>/dev/null; }
# wait_http NAME URL: waits up to 60 s for any HTTP answer.
wait_http() {
  for _ in $(seq 1 120); do
    if "$VENV/bin/python" - "$2" <<'PY' 2>/dev/null; then return 0; fi
import sys, urllib.request, urllib.error
try:
    urllib.request.urlopen(sys.argv[1], timeout=1)
except urllib.error.HTTPError:
    pass
PY
    alive "$1" || { echo "peer $1 died; see $PEERS_DIR/$1.log" >&2; return 1; }
    sleep 0.5
  done
  echo "peer $1 did not answer at $2; see $PEERS_DIR/$1.log" >&2
  return 1
}
# wait_tcp NAME PORT: waits up to 60 s for 127.0.0.1:PORT to accept a connection.
wait_tcp() {
  for _ in $(seq 1 120); do
    if "$VENV/bin/python" -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)' "$2" 2>/dev/null; then return 0; fi
    alive "$1" || { echo "peer $1 died; see $PEERS_DIR/$1.log" >&2; return 1; }
    sleep 0.5
  done
  echo "peer $1 did not listen on 127.0.0.1:$2; see $PEERS_DIR/$1.log" >&2
  return 1
}

if alive s3 && alive snowflake && alive kafka && [ -f "$PEERS_DIR/env" ]; then
  echo "peers already up ($PEERS_DIR/env)"
  exit 0
fi
bash tests/peers/down.sh >/dev/null 2>&1 || true

s3_port=$(free_port)
"$VENV/bin/moto_server" -H 127.0.0.1 -p "$s3_port" > "$PEERS_DIR/s3.log" 2>&1 &
echo $! > "$PEERS_DIR/s3.pid"
wait_http s3 "http://127.0.0.1:$s3_port/"

sf_port=$(free_port)
mkdir -p "$PEERS_DIR/snowflake-home" "$PEERS_DIR/snowflake-keys"
# The Snowflake peer keeps DuckDB's home (extensions, S3 secret) in its own folder.
# The Snowflake peer accepts this one password, so a wrong one can be tested.
HOME="$PEERS_DIR/snowflake-home" CDP_PEER_S3_ENDPOINT="127.0.0.1:$s3_port" \
  CDP_PEER_SNOWFLAKE_PASSWORD=cdp-test-password CDP_PEER_HOLD_FILE="$PEERS_DIR/snowflake-hold" \
  CDP_PEER_SNOWFLAKE_KEYS_DIR="$PEERS_DIR/snowflake-keys" \
  "$VENV/bin/python" tests/peers/snowflake_bridge.py --port "$sf_port" \
  > "$PEERS_DIR/snowflake.log" 2>&1 &
echo $! > "$PEERS_DIR/snowflake.pid"
wait_http snowflake "http://127.0.0.1:$sf_port/"

tansu=$(bash tools/tansu.sh)
kafka_port=$(free_port)
"$tansu" broker --listener-url "tcp://127.0.0.1:$kafka_port" \
  --advertised-listener-url "tcp://127.0.0.1:$kafka_port" \
  --storage-engine memory://tansu/ > "$PEERS_DIR/kafka.log" 2>&1 &
echo $! > "$PEERS_DIR/kafka.pid"
wait_tcp kafka "$kafka_port"

cat > "$PEERS_DIR/env" <<ENV
export CDP_TEST_S3_ENDPOINT=http://127.0.0.1:$s3_port
export CDP_TEST_KAFKA_BOOTSTRAP=127.0.0.1:$kafka_port
export CDP_TEST_SNOWFLAKE_URL=http://127.0.0.1:$sf_port
export CDP_TEST_SNOWFLAKE_HOLD_FILE=$PEERS_DIR/snowflake-hold
export CDP_TEST_SNOWFLAKE_KEYS_DIR=$PEERS_DIR/snowflake-keys
export CDP_TEST_PYTHON=$(cd "$VENV" && pwd)/bin/python
ENV
echo "peers up: S3 on 127.0.0.1:$s3_port, Snowflake on 127.0.0.1:$sf_port, Kafka on 127.0.0.1:$kafka_port ($PEERS_DIR/env)"
