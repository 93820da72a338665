"""Write a synthetic BraTS-like nnU-Net raw dataset: ``mstkd_synth`` and :func:`generate_dataset`.

The dataset lands in ``$nnUNet_raw/DatasetXXX_NAME`` with ``imagesTr``/``labelsTr``
(and ``imagesTs``/``labelsTs`` for test cases), NIfTI files at 1 mm isotropic
spacing and a ``dataset.json`` made by nnU-Net's ``generate_dataset_json`` with
BraTS region labels. Cases come from :func:`nnunetv2_mstkd.data.phantom.make_case`.

Each case has its own random stream derived from ``(seed, split, index)``, so the
same arguments give byte-identical arrays and asking for more cases leaves the
earlier ones unchanged. The dataset is written into a hidden temporary sibling
folder and renamed into place at the end: an interrupted run leaves no partial
``DatasetXXX_*`` folder (a run killed with SIGKILL leaves a hidden
``.DatasetXXX_NAME.partial-*`` folder that can be deleted).

Example::

    export nnUNet_raw=/data/nnUNet_raw
    mstkd_synth -d 901 --cases 24 --test-cases 8 --size 64 --seed 0
    nnUNetv2_plan_and_preprocess -d 901 --verify_dataset_integrity
"""
from __future__ import annotations

import argparse
import glob
import os
import re
import shutil
import tempfile

import numpy as np
import SimpleITK as sitk
from nnunetv2.dataset_conversion.generate_dataset_json import generate_dataset_json
from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO
from nnunetv2.paths import nnUNet_raw
from tqdm import tqdm

from nnunetv2_mstkd.data.phantom import MIN_SIZE, make_case
from nnunetv2_mstkd.modalities import BRATS_CHANNELS

#: Region labels in nnU-Net's BraTS convention (METHOD §1).
REGION_LABELS: dict[str, int | list[int]] = {
    "background": 0, "whole tumor": [1, 2, 3], "tumor core": [2, 3], "enhancing tumor": [3],
}
REGIONS_CLASS_ORDER = (1, 2, 3)
FILE_ENDING = ".nii.gz"

# 1 mm isotropic, identity orientation, for images and labels alike.
_GEOMETRY = {"sitk_stuff": {"spacing": (1.0, 1.0, 1.0), "origin": (0.0, 0.0, 0.0),
                            "direction": (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)}}
#: BraTS's grid (SRI-24 atlas space): 240 × 240 × 155 voxels of 1 mm, array order (z, y, x), and the
#: origin and direction SimpleITK reports for BraTS files.
BRATS_SHAPE = (155, 240, 240)
BRATS_GEOMETRY = {"sitk_stuff": {"spacing": (1.0, 1.0, 1.0), "origin": (0.0, -239.0, 0.0),
                                 "direction": (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)}}
_SPLITS = {"train": 0, "test": 1}


