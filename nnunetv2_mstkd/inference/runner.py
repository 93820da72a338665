"""The per-case pipeline of ``mstkd_predict``: preprocessing workers, the network, export workers.

The layout is nnU-Net's (``nnUNetPredictor.predict_from_files``): ``-npp`` spawned
processes read and preprocess the next cases while this process runs the network,
and ``-nps`` spawned processes resample and write the finished ones. ``0`` for
either runs that stage in this process. A case that fails (unreadable or
mismatched files, an error in the network or the export) is reported and the
others go on. A preprocessing worker that dies fails the cases it held; an export
worker that dies stops the run, as in nnU-Net (finished outputs are complete, and
``--continue_prediction`` resumes).
"""
from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing.pool import AsyncResult
from time import sleep

import torch
from nnunetv2.utilities.file_path_utilities import check_workers_alive_and_busy

from nnunetv2_mstkd.inference.atomic_export import export_atomically
from nnunetv2_mstkd.inference.case_files import CaseFiles
from nnunetv2_mstkd.inference.masked_predictor import MaskedPredictor
from nnunetv2_mstkd.inference.preprocessing import PreprocessedCase, init_worker, preprocess_in_worker


@dataclass
class Job:
    """One case to predict and where its output goes (path without file ending)."""

    case: CaseFiles
    output_file_truncated: str


def _case_message(case_id: str, error: BaseException) -> str:
    text = str(error) or type(error).__name__
    if not isinstance(error, (ValueError, FileNotFoundError)):
        text = f"{type(error).__name__}: {text}"
    return text if text.startswith(f"case {case_id}:") else f"case {case_id}: {text}"


def _spawn_pool(num_processes: int, **kwargs) -> ProcessPoolExecutor:
    # spawn, as nnU-Net does: forking a process that holds torch threads (or CUDA) is unsafe
    return ProcessPoolExecutor(num_processes, mp_context=multiprocessing.get_context("spawn"), **kwargs)


def _in_process(predictor: MaskedPredictor, jobs: Sequence[Job]) -> Iterator[tuple[Job, PreprocessedCase | Exception]]:
    for job in jobs:
        try:
            yield job, predictor.preprocess(job.case.files, job.case.case_id)
        except Exception as e:  # one bad case must not stop the others
            yield job, e


def preprocessed_cases(predictor: MaskedPredictor, jobs: Sequence[Job],
                       num_processes: int) -> Iterator[tuple[Job, PreprocessedCase | Exception]]:
    """Each job with its preprocessed case (or the error it raised), in job order.

    With worker processes, they start and take their first cases at once (before the
    returned iterator is consumed), so they load while the caller sets up the rest.
    """
    if num_processes == 0 or not jobs:
        return _in_process(predictor, jobs)
    p = predictor.predictor
    pool = _spawn_pool(min(num_processes, len(jobs)), initializer=init_worker,
                       initargs=(p.plans_manager, p.configuration_manager, p.dataset_json, predictor.verbose))
    pending: deque[tuple[Job, Future]] = deque()
    upcoming = iter(jobs)

    def submit_next() -> None:
        job = next(upcoming, None)
        if job is not None:
            pending.append((job, pool.submit(preprocess_in_worker, job.case.files, job.case.case_id)))
        else:  # nothing left to submit: let the workers exit as soon as they are done, not at the very end
            pool.shutdown(wait=False)

    # like nnU-Net's worker queues: each worker holds one case in progress and one ready
    for _ in range(2 * num_processes):
        submit_next()

    def results() -> Iterator[tuple[Job, PreprocessedCase | Exception]]:
        try:
            while pending:
                job, future = pending.popleft()
                try:
                    data, properties, present = future.result()
                    result = PreprocessedCase(torch.from_numpy(data), properties, present, job.case.case_id)
                except Exception as e:
                    result = e
                submit_next()
                yield job, result
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    return results()


