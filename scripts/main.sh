#!/usr/bin/env bash
# The main job end to end on the embedded default: small corpora of every simulator -> training ->
# validation on real measured files -> report with figures (report/index.html, report/report.md).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/env.sh"
cd "$ROOT"
exec "$SIMGEN_PY" -m train.cli demo --out "${SIMGEN_REPORT:-report}" "$@"
