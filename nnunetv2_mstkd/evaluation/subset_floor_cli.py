"""``mstkd_subset_floor``: a model against the better of its baselines on every subset of a benchmark."""
from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

from nnunetv2_mstkd.atomic_io import atomic_path
from nnunetv2_mstkd.evaluation.subset_floor import plot_subset_floor, subset_floor, subset_floor_markdown


def write_subset_floor(bench: str | Path, model: str, baselines: list[str], out: str | Path | None = None,
                       margin: float = 1.0, holm_per_region: bool = False) -> list[dict]:
    """Read ``bench``'s ``per_case.csv`` and ``summary.json``; write ``subset_floor.{md,csv,png}`` to ``out``.

    Returns:
        The cells of :func:`~nnunetv2_mstkd.evaluation.subset_floor.subset_floor`.

    Raises:
        FileNotFoundError: If ``bench`` is not a finished benchmark folder.
        ValueError: If a model is not in the benchmark.
    """
    bench = Path(bench)
    out = Path(out) if out is not None else bench
    for name in ("per_case.csv", "summary.json"):
        if not (bench / name).is_file():
            raise FileNotFoundError(f"{bench / name} is missing: pass the output folder of a finished mstkd_benchmark.")
    summary = json.loads((bench / "summary.json").read_text())
    unknown = [m for m in [model, *baselines] if m not in summary["models"]]
    if unknown:
        raise ValueError(f"{unknown} not in the benchmark {bench}; its models: {summary['models']}.")
    with open(bench / "per_case.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    cells = subset_floor(rows, model, baselines, summary["subsets"], summary["regions"], margin,
                         holm_per_region=holm_per_region)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(str(out / "subset_floor.md")) as tmp:
        Path(tmp).write_text(f"# {model} against the better of {', '.join(baselines)}, per subset\n\n"
                             f"Benchmark: `{bench}`.\n\n{subset_floor_markdown(cells, model, margin)}\n")
    with atomic_path(str(out / "subset_floor.csv")) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(cells[0]))
        writer.writeheader()
        writer.writerows(cells)
    with atomic_path(str(out / "subset_floor.png")) as tmp:
        plot_subset_floor(cells, model, tmp, margin)
    return cells


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="mstkd_subset_floor", description=__doc__)
    parser.add_argument("bench", help="output folder of mstkd_benchmark")
    parser.add_argument("-m", required=True, help="the model under test (trainer name as in the benchmark)")
    parser.add_argument("-b", nargs="+", required=True, help="baselines it must not fall behind")
    parser.add_argument("-o", default=None, help="output folder (default: the benchmark folder)")
    parser.add_argument("--margin", type=float, default=1.0, help="allowed shortfall in Dice points (default 1)")
    parser.add_argument("--holm-per-region", action="store_true",
                        help="Holm within each region over its subsets (default: over all cells)")
    args = parser.parse_args(argv)
    cells = write_subset_floor(args.bench, args.m, args.b, args.o, args.margin, args.holm_per_region)
    short = sum(not c["holds"] for c in cells)
    worse = sum(c["worse"] for c in cells)
    print(f"{args.m}: {len(cells) - short}/{len(cells)} cells at least the better baseline - {args.margin:g}; "
          f"{worse} significantly worse (Holm). Written to {args.o or args.bench}/subset_floor.md")
