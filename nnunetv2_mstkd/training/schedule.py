"""Short training schedules for CPU, the nnU-Net way (variant classes, no new ``__init__`` arguments)."""
from __future__ import annotations

import torch

from nnunetv2_mstkd.network.cpu_batching import pair_cpu_batches

#: (epochs, iterations per epoch) of the shipped short variants of every trainer.
SCHEDULES: tuple[tuple[int, int], ...] = ((1, 10), (2, 10), (5, 25), (10, 25), (20, 25), (50, 25), (100, 25))


def short_variant(base: type, epochs: int, iterations: int, module: str, val_iterations: int | None = None) -> type:
    """Make ``{base}_{epochs}ep{iterations}it``: ``base`` trained for fewer epochs and iterations.

    nnU-Net rebuilds trainers from their class name and ``__init__`` signature, so a
    schedule is a subclass whose ``__init__`` keeps nnU-Net's five arguments and only
    overrides the counts afterwards (nnU-Net sets them as instance attributes). Short
    variants are meant for CPUs, so they also switch test-time mirroring off (in the final
    validation and in ``nnUNetv2_predict`` for their checkpoints; augmentation keeps mirroring),
    and on CPU their final validation runs each sliding-window tile as a batch of two
    (:mod:`~nnunetv2_mstkd.network.cpu_batching`; the same result up to float rounding).

    Args:
        base: Trainer class to shorten.
        epochs: ``num_epochs``.
        iterations: ``num_iterations_per_epoch``.
        module: ``__name__`` of the module that exposes the class.
        val_iterations: ``num_val_iterations_per_epoch`` (default: ``max(1, iterations // 5)``).

    Returns:
        The new class; assign it to a module attribute of the same name so nnU-Net finds it.
    """
    n_val = max(1, iterations // 5) if val_iterations is None else val_iterations

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        base.__init__(self, plans, configuration, fold, dataset_json, device)
        self.num_epochs = epochs
        self.num_iterations_per_epoch = iterations
        self.num_val_iterations_per_epoch = n_val
        # nnU-Net only writes checkpoint_latest every save_every epochs; keep resuming possible.
        self.save_every = 1

    name = f"{base.__name__}_{epochs}ep{iterations}it"
    doc = f"{base.__name__} for {epochs} epochs of {iterations} iterations ({n_val} validation iterations)."
    def configure_rotation_dummyDA_mirroring_and_inital_patch_size(self):
        result = base.configure_rotation_dummyDA_mirroring_and_inital_patch_size(self)
        # Test-time mirroring multiplies CPU inference by up to 8; training-time mirroring stays.
        self.inference_allowed_mirroring_axes = None
        return result

    def perform_actual_validation(self, save_probabilities: bool = False):
        if self.device.type != "cpu":
            return base.perform_actual_validation(self, save_probabilities)
        # The final validation's sliding window runs batch-1 tiles, which hit ATen's slow conv3d path.
        handles = pair_cpu_batches(self.network)
        try:
            return base.perform_actual_validation(self, save_probabilities)
        finally:
            for handle in handles:
                handle.remove()

    attrs = {"__init__": __init__, "__doc__": doc, "__module__": module, "__qualname__": name,
             "configure_rotation_dummyDA_mirroring_and_inital_patch_size":
                 configure_rotation_dummyDA_mirroring_and_inital_patch_size,
             "perform_actual_validation": perform_actual_validation,
             "schedule_suffix": f"_{epochs}ep{iterations}it"}
    return type(name, (base,), attrs)


def short_variants(base: type, module: str) -> dict[str, type]:
    """All shipped :data:`SCHEDULES` of ``base``, by class name, for ``globals().update(...)``."""
    classes = [short_variant(base, e, i, module) for e, i in SCHEDULES]
    return {c.__name__: c for c in classes}
