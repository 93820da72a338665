"""The conversion report: printed at the end of a run and saved as ``conversion_report.json``."""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from nnunetv2_mstkd.atomic_io import atomic_path
from nnunetv2_mstkd.data.convert.case_io import CaseResult

REPORT_NAME = "conversion_report.json"


@dataclass
class ConversionReport:
    """Outcome of one ``mstkd_convert`` run.

    Attributes:
        scheme: The scheme key (``"brats2021"``, ``"brats-gli"``, ``"fets"``).
        source: The download folder.
        dataset_dir: The written nnU-Net raw dataset folder.
        keep_incomplete: Whether incomplete cases were written to ``imagesTs``.
        results: One :class:`CaseResult` per case found.
        unrecognised_files: NIfTI files under ``source`` whose names do not follow the scheme.
        num_training: Cases in ``imagesTr`` after the run (``numTraining`` of ``dataset.json``).
        background_labels: Challenge labels set to background, with their meaning.
    """

    scheme: str
    source: str
    dataset_dir: str
    keep_incomplete: bool
    results: list[CaseResult]
    unrecognised_files: list[str] = field(default_factory=list)
    num_training: int = 0
    background_labels: dict[int, str] = field(default_factory=dict)

    def _ids(self, status: str, destination: str | None = None) -> list[str]:
        return [r.case_id for r in self.results
                if r.status == status and (destination is None or r.destination == destination)]

    @property
    def errors(self) -> dict[str, str]:
        """Case identifier -> error message."""
        return {r.case_id: r.message for r in self.results if r.status == "error"}

    @property
    def ok(self) -> bool:
        """True when no case failed."""
        return not self.errors

    def to_dict(self) -> dict:
        """The report as saved in ``conversion_report.json``."""
        return {
            "scheme": self.scheme,
            "source": self.source,
            "dataset_folder": self.dataset_dir,
            "keep_incomplete": self.keep_incomplete,
            "num_training_cases": self.num_training,
            "converted": self._ids("converted", "imagesTr"),
            "to_imagesTs": self._ids("converted", "imagesTs"),
            "incomplete": {r.case_id: {"missing": r.missing, "written_to": r.destination}
                           for r in self.results if r.missing},
            "skipped_already_done": self._ids("skipped"),
            "errors": self.errors,
            "relabelled_to_background": {
                "labels": {str(k): v for k, v in sorted(self.background_labels.items())},
                "voxels": {r.case_id: r.background_voxels for r in self.results if r.background_voxels},
            },
            "unrecognised_files": self.unrecognised_files,
        }

    def save(self, path: str) -> None:
        """Write the report as JSON (atomically)."""
        with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, indent=2)

    def summary(self) -> str:
        """A human-readable summary listing every incomplete and every failed case."""
        d = self.to_dict()
        lines = [f"{self.scheme}: {self.source} -> {self.dataset_dir}",
                 f"  converted to imagesTr:  {len(d['converted'])}",
                 f"  written to imagesTs:    {len(d['to_imagesTs'])} (no segmentation, or incomplete and kept)",
                 f"  skipped (already done): {len(d['skipped_already_done'])}",
                 f"  incomplete:             {len(d['incomplete'])}"]
        for case_id, info in d["incomplete"].items():
            where = f"in {info['written_to']}" if info["written_to"] else "left out (--keep-incomplete keeps it)"
            lines.append(f"    {case_id}: missing {', '.join(info['missing'])}; {where}")
        voxels = d["relabelled_to_background"]["voxels"]
        if voxels:
            labels = ", ".join(f"{k} ({v})" for k, v in d["relabelled_to_background"]["labels"].items())
            lines.append(f"  label {labels} set to background: {sum(voxels.values())} voxels in {len(voxels)} case(s)")
        if self.unrecognised_files:
            lines.append(f"  ignored {len(self.unrecognised_files)} NIfTI file(s) not named like this dataset, "
                         f"e.g. {self.unrecognised_files[0]}")
        lines.append(f"  errors:                 {len(d['errors'])}")
        lines += [f"    {message}" for message in d["errors"].values()]
        lines.append(f"  imagesTr now holds {self.num_training} case(s); dataset.json written.")
        return "\n".join(lines)