class _Exporter:
    """Export in this process (``num_processes == 0``) or in nnU-Net's way: a pool of spawned workers."""

    def __init__(self, predictor: MaskedPredictor, num_processes: int, save_probabilities: bool,
                 log: Callable[[str], None]):
        p = predictor.predictor
        self.log = log
        self.common = (p.configuration_manager, p.plans_manager, p.dataset_json)
        self.save_probabilities = save_probabilities
        self.pool = multiprocessing.get_context("spawn").Pool(num_processes) if num_processes > 0 else None
        # as nnU-Net does: remember the workers to notice one killed by the OS (the pool would wait forever)
        self.workers = list(self.pool._pool) if self.pool is not None else []
        self.running: deque[tuple[str, AsyncResult]] = deque()
        self.failures: dict[str, str] = {}
        self.done: list[str] = []

    def submit(self, job: Job, logits, properties: dict) -> None:
        args = (logits, properties, *self.common, job.output_file_truncated, self.save_probabilities)
        case_id = job.case.case_id
        if self.pool is None:
            try:
                export_atomically(*args)
                self.done.append(case_id)
            except Exception as e:
                self._fail(case_id, e)
            return
        # don't let finished predictions pile up in memory while the exports lag behind (nnU-Net allows 2 queued)
        while check_workers_alive_and_busy(self.pool, self.workers, [r for _, r in self.running], 2):
            sleep(0.1)
        self.running.append((case_id, self.pool.apply_async(export_atomically, args)))
        self._collect(block=False)

    def _collect(self, block: bool) -> None:
        while self.running and (block or self.running[0][1].ready()):
            case_id, result = self.running[0]
            while not result.ready():
                if not all(w.is_alive() for w in self.workers):
                    raise RuntimeError("An export worker died, probably killed by the OS for lack of memory. "
                                       "Use fewer processes (-nps) and rerun with --continue_prediction.")
                result.wait(0.1)
            try:
                result.get()
                self.done.append(case_id)
            except Exception as e:
                self._fail(case_id, e)
            self.running.popleft()

    def _fail(self, case_id: str, error: BaseException) -> None:
        self.failures[case_id] = _case_message(case_id, error)
        self.log(f"ERROR while exporting: {self.failures[case_id]}")

    def finish(self) -> None:
        self._collect(block=True)

    def close(self) -> None:
        # every result is collected (or the run failed): stop the workers at once, as nnU-Net's Pool does on exit
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()


def run_jobs(predictor: MaskedPredictor, jobs: Sequence[Job], save_probabilities: bool = False,
             num_processes_preprocessing: int = 3, num_processes_segmentation_export: int = 3,
             log: Callable[[str], None] = print) -> tuple[list[str], dict[str, str]]:
    """Predict and export every job.

    Returns:
        The case identifiers written, and a message per failed case identifier.
    """
    failures: dict[str, str] = {}
    cases = preprocessed_cases(predictor, jobs, num_processes_preprocessing)  # first, as nnU-Net starts them
    exporter = _Exporter(predictor, num_processes_segmentation_export, save_probabilities, log)
    try:
        for k, (job, case) in enumerate(cases, 1):
            case_id = job.case.case_id
            if isinstance(case, Exception):
                failures[case_id] = _case_message(case_id, case)
                log(f"[{k}/{len(jobs)}] ERROR {failures[case_id]}")
                continue
            log(f"[{k}/{len(jobs)}] predicting {case_id}")
            try:
                # numpy for the export workers, as nnU-Net does (tensor pickling can fail on alignment)
                logits = predictor.predict_logits(case).cpu().numpy()
            except Exception as e:
                failures[case_id] = _case_message(case_id, e)
                log(f"[{k}/{len(jobs)}] ERROR {failures[case_id]}")
                continue
            exporter.submit(job, logits, case.properties)
        exporter.finish()
    finally:
        exporter.close()
    failures.update(exporter.failures)
    return exporter.done, failures
