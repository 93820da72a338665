#!/usr/bin/env bash
# Run the test suite (sets up .venv first when needed). Extra arguments go to pytest.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup_env.sh"
cd "$ROOT"
ruff check .
python -m pytest "$@"
