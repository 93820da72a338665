"""Short training schedules and CPU inference settings, as two mixins of nnU-Net trainers.

nnU-Net rebuilds a trainer from its class name and ``__init__`` signature, so settings
are class attributes and every variant is a named class (``trainers/mstkd_cpu_schedules.py``
writes out the ones this project uses). The two concerns are separate mixins, listed in
each class's bases, so that a class says what it changes:

* :class:`ShortSchedule`: ``schedule_epochs`` epochs of ``schedule_iterations`` iterations;
* :class:`CPUInference`: no test-time mirroring (``test_time_mirroring``) and paired
  sliding-window tiles in the final validation on CPU (``pair_cpu_tiles``).

Example, a schedule of your own with nnU-Net's test-time mirroring kept::

    class nnUNetTrainerMSTKD_30ep50it(ShortSchedule, nnUNetTrainerMSTKD):
        schedule_epochs, schedule_iterations = 30, 50
"""
from __future__ import annotations

import torch

from nnunetv2_mstkd.network.cpu_batching import pair_cpu_batches


class ShortSchedule:
    """Mixin (first in the bases): train for fewer epochs and iterations, with a checkpoint every epoch.

    Attributes:
        schedule_epochs: ``num_epochs``.
        schedule_iterations: ``num_iterations_per_epoch``; validation runs a fifth as many (at least 1).
    """

    schedule_epochs: int = 1000
    schedule_iterations: int = 250

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = self.schedule_epochs
        self.num_iterations_per_epoch = self.schedule_iterations
        self.num_val_iterations_per_epoch = max(1, self.schedule_iterations // 5)
        # nnU-Net writes checkpoint_latest only every save_every epochs; short runs must stay resumable.
        self.save_every = 1

    @property
    def schedule_suffix(self) -> str:
        """``_{E}ep{I}it``: a student of this schedule first looks for the teacher with the same suffix."""
        return f"_{self.schedule_epochs}ep{self.schedule_iterations}it"


class CPUInference:
    """Mixin: inference settings for runs on a CPU.

    Attributes:
        test_time_mirroring: False stores ``inference_allowed_mirroring_axes = None`` in the
            checkpoint, so the final validation, ``nnUNetv2_predict``, ``mstkd_predict`` and the
            benchmark do not mirror (up to 8× the CPU time); training-time mirroring stays.
        pair_cpu_tiles: On CPU, the final validation runs each sliding-window tile as a batch of
            two (:mod:`~nnunetv2_mstkd.network.cpu_batching`; the same result up to float rounding).
    """

    test_time_mirroring: bool = False
    pair_cpu_tiles: bool = True

    def configure_rotation_dummyDA_mirroring_and_inital_patch_size(self):
        result = super().configure_rotation_dummyDA_mirroring_and_inital_patch_size()
        if not self.test_time_mirroring:
            self.inference_allowed_mirroring_axes = None
        return result

    def perform_actual_validation(self, save_probabilities: bool = False):
        if self.device.type != "cpu" or not self.pair_cpu_tiles:
            return super().perform_actual_validation(save_probabilities)
        handles = pair_cpu_batches(self.network)
        try:
            return super().perform_actual_validation(save_probabilities)
        finally:
            for handle in handles:
                handle.remove()
