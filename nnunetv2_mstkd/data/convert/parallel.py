"""Running one function per case in a process pool, with a progress bar."""
from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from typing import Any

import SimpleITK as sitk
from tqdm import tqdm


def default_num_processes() -> int:
    """``min(4, number of CPUs)``: conversion is mostly file I/O, more workers rarely help."""
    return min(4, os.cpu_count() or 1)


def _init_worker() -> None:
    # each worker already is one of N parallel jobs; ITK's own threads would oversubscribe the CPUs
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)


def _call(job: tuple[Callable, tuple]) -> Any:
    fn, args = job
    return fn(*args)


def map_with_progress(fn: Callable, arg_tuples: Sequence[tuple], num_processes: int, desc: str) -> list:
    """Return ``[fn(*args) for args in arg_tuples]``, in order, computed by ``num_processes`` workers.

    With one process (or one job) everything runs in this process, which keeps
    tracebacks simple and tests light. Workers are spawned, not forked, so they never
    inherit locked threads of the parent. ``fn`` must be importable (a module-level function).

    Raises:
        ValueError: If ``num_processes`` is below 1.
    """
    if num_processes < 1:
        raise ValueError(f"Number of processes must be at least 1, got {num_processes}.")
    jobs = [(fn, tuple(args)) for args in arg_tuples]
    if num_processes == 1 or len(jobs) <= 1:
        return [_call(job) for job in tqdm(jobs, desc=desc, unit="case")]
    context = multiprocessing.get_context("spawn")
    with context.Pool(min(num_processes, len(jobs)), initializer=_init_worker) as pool:
        return list(tqdm(pool.imap(_call, jobs), total=len(jobs), desc=desc, unit="case"))
