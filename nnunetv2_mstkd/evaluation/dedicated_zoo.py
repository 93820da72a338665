"""A zoo of dedicated models scored as one benchmark row: each subset by the model trained for it.

The zoo's trainers are named by a template with a ``{subset}`` field
(:func:`dedicated_trainer_name`), by default
``nnUNetTrainerDedicated_{subset}``: ``nnUNetTrainerDedicated_T1``, ...,
``nnUNetTrainerDedicated_T1_T1ce_T2_FLAIR``. The row is called :data:`DEDICATED_ROW`.
"""
from __future__ import annotations

from collections.abc import Callable

from nnunetv2_mstkd.evaluation.subset_loop import BenchmarkModel
from nnunetv2_mstkd.inference.predictor import MissingModalityPredictor
from nnunetv2_mstkd.modalities import BRATS_CHANNELS, paper_subsets, subset_label, subset_suffix

#: The zoo's name in the tables.
DEDICATED_ROW = "dedicated per subset"

#: Default name template of the 15 dedicated trainers (``trainers/mstkd_dedicated.py``).
DEDICATED_TEMPLATE = "nnUNetTrainerDedicated_{subset}"


def dedicated_trainer_name(subset, channel_names, template: str = DEDICATED_TEMPLATE) -> str:
    """The trainer class trained on ``subset``, e.g. ``nnUNetTrainerDedicated_T1ce_FLAIR``.

    Args:
        subset: Present channel indices of the dataset.
        channel_names: The dataset's channel names (any alias of the BraTS names).
        template: Name with a ``{subset}`` field, e.g. ``nnUNetTrainerDedicated_{subset}_10ep25it``.

    Raises:
        ValueError: If the template has no ``{subset}`` field or a channel is not a BraTS sequence.
    """
    if "{subset}" not in template:
        raise ValueError(f"The dedicated-model template {template!r} needs a '{{subset}}' field, "
                         f"e.g. {DEDICATED_TEMPLATE}_10ep25it.")
    return template.format(subset=subset_suffix(subset, channel_names))


def zoo_trainers(template: str) -> dict[str, str]:
    """Subset label (paper order) -> trainer class of the model dedicated to it."""
    return {subset_label(s, BRATS_CHANNELS): dedicated_trainer_name(s, BRATS_CHANNELS, template)
            for s in paper_subsets(BRATS_CHANNELS)}


def load_zoo(template: str, load: Callable[[str], MissingModalityPredictor]) -> BenchmarkModel:
    """The zoo as one :class:`BenchmarkModel` named :data:`DEDICATED_ROW`; ``load(trainer)`` gives a predictor."""
    by_subset = {label: load(trainer) for label, trainer in zoo_trainers(template).items()}
    return BenchmarkModel(DEDICATED_ROW, next(iter(by_subset.values())), by_subset)
