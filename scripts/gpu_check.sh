#!/usr/bin/env bash
# The GPU check in one command: bash scripts/gpu_check.sh [--dry-run] [--out REPORT.md] [--work DIR]
# On a CUDA machine it needs about 8 minutes; --dry-run runs the same steps on the CPU at toy size.
# It uses a Python that already has torch and this project (PYTHON, default python3), e.g. one installed
# from an offline bundle (scripts/make_bundle.py); only when there is none does it set up .venv.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
if ! "$PY" -c "import torch, nnunetv2_mstkd" 2>/dev/null; then
    source "$ROOT/scripts/setup_env.sh"
    PY=python
fi
export PYTHONUNBUFFERED=1
exec "$PY" "$ROOT/scripts/gpu_check.py" "$@"
