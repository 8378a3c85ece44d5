#!/usr/bin/env bash
# with-peers.sh CMD...: starts the peers, runs CMD with their addresses in the
# environment (and CDP_REQUIRE_PEERS=1, so peer tests fail rather than skip), and
# stops the peers whatever CMD's outcome.
set -euo pipefail
cd "$(dirname "$0")/../.."
PEERS_DIR="${PEERS_DIR:-.venv/peers-run}"
trap 'bash tests/peers/down.sh' EXIT
bash tests/peers/up.sh
# shellcheck disable=SC1091
source "$PEERS_DIR/env"
export CDP_REQUIRE_PEERS=1
"$@"
