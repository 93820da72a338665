"""Files that appear complete or not at all: the one atomic-write mechanism of the package.

Every output (converted images, segmentations, benchmark tables, checkpoints, plans) is
written under a hidden temporary name in its destination folder and moved into place
with :func:`os.replace`, which is atomic within one file system. An interrupted run
therefore leaves the previous version or nothing, never a truncated file that a re-run
(or ``--continue_prediction``) would take for a finished one.

One temporary-name format serves every writer::

    .<name>.partial-<pid>-<8 hex><ending>     e.g. .BraTS_001.partial-4242-1a2b3c4d.nii.gz

The ending is kept because SimpleITK, matplotlib and numpy choose the format from it.
:func:`remove_stale_partials` deletes such files left by a killed process (and only
those: files of a process still running on this machine are kept).
"""
from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

#: Marker in every temporary name.
PARTIAL_MARKER = ".partial-"
#: File endings of more than one dot that must stay at the end of a temporary name.
_DOUBLE_ENDINGS = (".nii.gz", ".tar.gz")
_PARTIAL = re.compile(r"\.(?P<stem>.+)\.partial-(?P<pid>\d+)-[0-9a-f]{8}(?P<ending>.*)")


def split_ending(name: str) -> tuple[str, str]:
    """``("case", ".nii.gz")`` for ``"case.nii.gz"``; ``("name", "")`` without an ending."""
    for ending in _DOUBLE_ENDINGS:
        if name.endswith(ending) and len(name) > len(ending):
            return name[:-len(ending)], ending
    stem, ending = os.path.splitext(name)
    return stem, ending


def partial_path(destination: str, keep_ending: bool = True) -> str:
    """A new hidden temporary name beside ``destination`` (see the module docstring).

    Args:
        destination: The final path.
        keep_ending: Keep the file ending at the end of the temporary name. False for a
            truncated path to which a writer appends its own endings (nnU-Net's export).
    """
    folder, name = os.path.split(os.path.abspath(destination))
    stem, ending = split_ending(name) if keep_ending else (name, "")
    return os.path.join(folder, f".{stem}{PARTIAL_MARKER}{os.getpid()}-{uuid.uuid4().hex[:8]}{ending}")


def final_path(partial: str) -> str:
    """The destination a :func:`partial_path` name stands for (inverse of :func:`partial_path`).

    Raises:
        ValueError: If ``partial`` is not such a name.
    """
    folder, name = os.path.split(partial)
    match = _PARTIAL.fullmatch(name)
    if match is None:
        raise ValueError(f"{partial} is not a temporary name of the form .NAME.partial-PID-XXXXXXXX")
    return os.path.join(folder, match["stem"] + match["ending"])


@contextmanager
def atomic_path(destination: str) -> Iterator[str]:
    """Yield a temporary path beside ``destination``; when the block succeeds it replaces ``destination``.

    If the block raises, the temporary file is removed and ``destination`` is left as it was.
    """
    tmp = partial_path(destination)
    try:
        yield tmp
        os.replace(tmp, destination)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_text(text: str, path: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(text)


def write_json(obj, path: str, sort_keys: bool = False) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    write_text(json.dumps(obj, indent=4, sort_keys=sort_keys) + "\n", path)


def _other_process_alive(pid: int) -> bool:
    if pid == os.getpid():  # this process calls the clean-up before it writes: its own leftovers are stale
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove_stale_partials(folder: str) -> list[str]:
    """Delete the temporary files that killed processes left in ``folder``; return their paths.

    Only names of the :func:`partial_path` form are touched, and only when the process
    that wrote them is no longer running on this machine (or is the caller, which cleans
    up before it writes), so two runs writing into one folder (``-num_parts``) do not
    remove each other's files.
    """
    if not os.path.isdir(folder):
        return []
    removed = []
    for name in sorted(os.listdir(folder)):
        match = _PARTIAL.fullmatch(name)
        path = os.path.join(folder, name)
        if match and os.path.isfile(path) and not _other_process_alive(int(match["pid"])):
            os.remove(path)
            removed.append(path)
    return removed
