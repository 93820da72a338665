"""The 15-subset benchmark (``mstkd_benchmark``), from cases to the paper-style tables.

* :mod:`~nnunetv2_mstkd.evaluation.benchmark`: the command and :func:`run_benchmark`.
* :mod:`~nnunetv2_mstkd.evaluation.cases`: which cases, their files, references and regions.
* :mod:`~nnunetv2_mstkd.evaluation.subset_loop`: the loop over cases, models and subsets (one row per score).
* :mod:`~nnunetv2_mstkd.evaluation.metrics`: Dice and HD95 per region.
* :mod:`~nnunetv2_mstkd.evaluation.summary`: rows to per-subset mean/SD (per-case CSV, summary JSON).
* :mod:`~nnunetv2_mstkd.evaluation.folds`: mean ± SD across folds.
* :mod:`~nnunetv2_mstkd.evaluation.stats`: case-level Wilcoxon tests, Holm-corrected.
* :mod:`~nnunetv2_mstkd.evaluation.tables`, :mod:`~nnunetv2_mstkd.evaluation.heatmap`: Markdown tables, Dice heatmap.
* :mod:`~nnunetv2_mstkd.evaluation.output_folder`: writing every file of the output folder.
"""
