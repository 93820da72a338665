"""Count NaN and Inf voxels in an image file, as stored on disk.

ITK's NIfTI reader (and so SimpleITK and nnU-Net's ``SimpleITKIO``) silently turns NaN
and Inf into 0, so an image with a region of NaN would be segmented as if that region
were dark tissue. NIfTI files are therefore read with nibabel, which keeps the stored
values; files stored as integers cannot hold either and are not read. Other formats
are read with SimpleITK, which keeps NaN and Inf for them.
"""
from __future__ import annotations

import nibabel
import numpy as np
import SimpleITK as sitk


def count_nonfinite(path: str) -> tuple[int, int]:
    """``(number of NaN voxels, number of Inf voxels)`` stored in the image file at ``path``."""
    if path.endswith((".nii.gz", ".nii")):
        image = nibabel.load(path)
        if image.header.get_data_dtype().kind != "f":
            return 0, 0
        data = np.asanyarray(image.dataobj)
    else:
        data = sitk.GetArrayViewFromImage(sitk.ReadImage(path))
        if data.dtype.kind != "f":
            return 0, 0
    return int(np.isnan(data).sum()), int(np.isinf(data).sum())
