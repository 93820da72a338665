#!/usr/bin/env bash
# The main job end to end on synthetic data (sets up .venv first when needed). Extra arguments go to
# `python -m nnunetv2_mstkd.demo` (e.g. --workdir DIR, --schedule 1ep10it for a quick smoke run).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup_env.sh"
cd "$ROOT"
python -m nnunetv2_mstkd.demo "$@"
