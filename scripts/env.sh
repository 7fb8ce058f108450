#!/usr/bin/env bash
# Set up (once) and enter the project's Python environment; sourced by scripts/main.sh and scripts/test.sh.
#  - inside an active virtualenv/conda env: installs there (a GPU node keeps its own torch);
#  - otherwise: creates .venv next to this repo (seeing the system's packages only if the system has torch).
#  - torch: left alone when importable; else the CPU build torch==2.13.0 is installed (a local file on the
#    project's machines; a PyPI download elsewhere) so no multi-GB CUDA build is pulled in by accident.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY_SYS="${PYTHON:-python3}"
if [[ -n "${VIRTUAL_ENV:-}" || -n "${CONDA_PREFIX:-}" ]]; then
  PY="$(command -v python)"
else
  if [[ ! -x "$ROOT/.venv/bin/python" ]]; then
    flags=()
    if "$PY_SYS" -c "import torch" >/dev/null 2>&1; then flags+=(--system-site-packages); fi
    "$PY_SYS" -m venv "${flags[@]}" "$ROOT/.venv"
  fi
  PY="$ROOT/.venv/bin/python"
  export PATH="$ROOT/.venv/bin:$PATH"
fi
stamp="$ROOT/.venv/.simgen-installed"
[[ -n "${VIRTUAL_ENV:-}${CONDA_PREFIX:-}" ]] && stamp="$("$PY" -c 'import sys;print(sys.prefix)')/.simgen-installed"
want="$(cat "$ROOT/pyproject.toml" | sha256sum | cut -c1-16)"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
  export PIP_DISABLE_PIP_VERSION_CHECK=1
  "$PY" -m pip install -q --upgrade pip >/dev/null 2>&1 || true
  if ! "$PY" -c "import torch" >/dev/null 2>&1; then
    echo "[simgen] installing torch==2.13.0 (CPU build)" >&2
    "$PY" -m pip install -q "torch==2.13.0" || "$PY" -m pip install -q "torch==2.13.0" \
      --index-url https://download.pytorch.org/whl/cpu
  fi
  echo "[simgen] installing simgen and its dependencies" >&2
  "$PY" -m pip install -q -e "$ROOT[train,dev]"
  echo "$want" > "$stamp"
fi
export SIMGEN_PY="$PY"
