#!/usr/bin/env bash
# The GPU check in one command: bash scripts/gpu_check.sh [--dry-run] [--out REPORT.md] [--work DIR]
# On a CUDA machine it needs about 8 minutes; --dry-run runs the same steps on the CPU at toy size.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup_env.sh"
export PYTHONUNBUFFERED=1
exec python "$ROOT/scripts/gpu_check.py" "$@"
