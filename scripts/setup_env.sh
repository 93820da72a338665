#!/usr/bin/env bash
# Create (once) the project's virtual environment in .venv and install the package into it.
# Safe to source repeatedly: it only installs what is missing or out of date.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MSTKD_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
    echo "[setup] creating virtual environment $VENV"
    "$PY" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip
fi
if ! "$VENV/bin/python" -c "import torch, torchvision; assert torch.__version__.startswith('2.14.1') and torchvision.__version__.startswith('0.29.1')" 2>/dev/null; then
    echo "[setup] installing torch==2.14.1 torchvision==0.29.1 (about 70 s, 5.5 GB)"
    "$VENV/bin/python" -m pip install -q torch==2.14.1 torchvision==0.29.1
fi
STAMP="$VENV/.mstkd_installed"
HASH="$(cat "$ROOT/setup.py" | sha256sum | cut -d' ' -f1)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$HASH" ] || ! "$VENV/bin/python" -c "import nnunetv2_mstkd" 2>/dev/null; then
    echo "[setup] installing nnunetv2-mstkd and its dependencies"
    # The constraint keeps pip from swapping the torch build installed above.
    # [brats]: the optional lesion-wise metrics, so that their test compares with the official package
    "$VENV/bin/python" -m pip install -q -e "$ROOT[test,brats]" \
        -c <(printf 'torch==2.14.1\ntorchvision==0.29.1\n')
    echo "$HASH" > "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
