"""The frozen full-modality teacher: where it is, whether it fits, and loading it frozen.

By default the teacher is ``checkpoint_final.pth`` of the teacher trainer for the
same dataset, plans, configuration and fold under ``nnUNet_results``. The
environment variable ``MSTKD_TEACHER`` can name another model folder (the one
holding ``plans.json`` and ``fold_X``), a fold folder, or a checkpoint file.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import torch
from torch import nn

ENV_VAR = "MSTKD_TEACHER"


class TeacherError(RuntimeError):
    """The teacher is missing or does not fit the student; the message says what to do."""


@dataclass
class TeacherInfo:
    """Provenance of a loaded teacher, recorded in the student's checkpoint.

    Attributes:
        checkpoint: The teacher's checkpoint relative to ``nnUNet_results`` (so the record stays true
            when the results folder moves), or its absolute path when it lies outside ``nnUNet_results``.
        sha256: The checkpoint file's SHA-256.
        trainer_name: The teacher's trainer class.
        relative_to: ``"nnUNet_results"`` when ``checkpoint`` is relative to it, else None.
        plans: The teacher's plans identifier.
        configuration: The teacher's configuration.
        fold: The teacher's fold.
    """

    checkpoint: str
    sha256: str
    trainer_name: str
    relative_to: str | None = None
    plans: str | None = None
    configuration: str | None = None
    fold: int | str | None = None


def portable_path(path: str, results_dir: str | None) -> tuple[str, str | None]:
    """``(path relative to results_dir, "nnUNet_results")`` when ``path`` lies inside it, else ``(absolute, None)``."""
    path = os.path.abspath(path)
    if results_dir:
        root = os.path.abspath(results_dir)
        if os.path.commonpath([path, root]) == root:
            return os.path.relpath(path, root), "nnUNet_results"
    return path, None


def sha256_of(path: str, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def default_teacher_folders(results_dir: str, dataset_name: str, trainer_names: list[str], plans_name: str,
                            configuration: str) -> list[str]:
    """Model folders ``{results}/{dataset}/{trainer}__{plans}__{configuration}`` for each candidate trainer."""
    return [os.path.join(results_dir, dataset_name, f"{t}__{plans_name}__{configuration}") for t in trainer_names]


def find_teacher_checkpoint(candidates: list[str], fold: int, train_command: str) -> str:
    """Resolve the teacher checkpoint from ``MSTKD_TEACHER`` or the first candidate folder that has one.

    Args:
        candidates: Default model folders, in order of preference.
        fold: The student's fold.
        train_command: The ``nnUNetv2_train`` command that makes the default teacher (for the error).

    Raises:
        TeacherError: If nothing is found; the message names the command that trains the teacher.
    """
    override = os.environ.get(ENV_VAR)
    if override:
        tried = [override, os.path.join(override, "checkpoint_final.pth"),
                 os.path.join(override, f"fold_{fold}", "checkpoint_final.pth")]
        for path in tried:
            if os.path.isfile(path):
                return os.path.abspath(path)
        raise TeacherError(f"{ENV_VAR}={override} is neither a checkpoint nor a folder holding "
                           f"checkpoint_final.pth or fold_{fold}/checkpoint_final.pth.")
    for folder in candidates:
        path = os.path.join(folder, f"fold_{fold}", "checkpoint_final.pth")
        if os.path.isfile(path):
            return path
    raise TeacherError("No trained MST-KD teacher found (looked for "
                       + ", ".join(os.path.join(c, f"fold_{fold}", "checkpoint_final.pth") for c in candidates)
                       + f"). Train it first:\n  {train_command}\nor point {ENV_VAR} at a teacher model folder "
                         "or checkpoint.")


def _plans_json_for(checkpoint_path: str) -> str:
    for folder in (os.path.dirname(checkpoint_path), os.path.dirname(os.path.dirname(checkpoint_path))):
        if os.path.isfile(os.path.join(folder, "plans.json")):
            return os.path.join(folder, "plans.json")
    raise TeacherError(f"No plans.json next to the teacher checkpoint {checkpoint_path} (or one folder up); "
                       "a teacher model folder as written by nnUNetv2_train has one.")


def check_compatible(teacher_plans: dict, teacher_dataset_json: dict | None, student_plans: dict,
                     student_dataset_json: dict, configuration: str, checkpoint_configuration: str) -> None:
    """Raise :class:`TeacherError` naming every way the teacher differs from the student.

    Compared: configuration, plans identifier, patch size, architecture, input channels, labels.
    """
    diffs = []
    if checkpoint_configuration != configuration:
        diffs.append(f"configuration: teacher {checkpoint_configuration!r}, student {configuration!r}")
    if teacher_plans.get("plans_name") != student_plans.get("plans_name"):
        diffs.append(f"plans: teacher {teacher_plans.get('plans_name')!r}, student {student_plans.get('plans_name')!r}")
    t_conf = teacher_plans["configurations"].get(checkpoint_configuration, {})
    s_conf = student_plans["configurations"].get(configuration, {})
    for key in ("patch_size", "architecture", "spacing", "normalization_schemes"):
        if t_conf.get(key) != s_conf.get(key):
            diffs.append(f"{key}: teacher {t_conf.get(key)}, student {s_conf.get(key)}")
    if teacher_dataset_json is not None:
        for key in ("channel_names", "labels", "regions_class_order"):
            if teacher_dataset_json.get(key) != student_dataset_json.get(key):
                diffs.append(f"{key}: teacher {teacher_dataset_json.get(key)}, student {student_dataset_json.get(key)}")
    if diffs:
        raise TeacherError("The teacher does not fit this student; it must be trained on the same dataset, plans "
                           "and configuration. Differences:\n  " + "\n  ".join(diffs))


def load_frozen_teacher(checkpoint_path: str, build_network, student_plans: dict, student_dataset_json: dict,
                        configuration: str, device: torch.device) -> tuple[nn.Module, TeacherInfo]:
    """Load a teacher checkpoint into ``build_network()`` and freeze it.

    Args:
        checkpoint_path: The teacher's ``checkpoint_final.pth``.
        build_network: Callable taking the checkpoint's trainer name (or None) and returning a fresh
            network of the teacher's architecture.
        student_plans: The student's plans dict (for the compatibility check).
        student_dataset_json: The student's dataset.json dict.
        configuration: The student's configuration name.
        device: Where the teacher runs.

    Returns:
        ``(teacher, info)``: the network in ``eval()`` with ``requires_grad`` off, and its provenance.

    Raises:
        TeacherError: If the teacher does not fit (which property differs is named).
    """
    import json

    plans_path = _plans_json_for(checkpoint_path)
    with open(plans_path) as f:
        teacher_plans = json.load(f)
    ds_path = os.path.join(os.path.dirname(plans_path), "dataset.json")
    teacher_ds = json.load(open(ds_path)) if os.path.isfile(ds_path) else None
    ckpt = torch.load(checkpoint_path, map_location="cpu", weights_only=False)
    check_compatible(teacher_plans, teacher_ds, student_plans, student_dataset_json, configuration,
                     ckpt.get("init_args", {}).get("configuration", configuration))
    teacher = build_network(ckpt.get("trainer_name"))
    try:
        teacher.load_state_dict(ckpt["network_weights"])
    except RuntimeError as e:
        raise TeacherError(f"Teacher checkpoint {checkpoint_path} (trainer {ckpt.get('trainer_name')}) does not "
                           f"match the teacher architecture: {e}") from e
    teacher.to(device).eval().requires_grad_(False)
    from nnunetv2.paths import nnUNet_results

    where, relative_to = portable_path(checkpoint_path, nnUNet_results)
    init = ckpt.get("init_args", {})
    return teacher, TeacherInfo(where, sha256_of(checkpoint_path), str(ckpt.get("trainer_name")), relative_to,
                                teacher_plans.get("plans_name"), init.get("configuration"), init.get("fold"))
