#!/usr/bin/env bash
# Run the whole test suite: unit (no root), integration (real containers) and
# compat (real docker CLI, Docker SDK, the seed's curl transcripts).
#
#   bash scripts/test.sh [pytest args...]
#
# The tests start their own daemons on temporary sockets and data roots under
# /tmp/dky-*; they never touch /run/dockyard.sock or /var/lib/dockyard.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

bash scripts/install.sh --deps

# A run that was killed (SIGKILL, OOM, CI time-out) leaves daemons, mounts and
# temp dirs; clean those first, and again whatever happens to this run.
cleanup() { "$REPO/.venv/bin/python" scripts/cleanup-test-leftovers || true; }
cleanup
trap cleanup EXIT

"$REPO/.venv/bin/python" -m pytest -q tests "$@"
