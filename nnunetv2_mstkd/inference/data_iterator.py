"""The data iterator that nnU-Net's prediction loop consumes, for cases with absent channels.

nnU-Net's ``predict_from_data_iterator`` takes an iterator of
``{"data", "data_properties", "ofile"}`` dicts; its own iterator preprocesses every
channel file of a case in ``-npp`` spawned processes and stops the whole run when one
case fails. This one preprocesses with
:func:`~nnunetv2_mstkd.inference.preprocessing.preprocess_files` (the present channels
only, absent ones zeroed after normalisation) in the same kind of spawned workers, and
a case that fails (unreadable or mismatched files, NaN voxels, no channel left) is
reported through ``on_failure`` and left out while the other cases go on.
``num_processes = 0`` preprocesses in the calling process.
"""
from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass

import torch

from nnunetv2_mstkd.inference.case_files import CaseFiles
from nnunetv2_mstkd.inference.channel_reader import ReadPolicy
from nnunetv2_mstkd.inference.preprocessing import init_worker, preprocess_files, preprocess_in_worker


@dataclass
class Job:
    """One case to predict: its files, the previous stage's segmentation (cascades) and the output name."""

    case: CaseFiles
    seg_from_prev_stage: str | None
    ofile: str | None


def case_message(case_id: str, error: BaseException) -> str:
    """``case X: <error>``; the exception's type is named unless it is a plain input error."""
    text = str(error) or type(error).__name__
    if not isinstance(error, (ValueError, FileNotFoundError)):
        text = f"{type(error).__name__}: {text}"
    return text if text.startswith(f"case {case_id}:") else f"case {case_id}: {text}"


def _item(job: Job, data, properties: dict, pin_memory: bool) -> dict:
    data = torch.from_numpy(data) if not isinstance(data, torch.Tensor) else data
    if pin_memory:
        data = data.pin_memory()
    return {"data": data, "data_properties": properties, "ofile": job.ofile}


def absent_channel_iterator(jobs: Sequence[Job], plans_manager, configuration_manager, dataset_json: dict,
                            num_processes: int, on_failure: Callable[[str, str], None],
                            on_start: Callable[[Job], None] = lambda job: None, pin_memory: bool = False,
                            verbose: bool = False, policy: ReadPolicy = ReadPolicy()) -> Iterator[dict]:
    """Yield nnU-Net's prediction items for ``jobs`` in order, leaving out the cases that fail.

    Args:
        jobs: The cases, each with its channel files (None: absent) and output name.
        plans_manager: The model's plans (travels to the worker processes).
        configuration_manager: The model's configuration.
        dataset_json: The model's ``dataset.json``.
        num_processes: Spawned preprocessing processes; 0 preprocesses here.
        on_failure: Called with ``(case_id, message)`` for each case left out.
        on_start: Called with each job just before its item is handed to the prediction loop.
        pin_memory: Pin the tensors (CUDA prediction), as nnU-Net's iterator does.
        verbose: nnU-Net's preprocessing output.
        policy: What the files may get away with (NaN/Inf voxels, geometry mismatches).
    """
    def fail(job: Job, error: BaseException) -> None:
        on_failure(job.case.case_id, case_message(job.case.case_id, error))

    if num_processes == 0 or len(jobs) == 0:
        for job in jobs:
            try:
                case = preprocess_files(job.case.files, plans_manager, configuration_manager, dataset_json, verbose,
                                        job.case.case_id, job.seg_from_prev_stage, policy)
            except Exception as e:  # one bad case must not stop the others
                fail(job, e)
                continue
            on_start(job)
            yield _item(job, case.data, case.properties, pin_memory)
        return

    workers = min(num_processes, len(jobs))
    # spawn, as nnU-Net does: forking a process that holds torch threads (or CUDA) is unsafe
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=init_worker,
                               initargs=(plans_manager, configuration_manager, dataset_json, verbose, policy))
    pending: deque[tuple[Job, Future]] = deque()
    upcoming = iter(jobs)

    def submit_next() -> None:
        job = next(upcoming, None)
        if job is None:
            return
        try:
            future = pool.submit(preprocess_in_worker, job.case.files, job.case.case_id, job.seg_from_prev_stage)
        except Exception as e:  # the pool broke (a worker was killed): this case fails like the ones it held
            future = Future()
            future.set_exception(e)
        pending.append((job, future))

    try:
        for _ in range(2 * workers):  # as nnU-Net's queues: one case in progress and one ready per worker
            submit_next()
        while pending:
            job, future = pending.popleft()
            try:
                data, properties, _ = future.result()
            except Exception as e:  # includes a worker killed by the OS: its cases fail, the others go on
                fail(job, e)
                submit_next()
                continue
            submit_next()
            on_start(job)
            yield _item(job, data, properties, pin_memory)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
