"""Where one benchmark prediction's time goes: network, the rest of the sliding window, segmentation, Dice, HD95.

``mstkd_benchmark`` predicts every case under 15 modality subsets, so what surrounds
each network pass runs thousands of times at BraTS size. This script times, for one
case and a few subsets, the steps of the benchmark's own loop
(``evaluation.subset_loop``):

- **network**: the model's forward calls inside the sliding window (hooks on the network);
- **sliding window, rest**: ``predict_logits`` minus the network (padding, Gaussian weighting,
  accumulation, zeroing absent channels);
- **segmentation**: logits to a label map in the image's own geometry (nnU-Net's
  ``convert_predicted_logits_to_segmentation_with_correct_shape``: resampling, un-cropping);
- **Dice**, **HD95**: per region (WT, TC, ET), as ``region_metrics`` computes them;
- **export**: writing the segmentation (only when ``mstkd_benchmark --save_predictions``).

Preprocessing runs once per case and model (not per subset) and is given apart::

    python scripts/bench_prediction_split.py -m RESULTS/Dataset972_SynthBraTS/TRAINER__PLANS__3d_fullres \\
        -i RAW/Dataset972_SynthBraTS/imagesTs -l RAW/Dataset972_SynthBraTS/labelsTs --subsets 3
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import torch
from nnunetv2.evaluation.evaluate_predictions import region_or_label_to_mask

from nnunetv2_mstkd.evaluation.cases import folder_cases, read_reference
from nnunetv2_mstkd.evaluation.metrics import dice, hd95
from nnunetv2_mstkd.inference.predictor import MissingModalityPredictor
from nnunetv2_mstkd.modalities import all_subsets, presence_mask, subset_label
from nnunetv2_mstkd.regions import evaluation_regions


class NetworkTimer:
    """Seconds spent inside ``module``'s forward calls (forward pre- and post-hooks)."""

    def __init__(self, module: torch.nn.Module):
        self.seconds, self._start = 0.0, None
        module.register_forward_pre_hook(self._begin)
        module.register_forward_hook(self._end)

    def _begin(self, *_):
        self._start = time.perf_counter()

    def _end(self, *_):
        self.seconds += time.perf_counter() - self._start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-m", required=True, help="model folder (TRAINER__PLANS__CONFIGURATION)")
    p.add_argument("-f", default="0", help="fold (default 0)")
    p.add_argument("-i", required=True, help="images folder (CASE_XXXX files)")
    p.add_argument("-l", required=True, help="reference labels folder")
    p.add_argument("--subsets", type=int, default=3, help="subsets timed, from the 15 (default 3)")
    p.add_argument("--cases", type=int, default=1, help="cases timed (default 1)")
    args = p.parse_args()
    predictor = MissingModalityPredictor.from_model_folder(args.m, (int(args.f),), device=torch.device("cpu"),
                                                           use_mirroring=False, allow_tqdm=False)
    names = predictor.channel_names
    regions = evaluation_regions(predictor.dataset_json)
    cases = folder_cases(args.i, args.l, names, predictor.dataset_json["file_ending"])[: args.cases]
    subsets = all_subsets(len(names))[-args.subsets:]
    timer = NetworkTimer(predictor.network)
    reader = predictor.plans_manager.image_reader_writer_class()
    rows, pre_seconds = [], []
    with tempfile.TemporaryDirectory() as out:
        for case in cases:
            reference, spacing = read_reference(case, reader)
            start = time.perf_counter()
            pre = predictor.preprocess(case.images, case.case_id)
            pre_seconds.append(time.perf_counter() - start)
            for subset in subsets:
                row = {"subset": subset_label(subset, names)}
                timer.seconds = 0.0
                start = time.perf_counter()
                logits = predictor.predict_logits(pre, presence_mask(subset, len(names)))
                row["network"] = timer.seconds
                row["sliding window, rest"] = time.perf_counter() - start - timer.seconds
                start = time.perf_counter()
                seg = predictor.segmentation(pre, logits)
                row["segmentation"] = time.perf_counter() - start
                row["Dice"] = row["HD95"] = 0.0
                for labels in regions.values():
                    a, b = region_or_label_to_mask(seg, labels), region_or_label_to_mask(reference, labels)
                    start = time.perf_counter()
                    dice(a, b)
                    row["Dice"] += time.perf_counter() - start
                    start = time.perf_counter()
                    hd95(a, b, spacing)
                    row["HD95"] += time.perf_counter() - start
                start = time.perf_counter()
                reader.write_seg(seg, os.path.join(out, f"{case.case_id}.nii.gz"), pre.properties)
                row["export"] = time.perf_counter() - start
                row["voxels predicted"] = {k: int(region_or_label_to_mask(seg, v).sum()) for k, v in regions.items()}
                rows.append(row)
    steps = ["network", "sliding window, rest", "segmentation", "Dice", "HD95", "export"]
    shape = "×".join(map(str, reference.shape))
    print(f"Model {os.path.basename(args.m.rstrip('/'))}, fold {args.f}; {len(cases)} case(s) of {shape} voxels, "
          f"subsets {', '.join(r['subset'] for r in rows[:len(subsets)])}; CPU, {torch.get_num_threads()} threads, "
          f"no mirroring.\n")
    print(f"Preprocessing (once per case and model): {statistics.median(pre_seconds):.2f} s.\n")
    print("| step | median s per prediction |\n|---|---:|")
    for step in steps:
        print(f"| {step} | {statistics.median(r[step] for r in rows):.2f} |")
    outside = statistics.median(sum(r[s] for s in steps[1:5]) for r in rows)
    print(f"\nEverything but the network pass (export excluded, as in the default benchmark): {outside:.2f} s against "
          f"{statistics.median(r['network'] for r in rows):.2f} s for the network. Predicted voxels per region: "
          f"{rows[0]['voxels predicted']}; reference: "
          f"{ {k: int(region_or_label_to_mask(reference, v).sum()) for k, v in regions.items()} }.")


if __name__ == "__main__":
    main()
