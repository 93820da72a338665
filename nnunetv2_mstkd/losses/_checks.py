"""Input validation shared by the distillation losses.

Every loss compares a student tensor with the teacher tensor of the same role, so
the checks here name both shapes and say which argument is at fault.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch


def check_tensor(value: object, name: str) -> torch.Tensor:
    """Return ``value`` if it is a non-empty tensor, else raise.

    Raises:
        TypeError: If ``value`` is not a ``torch.Tensor`` (for instance the deep-supervision list).
        ValueError: If it has no elements.
    """
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}. For deep-supervision "
                        f"outputs pass one resolution (e.g. output[0], the full resolution).")
    if value.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(value.shape)}).")
    return value


def check_same_shape(student: torch.Tensor, teacher: torch.Tensor, what: str, min_ndim: int = 1) -> None:
    """Raise unless student and teacher tensors have one shape with at least ``min_ndim`` axes.

    Raises:
        TypeError: If either is not a tensor.
        ValueError: If the shapes differ, a tensor is empty, or has fewer than ``min_ndim`` axes.
    """
    check_tensor(student, f"student {what}")
    check_tensor(teacher, f"teacher {what}")
    if student.shape != teacher.shape:
        raise ValueError(f"Student and teacher {what} must have the same shape, got student "
                         f"{tuple(student.shape)} and teacher {tuple(teacher.shape)}.")
    if student.ndim < min_ndim:
        raise ValueError(f"{what} needs at least {min_ndim} axes, got shape {tuple(student.shape)}.")


def check_pair_of_sequences(student: Sequence, teacher: Sequence, what: str) -> None:
    """Raise unless ``student`` and ``teacher`` are non-empty sequences of equal length.

    A bare tensor is refused: iterating it would silently walk over the batch axis.

    Raises:
        TypeError: If either argument is a tensor or not a sequence.
        ValueError: If a sequence is empty or the lengths differ.
    """
    for role, seq in (("student", student), ("teacher", teacher)):
        if isinstance(seq, torch.Tensor) or not isinstance(seq, Sequence):
            raise TypeError(f"{role} {what} must be a list or tuple of tensors, got {type(seq).__name__}; "
                            f"wrap a single tensor as [tensor].")
        if len(seq) == 0:
            raise ValueError(f"{role} {what} is an empty sequence; pass at least one tensor.")
    if len(student) != len(teacher):
        raise ValueError(f"Student and teacher {what} must have the same length, got {len(student)} "
                         f"and {len(teacher)}.")
