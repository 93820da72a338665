"""Finding the cases of a challenge download folder.

Downloads come as one folder per case (``BraTS2021_00000/BraTS2021_00000_t1.nii.gz``),
as flat folders of files, or nested a level or two deeper (per-site partitions,
archive folders). :func:`find_download_cases` walks the whole tree and groups the files
by the case identifier in their name, so all of these layouts work.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from nnunetv2_mstkd.data.convert.schemes import Scheme, get_scheme


@dataclass
class DownloadCase:
    """The source files of one case.

    Attributes:
        case_id: The challenge's identifier, kept as the nnU-Net case identifier.
        images: Channel index -> image file.
        seg: The segmentation file, or None (unlabelled case, e.g. validation data).
        duplicates: Messages about sequences found in more than one file; a case with
            duplicates is reported as an error instead of guessing which file is meant.
    """

    case_id: str
    images: dict[int, str] = field(default_factory=dict)
    seg: str | None = None
    duplicates: list[str] = field(default_factory=list)

    def missing_channels(self, num_channels: int = 4) -> list[int]:
        """Channel indices without an image file."""
        return [c for c in range(num_channels) if c not in self.images]


def _is_nifti(name: str) -> bool:
    return name.endswith(".nii.gz") or name.endswith(".nii")


def find_download_cases(scheme: str | Scheme, source: str) -> tuple[list[DownloadCase], list[str]]:
    """Group the files under ``source`` into cases of ``scheme``.

    Hidden files and folders (names starting with ``.``, e.g. macOS ``._`` files) are
    ignored.

    Args:
        scheme: A :class:`Scheme` or its key (``"brats2021"``, ``"brats-gli"``, ``"fets"``).
        source: The download folder.

    Returns:
        The cases sorted by identifier, and the NIfTI files whose names do not follow
        the scheme (reported so that a wrong scheme or a renamed file is noticed).

    Raises:
        FileNotFoundError: If ``source`` is not a folder.
    """
    scheme = get_scheme(scheme)
    if not os.path.isdir(source):
        raise FileNotFoundError(f"Source folder {source!r} does not exist or is not a folder. Pass the unpacked "
                                f"{scheme.title} download folder.")
    cases: dict[str, DownloadCase] = {}
    unrecognised: list[str] = []
    for root, dirs, files in os.walk(source):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith("."):
                continue
            path = os.path.join(root, name)
            match = scheme.file_pattern.fullmatch(name)
            if match is None:
                if _is_nifti(name):
                    unrecognised.append(path)
                continue
            case = cases.setdefault(match["case"], DownloadCase(match["case"]))
            tag = match["tag"]
            if tag == scheme.seg_tag:
                previous = case.seg
                case.seg = path
            else:
                previous = case.images.get(scheme.channels[tag])
                case.images[scheme.channels[tag]] = path
            if previous is not None:
                case.duplicates.append(f"'{tag}' is present twice: {previous} and {path}")
    return [cases[k] for k in sorted(cases)], unrecognised
