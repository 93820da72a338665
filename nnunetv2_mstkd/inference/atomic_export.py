"""nnU-Net's export, made atomic: a case's outputs appear complete or not at all.

nnU-Net's :func:`export_prediction_from_logits` writes ``CASE.npz`` and ``CASE.pkl``
(with ``--save_probabilities``) and then the segmentation straight under their final
names, so a killed run can leave a truncated file that ``--continue_prediction`` then
takes for a finished case. Nothing here copies that export. Instead:

* the prediction loop is given a temporary output name per case
  (:func:`~nnunetv2_mstkd.atomic_io.partial_path`, no ending), so nnU-Net's export
  writes ``.CASE.partial-PID-XXXXXXXX.npz``, ``.pkl`` and ``.nii.gz``;
* the plans' image writer is wrapped (:class:`AtomicExportPlansManager`, a
  ``PlansManager`` whose ``image_reader_writer_class`` gives an
  :class:`AtomicSegWriter`) so that writing the segmentation, nnU-Net's last step,
  also moves the ``.npz``/``.pkl`` and then the segmentation into place.

A case therefore counts as done exactly when its segmentation exists, and then everything
it needs exists too. Temporary files of a killed run are hidden and removed by the next
run (:func:`~nnunetv2_mstkd.atomic_io.remove_stale_partials`).
"""
from __future__ import annotations

import functools
import os

import numpy as np
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

from nnunetv2_mstkd.atomic_io import PARTIAL_MARKER, atomic_path, final_path, split_ending

#: Files nnU-Net's export writes before the segmentation, moved into place with it.
SIDE_SUFFIXES = (".npz", ".pkl")


class AtomicSegWriter:
    """An nnU-Net image reader/writer whose ``write_seg`` never leaves a partial file.

    Reading is the wrapped reader/writer's. Writing to a temporary name of
    :func:`~nnunetv2_mstkd.atomic_io.partial_path` form writes there and then moves the
    case's side files and the segmentation to their final names; writing to any other
    name goes through :func:`~nnunetv2_mstkd.atomic_io.atomic_path`.

    Args:
        reader_writer_class: The plans' reader/writer class (e.g. ``SimpleITKIO``).
    """

    def __init__(self, reader_writer_class):
        self._inner = reader_writer_class()

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def write_seg(self, seg: np.ndarray, output_fname: str, properties: dict) -> None:
        """Write ``seg`` as the wrapped writer does, so that the result appears complete or not at all."""
        if PARTIAL_MARKER not in os.path.basename(output_fname):
            with atomic_path(output_fname) as tmp:
                self._inner.write_seg(seg, tmp, properties)
            return
        stem, ending = split_ending(output_fname)
        final_stem = split_ending(final_path(output_fname))[0]
        try:
            self._inner.write_seg(seg, output_fname, properties)
            for suffix in SIDE_SUFFIXES:
                if os.path.exists(stem + suffix):
                    os.replace(stem + suffix, final_stem + suffix)
            os.replace(output_fname, final_stem + ending)  # last: the case is done when this exists
        finally:
            for leftover in (output_fname, *(stem + s for s in SIDE_SUFFIXES)):
                if os.path.exists(leftover):
                    os.remove(leftover)


class AtomicExportPlansManager(PlansManager):
    """nnU-Net's ``PlansManager`` whose image writer is an :class:`AtomicSegWriter`.

    It travels to nnU-Net's export worker processes like the stock one (by pickling),
    so nnU-Net's own export writes atomically there.
    """

    @property
    def image_reader_writer_class(self):
        return functools.partial(AtomicSegWriter, super().image_reader_writer_class)
