#!/usr/bin/env bash
# Install nnunetv2-mstkd from an offline bundle (scripts/make_bundle.py) without any network.
# Usage: bash scripts/install_bundle.sh BUNDLE.tar.xz [PYTHON]
#   PYTHON: the interpreter to install into (default python3), e.g. the one that already has torch;
#   a torch already installed there is kept (pip only adds what is missing from the bundle).
set -euo pipefail
BUNDLE="${1:?usage: bash scripts/install_bundle.sh BUNDLE.tar.xz [PYTHON]}"
PY="${2:-python3}"
[ -f "$BUNDLE" ] || { echo "No bundle at $BUNDLE: build one with python scripts/make_bundle.py on a connected machine." >&2; exit 2; }
DIR="$(mktemp -d)"
trap 'rm -rf "$DIR"' EXIT
tar -xJf "$BUNDLE" -C "$DIR"
# --isolated: no pip configuration or PIP_* variable may add another index or wheel folder
"$PY" -m pip install -q --isolated --no-index --find-links "$DIR/wheels" nnunetv2-mstkd
echo "Installed: $("$PY" -c 'import nnunetv2_mstkd, os; print(os.path.dirname(nnunetv2_mstkd.__file__))')"
echo "For nnU-Net's own commands, add our trainers: eval \"\$(mstkd_trainers_dir --export)\" (mstkd_trainers_dir sits beside $PY)"
