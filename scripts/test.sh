#!/usr/bin/env bash
# The test suite (default: everything not marked slow; pass -m slow for the long ones).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/env.sh"
cd "$ROOT"
export MPLBACKEND=Agg
exec "$SIMGEN_PY" -m pytest "$@"
