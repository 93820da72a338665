"""Where nnU-Net finds our trainers: the ``nnUNet_extTrainer`` variable.

nnU-Net (>= 2.8.1) searches the folders listed in ``nnUNet_extTrainer``
(``os.pathsep``-separated) for trainer classes it does not ship. Users add our
folder with one line::

    export nnUNet_extTrainer="$(mstkd_trainers_dir)${nnUNet_extTrainer:+:$nnUNet_extTrainer}"

Our own commands call :func:`ensure_ext_trainer` and need no export.
"""
from __future__ import annotations

import argparse
import os

ENV_VAR = "nnUNet_extTrainer"


def trainers_dir() -> str:
    """Absolute path of the installed ``trainers/`` folder."""
    from nnunetv2_mstkd import trainers

    return os.path.dirname(os.path.abspath(trainers.__file__))


def with_trainers_dir(value: str | None) -> str:
    """Return ``value`` (an ``nnUNet_extTrainer`` setting) with our folder first, keeping the others."""
    ours = trainers_dir()
    parts = [p for p in (value or "").split(os.pathsep) if p.strip()]
    parts = [p for p in parts if os.path.abspath(p) != ours]
    return os.pathsep.join([ours] + parts)


def ensure_ext_trainer(environ: dict | None = None) -> str:
    """Put our trainers folder into ``nnUNet_extTrainer`` of ``environ`` (default ``os.environ``).

    Folders the user already listed are kept. Returns the new value. nnU-Net reads the
    variable when it looks a trainer up, so this works for calls made after it, in this
    process and in child processes.
    """
    env = os.environ if environ is None else environ
    env[ENV_VAR] = with_trainers_dir(env.get(ENV_VAR))
    return env[ENV_VAR]


def trainers_dir_entry() -> None:
    """``mstkd_trainers_dir``: print the folder to add to ``nnUNet_extTrainer``."""
    parser = argparse.ArgumentParser(
        description="Print the folder holding the nnunetv2-mstkd trainers. Use it as\n"
                    '  export nnUNet_extTrainer="$(mstkd_trainers_dir)${nnUNet_extTrainer:+:$nnUNet_extTrainer}"',
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--export", action="store_true",
                        help="print a complete 'export nnUNet_extTrainer=...' line that keeps folders already listed")
    args = parser.parse_args()
    if args.export:
        print(f'export {ENV_VAR}="{with_trainers_dir(os.environ.get(ENV_VAR))}"')
    else:
        print(trainers_dir())