def embed(image: np.ndarray, label: np.ndarray, shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Place a cubic phantom case in the centre of a zero volume of ``shape`` (zero outside the brain)."""
    size = label.shape[0]
    if any(s < size for s in shape):
        raise ValueError(f"Shape {shape} cannot hold a case of {size}^3 voxels.")
    offset = [(s - size) // 2 for s in shape]
    box = tuple(slice(o, o + size) for o in offset)
    big_image = np.zeros((image.shape[0], *shape), dtype=image.dtype)
    big_label = np.zeros(shape, dtype=label.dtype)
    big_image[(slice(None), *box)] = image
    big_label[box] = label
    return big_image, big_label


def case_seed(seed: int, split: str, index: int) -> tuple[int, int, int]:
    """Seed of one case: independent of how many cases are generated in either split."""
    return seed, _SPLITS[split], index


def _resolve_raw_dir(raw_dir: str | None) -> str:
    raw_dir = raw_dir if raw_dir is not None else nnUNet_raw.get()
    if not raw_dir:
        raise ValueError("nnUNet_raw is not set. Export it first (export nnUNet_raw=/path/to/nnUNet_raw) or pass "
                         "raw_dir; see nnU-Net's documentation/setting_up_paths.md.")
    return os.path.abspath(raw_dir)


def validate_arguments(dataset_id: int, num_cases: int, num_test_cases: int, size: int, seed: int, name: str,
                       raw_dir: str | None) -> tuple[str, str]:
    """Check every argument before anything is written.

    Returns:
        The absolute raw folder and the dataset folder name ``DatasetXXX_NAME``.

    Raises:
        ValueError: Naming the offending argument and value and what to do instead.
    """
    def is_int(v):
        return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

    if not is_int(dataset_id) or not 1 <= dataset_id <= 999:
        raise ValueError(f"Dataset ID must be an integer from 1 to 999 (got {dataset_id!r}).")
    if not is_int(num_cases) or num_cases < 1:
        raise ValueError(f"Number of training cases must be at least 1 (got {num_cases!r}).")
    if not is_int(num_test_cases) or num_test_cases < 0:
        raise ValueError(f"Number of test cases must be 0 or more (got {num_test_cases!r}).")
    if not is_int(size) or size < MIN_SIZE:
        raise ValueError(f"Size must be at least {MIN_SIZE} voxels per edge (got {size!r}); smaller volumes cannot "
                         f"hold a tumour with oedema, enhancing rim and core.")
    if not is_int(seed) or seed < 0:
        raise ValueError(f"Seed must be a non-negative integer (got {seed!r}).")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", name):
        raise ValueError(f"Dataset name must be letters, digits, '_' or '-', starting with a letter or digit "
                         f"(got {name!r}).")
    raw_dir = _resolve_raw_dir(raw_dir)
    if os.path.exists(raw_dir) and not os.path.isdir(raw_dir):
        raise ValueError(f"nnUNet_raw points to {raw_dir}, which is a file, not a folder.")
    taken = sorted(glob.glob(os.path.join(raw_dir, f"Dataset{dataset_id:03d}_*")))
    if taken:
        raise ValueError(f"Dataset ID {dataset_id} is already used by {taken[0]}. Choose another ID or delete "
                         f"that folder.")
    return raw_dir, f"Dataset{dataset_id:03d}_{name}"


def _write_case(folder: str, split_dir: str, identifier: str, image: np.ndarray, label: np.ndarray,
                geometry: dict = _GEOMETRY) -> None:
    geo = geometry["sitk_stuff"]
    for c in range(image.shape[0]):
        itk = sitk.GetImageFromArray(image[c])
        itk.SetSpacing(geo["spacing"])
        itk.SetOrigin(geo["origin"])
        itk.SetDirection(geo["direction"])
        sitk.WriteImage(itk, os.path.join(folder, f"images{split_dir}", f"{identifier}_{c:04d}{FILE_ENDING}"), True)
    SimpleITKIO().write_seg(label, os.path.join(folder, f"labels{split_dir}", f"{identifier}{FILE_ENDING}"),
                            geometry)


def generate_dataset(dataset_id: int, num_cases: int, num_test_cases: int = 0, size: int = 64, seed: int = 0,
                     name: str = "SynthBraTS", raw_dir: str | None = None, brats_grid: bool = False) -> str:
    """Generate a synthetic BraTS-like nnU-Net raw dataset.

    Args:
        dataset_id: nnU-Net dataset ID, 1–999, not used by any ``DatasetXXX_*`` folder in ``raw_dir``.
        num_cases: Training cases (``imagesTr``/``labelsTr``), at least 1.
        num_test_cases: Test cases (``imagesTs``/``labelsTs``), 0 for none.
        size: Edge length of each cubic case in voxels (1 mm), at least ``MIN_SIZE`` (24).
        seed: Non-negative base seed; case ``i`` of a split always gets the same data.
        name: Dataset name, the part after ``DatasetXXX_``.
        raw_dir: The nnU-Net raw folder; default the ``nnUNet_raw`` environment variable.
        brats_grid: Write each case on BraTS's grid (:data:`BRATS_SHAPE`, :data:`BRATS_GEOMETRY`): the
            ``size``³ phantom (at most 155; 155 gives a brain of about 124 × 112 × 136 mm and tumour
            radii of 19–34 mm) in the centre of a zero 240 × 240 × 155 volume.

    Returns:
        The absolute path of the new dataset folder.

    Raises:
        ValueError: For an invalid argument, an ID already in use or an unset ``nnUNet_raw``;
            nothing is written then.
    """
    raw_dir, folder_name = validate_arguments(dataset_id, num_cases, num_test_cases, size, seed, name, raw_dir)
    os.makedirs(raw_dir, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{folder_name}.partial-", dir=raw_dir)
    try:
        jobs = [("train", "Tr", i) for i in range(num_cases)] + [("test", "Ts", i) for i in range(num_test_cases)]
        for sub in {f"{kind}{split_dir}" for _, split_dir, _ in jobs for kind in ("images", "labels")}:
            os.makedirs(os.path.join(tmp, sub))
        width = max(3, len(str(max(num_cases, num_test_cases) - 1)))
        for split, split_dir, i in tqdm(jobs, desc=f"Writing {folder_name}", unit="case", disable=None):
            identifier = f"{name}_{'' if split == 'train' else 'test'}{i:0{width}d}"
            image, label = make_case(case_seed(seed, split, i), size)
            if brats_grid:
                image, label = embed(image, label, BRATS_SHAPE)
            _write_case(tmp, split_dir, identifier, image, label, BRATS_GEOMETRY if brats_grid else _GEOMETRY)
        generate_dataset_json(
            tmp, channel_names=dict(enumerate(BRATS_CHANNELS)), labels=dict(REGION_LABELS),
            num_training_cases=num_cases, file_ending=FILE_ENDING, regions_class_order=REGIONS_CLASS_ORDER,
            dataset_name=folder_name, license="CC0-1.0 (synthetic data)",
            description=f"Synthetic BraTS-like phantoms, {size}^3 voxels at 1 mm"
                        f"{' on the BraTS grid (240 x 240 x 155)' if brats_grid else ''}, seed {seed}.",
            converted_by="nnunetv2_mstkd.data.synthetic", numTest=num_test_cases,
            synthetic={"seed": seed, "size": size, "brats_grid": brats_grid},
        )
        # a run with the same ID may have finished meanwhile; never rename over or beside it
        validate_arguments(dataset_id, num_cases, num_test_cases, size, seed, name, raw_dir)
        final = os.path.join(raw_dir, folder_name)
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def main(argv: list[str] | None = None) -> None:
    """``mstkd_synth``: command-line wrapper of :func:`generate_dataset`."""
    parser = argparse.ArgumentParser(
        prog="mstkd_synth",
        description="Write a synthetic BraTS-like nnU-Net raw dataset (T1, T1ce, T2, FLAIR; WT/TC/ET regions) "
                    "to $nnUNet_raw/DatasetXXX_NAME.")
    parser.add_argument("-d", "--dataset_id", type=int, required=True, help="dataset ID, 1-999, not yet in use")
    parser.add_argument("--cases", type=int, default=24, help="training cases (default 24)")
    parser.add_argument("--test-cases", type=int, default=0, help="test cases in imagesTs/labelsTs (default 0)")
    parser.add_argument("--size", type=int, default=64,
                        help=f"edge length of each cubic case in 1 mm voxels, at least {MIN_SIZE} (default 64)")
    parser.add_argument("--seed", type=int, default=0, help="base random seed, >= 0 (default 0)")
    parser.add_argument("--brats-grid", action="store_true",
                        help="write each case on BraTS's 240 x 240 x 155 grid at 1 mm with BraTS's origin and "
                             "direction, the phantom (--size, at most 155; use 155) centred, zero around it")
    parser.add_argument("-n", "--name", default="SynthBraTS",
                        help="dataset name after DatasetXXX_ (default SynthBraTS)")
    args = parser.parse_args(argv)
    try:
        if args.brats_grid and args.size > min(BRATS_SHAPE):
            raise ValueError(f"--size {args.size} does not fit BraTS's grid; use at most {min(BRATS_SHAPE)}.")
        validate_arguments(args.dataset_id, args.cases, args.test_cases, args.size, args.seed, args.name, None)
    except ValueError as e:
        parser.error(str(e))
    folder = generate_dataset(args.dataset_id, args.cases, args.test_cases, args.size, args.seed, args.name,
                              brats_grid=args.brats_grid)
    print(folder)
