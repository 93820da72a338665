"""Atomic file writes: an output file exists only once it is complete.

A file is written under a hidden temporary name in its destination folder and then
moved into place with :func:`os.replace`, which is atomic within one file system.
So an interrupted conversion never leaves a truncated ``.nii.gz`` that a re-run
would mistake for a finished one. The temporary name keeps the ``.nii.gz`` ending
because SimpleITK picks its writer from the file name.
"""
from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager

_PARTIAL = re.compile(r"\..+\.partial-\d+(?:\.nii\.gz|\.nii)?")


def partial_path(destination: str) -> str:
    """The hidden temporary name used while ``destination`` is being written."""
    folder, name = os.path.split(destination)
    for ending in (".nii.gz", ".nii"):
        if name.endswith(ending):
            return os.path.join(folder, f".{name[:-len(ending)]}.partial-{os.getpid()}{ending}")
    return os.path.join(folder, f".{name}.partial-{os.getpid()}")


@contextmanager
def atomic_output(destination: str) -> Iterator[str]:
    """Yield a temporary path to write to; on success it replaces ``destination``.

    If the block raises, the temporary file is removed and ``destination`` is left as it was.
    """
    tmp = partial_path(destination)
    try:
        yield tmp
        os.replace(tmp, destination)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def remove_stale_partials(folder: str) -> list[str]:
    """Delete temporary files that an interrupted run left in ``folder``; return their paths.

    Only names of the form written by :func:`partial_path` are touched. Such leftovers
    would otherwise be listed by nnU-Net as cases, since they end in ``.nii.gz``.
    """
    if not os.path.isdir(folder):
        return []
    removed = []
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if _PARTIAL.fullmatch(name) and os.path.isfile(path):
            os.remove(path)
            removed.append(path)
    return removed
