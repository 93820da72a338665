"""How each supported challenge names its files and numbers its tumour labels.

Every converter writes the same nnU-Net raw dataset (METHOD §1): channels
``_0000`` T1, ``_0001`` T1ce, ``_0002`` T2, ``_0003`` FLAIR and labels
1 edema (ED/SNFH), 2 necrosis (NCR/NETC), 3 enhancing tumour (ET), trained as the
regions WT = (1, 2, 3), TC = (2, 3), ET = (3).

* ``brats2021``: ``BraTS2021_XXXXX_{t1,t1ce,t2,flair,seg}.nii.gz``; labels 1 NCR -> 2,
  2 ED -> 1, 4 ET -> 3.
* ``brats-gli`` (BraTS 2023/2024 GLI): ``BraTS-GLI-XXXXX-YYY-{t1n,t1c,t2w,t2f,seg}.nii.gz``;
  labels 1 NETC -> 2, 2 SNFH -> 1, 3 ET -> 3, 4 resection cavity -> 0.
* ``fets`` (FeTS 2022/2024): ``FeTS20NN_XXXXX_{t1,t1ce,t2,flair,seg}.nii.gz``; labels as
  ``brats2021``.

The resection cavity (label 4 of the BraTS 2024 post-treatment glioma data) is not
part of WT, TC or ET, so it becomes background; the converter counts its voxels.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

#: Channel names in channel order, as in ``dataset.json``. Equal to
#: ``nnunetv2_mstkd.modalities.BRATS_CHANNELS`` (a test checks it); repeated here because
#: that module imports torch, which would add seconds to the start of every conversion worker.
CHANNEL_NAMES: tuple[str, ...] = ("T1", "T1ce", "T2", "FLAIR")

#: ``labels`` of the written ``dataset.json``: nnU-Net's BraTS regions.
NNUNET_LABELS: dict[str, int | tuple[int, ...]] = {
    "background": 0,
    "whole tumor": (1, 2, 3),
    "tumor core": (2, 3),
    "enhancing tumor": (3,),
}

#: ``regions_class_order`` of the written ``dataset.json``.
REGIONS_CLASS_ORDER: tuple[int, ...] = (1, 2, 3)

#: nnU-Net label -> challenge label, per ``mstkd_convert to-brats --convention``.
CONVENTIONS: dict[str, dict[int, int]] = {
    "2021": {0: 0, 1: 2, 2: 1, 3: 4},
    "gli": {0: 0, 1: 2, 2: 1, 3: 3},
}

_NIFTI = r"\.nii(?:\.gz)?"


@dataclass(frozen=True)
class Scheme:
    """One challenge's file naming and label numbering.

    Attributes:
        key: Name on the command line, e.g. ``"brats2021"``.
        title: Name for messages, e.g. ``"BraTS 2021"``.
        file_pattern: Regular expression that a file name must match completely; its
            group ``case`` is the case identifier (kept unchanged) and ``tag`` the
            sequence or ``seg``.
        example: A file name of this scheme, shown when nothing matches.
        channels: File tag -> channel index (0 T1, 1 T1ce, 2 T2, 3 FLAIR).
        label_map: Challenge label -> nnU-Net label. Any other value is an error.
        background_labels: Challenge labels outside WT/TC/ET that ``label_map`` sends to
            background, with their meaning; their voxels are counted in the report.
        convention: The ``to-brats`` convention that maps predictions back.
        default_name: Dataset name used when ``-n`` is not given.
        reference: Where the data comes from (written to ``dataset.json``).
    """

    key: str
    title: str
    file_pattern: re.Pattern
    example: str
    channels: dict[str, int]
    label_map: dict[int, int]
    convention: str
    default_name: str
    reference: str
    background_labels: dict[int, str] = field(default_factory=dict)
    seg_tag: str = "seg"

    def channel_name(self, index: int) -> str:
        """Canonical name of channel ``index`` (``"T1"``, ``"T1ce"``, ``"T2"``, ``"FLAIR"``)."""
        return CHANNEL_NAMES[index]

    def describe_labels(self) -> str:
        """The label mapping in words, for ``dataset.json`` and messages."""
        pairs = ", ".join(f"{k}->{v}" for k, v in sorted(self.label_map.items()))
        text = f"{self.title} labels mapped to nnU-Net's BraTS labels (1 edema, 2 necrosis, 3 enhancing): {pairs}."
        for label, meaning in sorted(self.background_labels.items()):
            text += f" Label {label} ({meaning}) is not part of WT/TC/ET and becomes background."
        return text


_LEGACY_CHANNELS = {"t1": 0, "t1ce": 1, "t2": 2, "flair": 3}
_LEGACY_LABELS = {0: 0, 1: 2, 2: 1, 4: 3}

SCHEMES: dict[str, Scheme] = {
    "brats2021": Scheme(
        key="brats2021",
        title="BraTS 2021",
        file_pattern=re.compile(rf"(?P<case>BraTS2021_\d+)_(?P<tag>t1|t1ce|t2|flair|seg){_NIFTI}"),
        example="BraTS2021_00000_t1ce.nii.gz",
        channels=_LEGACY_CHANNELS,
        label_map=_LEGACY_LABELS,
        convention="2021",
        default_name="BraTS2021",
        reference="https://www.synapse.org/#!Synapse:syn25829067",
    ),
    "brats-gli": Scheme(
        key="brats-gli",
        title="BraTS 2023/2024 GLI",
        file_pattern=re.compile(rf"(?P<case>BraTS-GLI-\d+-\d+)-(?P<tag>t1n|t1c|t2w|t2f|seg){_NIFTI}"),
        example="BraTS-GLI-00000-000-t1c.nii.gz",
        channels={"t1n": 0, "t1c": 1, "t2w": 2, "t2f": 3},
        label_map={0: 0, 1: 2, 2: 1, 3: 3, 4: 0},
        background_labels={4: "resection cavity"},
        convention="gli",
        default_name="BraTSGLI",
        reference="https://www.synapse.org/brats",
    ),
    "fets": Scheme(
        key="fets",
        title="FeTS 2022/2024",
        file_pattern=re.compile(rf"(?P<case>FeTS20\d\d_\d+)_(?P<tag>t1|t1ce|t2|flair|seg){_NIFTI}"),
        example="FeTS2022_00000_t1ce.nii.gz",
        channels=_LEGACY_CHANNELS,
        label_map=_LEGACY_LABELS,
        convention="2021",
        default_name="FeTS",
        reference="https://fets-ai.github.io/Challenge/",
    ),
}


def get_scheme(key: str | Scheme) -> Scheme:
    """Return the scheme named ``key`` (or ``key`` itself when it already is one).

    Raises:
        ValueError: For an unknown name; the message lists the known ones.
    """
    if isinstance(key, Scheme):
        return key
    if key not in SCHEMES:
        raise ValueError(f"Unknown dataset scheme {key!r}. Known schemes: {', '.join(SCHEMES)}.")
    return SCHEMES[key]
