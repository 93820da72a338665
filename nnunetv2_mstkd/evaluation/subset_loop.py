"""The benchmark's loop: every case, every model, every modality subset, scored per region.

The loop is case-major so that memory stays bounded by one case: for each case,
read its reference; preprocess it once per preprocessing key (models whose plans
and configuration preprocess alike share the result, see
:meth:`~nnunetv2_mstkd.inference.predictor.MissingModalityPredictor.preprocessing_key`);
then for each model and each subset, zero the absent channels of the preprocessed
complete case (METHOD §2: absent means zero after normalisation, exactly what
training-time modality dropout feeds the network), run nnU-Net's sliding window,
convert the logits to a label map in the image's own geometry and score it.

Inference time per subset covers the sliding window and the conversion to a
segmentation (what a user waits for), not the scoring.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from nnunetv2_mstkd.evaluation.cases import EvalCase, read_reference
from nnunetv2_mstkd.evaluation.metrics import region_metrics
from nnunetv2_mstkd.inference.predictor import MissingModalityPredictor
from nnunetv2_mstkd.inference.preprocessing import PreprocessedCase
from nnunetv2_mstkd.modalities import presence_mask, subset_label


@dataclass
class BenchmarkModel:
    """A model to evaluate: its name in the tables (the trainer) and its predictor.

    A zoo of dedicated models is one ``BenchmarkModel`` too: ``by_subset`` maps each subset label to
    the predictor of the model trained for that subset (``predictor`` is any one of them), and every
    subset is scored by its own model.
    """

    name: str
    predictor: MissingModalityPredictor
    by_subset: dict[str, MissingModalityPredictor] | None = None
    key: str = field(init=False)

    def __post_init__(self):
        self.key = self.predictor.preprocessing_key()
        for label, p in (self.by_subset or {}).items():
            if p.preprocessing_key() != self.key:
                raise ValueError(f"{self.name}: the model for {label} preprocesses differently from the others; "
                                 f"a dedicated zoo must share one plans file and configuration.")

    def predictor_for(self, subset: str) -> MissingModalityPredictor:
        """The predictor that scores ``subset`` (the zoo's model for it, else the one model)."""
        if self.by_subset is None:
            return self.predictor
        if subset not in self.by_subset:
            raise ValueError(f"{self.name} has no model for subset {subset}; it has {sorted(self.by_subset)}.")
        return self.by_subset[subset]


@dataclass
class BenchmarkResult:
    """What :func:`evaluate` measured.

    Attributes:
        rows: Per-case rows ``case, model, subset, region, Dice, HD95`` (see ``evaluation.summary``).
        timing: One row per case and model: ``case, model, preprocessing_s`` (blank where the
            model reused a preprocessing done for another model), ``preprocessed_by``,
            ``inference_mean_s`` (per subset), ``inference_total_s`` (all subsets), ``n_subsets``.
        preprocess_calls: ``(case, model)`` for every preprocessing that ran.
    """

    rows: list[dict] = field(default_factory=list)
    timing: list[dict] = field(default_factory=list)
    preprocess_calls: list[tuple[str, str]] = field(default_factory=list)


def evaluate(models: Sequence[BenchmarkModel], cases: Sequence[EvalCase], subsets: Sequence[tuple[int, ...]],
             regions: dict[str, tuple[int, ...]],
             on_segmentation: Callable[[EvalCase, BenchmarkModel, str, np.ndarray, PreprocessedCase], None]
             | None = None, progress: bool = True,
             lesion_wise: Callable[[np.ndarray, np.ndarray, tuple], dict[str, dict[str, float]]] | None = None,
             preprocessed: Callable[[EvalCase], PreprocessedCase] | None = None) -> BenchmarkResult:
    """Score every model on every case under every modality subset.

    Args:
        models: The models, in table order; all must have the same channels.
        cases: Complete cases with references.
        subsets: Channel-index tuples of the present channels, e.g. ``paper_subsets(channel_names)``.
        regions: Region name -> labels forming it (see ``evaluation.cases.evaluation_regions``).
        on_segmentation: Called with ``(case, model, subset label, segmentation, preprocessed case)``
            after each prediction, e.g. to save it.
        progress: Show a progress bar over case x model x subset steps.
        lesion_wise: ``(segmentation, reference, spacing) -> {region: {metric: value}}``, e.g. BraTS's
            lesion-wise metrics (:mod:`~nnunetv2_mstkd.evaluation.brats_lesionwise`), added to each row.
        preprocessed: Returns a case already preprocessed (e.g. from nnU-Net's preprocessed training
            data) instead of preprocessing ``case.images`` with the first model's predictor.

    Raises:
        ValueError: If the models' channels differ, or a prediction and its reference differ in shape.
    """
    if not models:
        raise ValueError("No model to evaluate.")
    channel_names = models[0].predictor.channel_names
    for m in models[1:]:
        if m.predictor.channel_names != channel_names:
            raise ValueError(f"Models {models[0].name} ({channel_names}) and {m.name} ({m.predictor.channel_names}) "
                             f"have different channels; benchmark models of one dataset together.")
    labels = [subset_label(s, channel_names) for s in subsets]
    masks = [presence_mask(s, len(channel_names)) for s in subsets]
    reader = models[0].predictor.plans_manager.image_reader_writer_class()
    result = BenchmarkResult()
    bar = tqdm(total=len(cases) * len(models) * len(subsets), desc="mstkd_benchmark", unit="pred",
               disable=not progress, dynamic_ncols=True)
    try:
        for case in cases:
            reference, spacing = read_reference(case, reader)
            cache: dict[str, tuple[PreprocessedCase, float, str]] = {}
            for model in models:
                if model.key not in cache:
                    bar.set_postfix_str(f"{case.case_id} | {model.name} | preprocessing")
                    start = time.perf_counter()
                    pre = preprocessed(case) if preprocessed is not None \
                        else model.predictor.preprocess(case.images, case.case_id)
                    cache[model.key] = (pre, time.perf_counter() - start, model.name)
                    result.preprocess_calls.append((case.case_id, model.name))
                    own = True
                else:
                    own = False
                pre, pre_seconds, pre_by = cache[model.key]
                seconds = []
                for label, mask in zip(labels, masks):
                    bar.set_postfix_str(f"{case.case_id} | {model.name} | {label}")
                    start = time.perf_counter()
                    predictor = model.predictor_for(label)
                    logits = predictor.predict_logits(pre, mask)
                    seg = predictor.segmentation(pre, logits)
                    seconds.append(time.perf_counter() - start)
                    del logits
                    if seg.shape != reference.shape:
                        raise ValueError(f"case {case.case_id}: prediction has shape {seg.shape} but the reference "
                                         f"{case.label} has {reference.shape}; the images and the reference must "
                                         f"share one grid.")
                    extra = lesion_wise(seg, reference, spacing) if lesion_wise is not None else {}
                    for region, scores in region_metrics(seg, reference, spacing, regions).items():
                        result.rows.append({"case": case.case_id, "model": model.name, "subset": label,
                                            "region": region, **scores, **extra.get(region, {})})
                    if on_segmentation is not None:
                        on_segmentation(case, model, label, seg, pre)
                    bar.update()
                result.timing.append({"case": case.case_id, "model": model.name,
                                      "preprocessing_s": pre_seconds if own else "", "preprocessed_by": pre_by,
                                      "inference_mean_s": float(np.mean(seconds)),
                                      "inference_total_s": float(np.sum(seconds)), "n_subsets": len(seconds)})
            del cache
    finally:
        bar.close()
    return result


def segmentation_saver(folder: str) -> Callable:
    """An ``on_segmentation`` callback writing ``folder/MODEL/SUBSET/CASE<file_ending>`` with the model's writer.

    The predictor's writer is atomic (:class:`~nnunetv2_mstkd.inference.atomic_export.AtomicSegWriter`),
    so a file that exists is complete.
    """
    def save(case: EvalCase, model: BenchmarkModel, label: str, seg: np.ndarray, pre: PreprocessedCase) -> None:
        p = model.predictor
        target = os.path.join(folder, model.name, label)
        os.makedirs(target, exist_ok=True)
        rw = p.plans_manager.image_reader_writer_class()
        rw.write_seg(seg, os.path.join(target, case.case_id + p.dataset_json["file_ending"]), pre.properties)
    return save
