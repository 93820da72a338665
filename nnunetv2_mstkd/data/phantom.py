"""One synthetic BraTS-like case: four MRI channels and a tumour label map, in pure numpy.

The phantom is built so that each modality carries the evidence it carries in
real BraTS data, and a missing modality therefore costs accuracy:

* an ellipsoidal brain (white matter, a grey-matter cortex, a thin CSF layer at
  the surface, two ventricles and thin curved vessels) with **exactly zero**
  background outside it;
* 1–3 tumours (1–2 typical) of random position, size, orientation and lumpy
  shape, each with a necrotic core inside an enhancing rim of irregular
  thickness inside oedema. About a quarter have no necrotic core, about one in
  seven has little enhancement (most of its core is then non-enhancing, label 2);
* a per-case random jitter of every tissue's intensity, smooth texture, slight
  blur (partial volume), a smooth multiplicative bias field, Rician noise and a
  random per-channel intensity scale (so nnU-Net's z-scoring matters).

Mean intensities per tissue before bias, noise and scaling (white matter T1 = 1):

====================  =====  ====  ====  ====  =====
tissue                label  T1    T1ce  T2    FLAIR
====================  =====  ====  ====  ====  =====
white matter          0      1.00  1.00  0.55  0.65
grey matter (cortex)  0      0.75  0.78  0.80  0.85
CSF (ventricles)      0      0.30  0.30  1.80  0.25
oedema                1      0.82  0.84  1.35  1.50
necrosis / non-enh.   2      0.60  0.45  1.70  1.40
enhancing tumour      3      0.85  1.75  1.15  1.45
vessel                0      0.90  1.60  0.40  0.50
====================  =====  ====  ====  ====  =====

What follows from the table: the enhancing rim stands out only in T1ce (ET is
hard without it), where vessels are bright too (they are dark in T2 and FLAIR,
which tell them apart); oedema is bright only in T2 and FLAIR (WT needs one of
them); the core is seen in T1ce (bright rim, dark necrosis) or T2 (necrosis
brighter than oedema, rim darker), while in FLAIR it barely differs from
oedema; T2 alone confuses CSF with necrosis and oedema, which FLAIR (dark CSF)
resolves; T1 shows the tumour only slightly darker than white matter.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

#: Smallest edge length in voxels (1 mm each): below it a tumour's rim and core are only a voxel or two thick.
MIN_SIZE = 24

#: Tissue names in the row order of :data:`TISSUE_MEANS`.
TISSUES: tuple[str, ...] = ("white matter", "grey matter", "csf", "oedema", "necrosis", "enhancing", "vessel")

#: Mean intensity of each tissue (rows, :data:`TISSUES`) in each channel (T1, T1ce, T2, FLAIR).
TISSUE_MEANS = np.array([
    [1.00, 1.00, 0.55, 0.65],
    [0.75, 0.78, 0.80, 0.85],
    [0.30, 0.30, 1.80, 0.25],
    [0.82, 0.84, 1.35, 1.50],
    [0.60, 0.45, 1.70, 1.40],
    [0.85, 1.75, 1.15, 1.45],
    [0.90, 1.60, 0.40, 0.50],
])

#: Label value of each tissue (background tissues are 0).
TISSUE_LABELS = np.array([0, 0, 0, 1, 2, 3, 0], dtype=np.uint8)

# Nesting order when tumours overlap: the innermost compartment wins (necrosis > enhancing > oedema).
_RANK_OF_LABEL = np.array([0, 1, 3, 2])
_LABEL_OF_RANK = np.array([0, 1, 3, 2], dtype=np.uint8)


def smooth_field(rng: np.random.Generator, size: int, coarse: int = 5) -> np.ndarray:
    """A smooth random field of shape ``(size,) * 3`` with zero mean and unit standard deviation.

    Gaussian-weighted interpolation of a ``coarse**3`` grid of standard-normal values,
    separable in the three axes, so it costs a few milliseconds even at 128³.
    """
    grid = rng.standard_normal((coarse,) * 3).astype(np.float32)
    pos = (np.arange(size) + 0.5) / size * coarse - 0.5
    w = np.exp(-0.5 * ((pos[:, None] - np.arange(coarse)[None]) / 0.8) ** 2)
    w = (w / w.sum(1, keepdims=True)).astype(np.float32)
    field = np.einsum("ia,jb,kc,abc->ijk", w, w, w, grid, optimize=True)
    sample = field[::2, ::2, ::2]  # the field is smooth: every 8th voxel gives its mean and spread
    return (field - sample.mean()) / (sample.std() + 1e-6)


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    return q * np.sign(np.diag(r))


def _ellipsoid_distance(coords: np.ndarray, centre: np.ndarray, radii: np.ndarray,
                        rotation: np.ndarray | None = None) -> np.ndarray:
    """Normalised distance: < 1 inside the (rotated) ellipsoid, 1 on its surface."""
    offset = coords - centre.astype(np.float32)
    if rotation is not None:
        offset = offset @ rotation.astype(np.float32)
    return np.sqrt(((offset / radii.astype(np.float32)) ** 2).sum(-1))


def _brain_tissues(rng: np.random.Generator, coords: np.ndarray, size: int) -> tuple[np.ndarray, tuple]:
    """Tissue index map (rows of :data:`TISSUES`, -1 outside the brain) and the brain's centre and radii."""
    centre = (size - 1) / 2 + rng.uniform(-0.015, 0.015, 3) * size
    radii = size * np.array([0.40, 0.36, 0.44]) * rng.uniform(0.94, 1.02, 3)
    dist = _ellipsoid_distance(coords, centre, radii)
    folds = 0.04 * smooth_field(rng, size, coarse=7)
    tissue = np.full((size,) * 3, -1, dtype=np.int8)
    tissue[dist < 1] = 0
    tissue[(dist < 1) & (dist + folds > 0.86)] = 1
    tissue[(dist < 1) & (dist + 0.5 * folds > 0.95)] = 2
    for side in (-1, 1):
        v_centre = centre + size * np.array([0.02, 0.0, side * 0.08])
        v_radii = size * np.array([0.07, 0.16, 0.045]) * rng.uniform(0.85, 1.15, 3)
        tissue[_ellipsoid_distance(coords, v_centre, v_radii) < 1] = 2
    # vessels: where the zero surfaces of two smooth fields cross, i.e. along thin curved tubes
    vessel = (np.abs(smooth_field(rng, size, coarse=7)) < 0.1) & (np.abs(smooth_field(rng, size, coarse=7)) < 0.1)
    tissue[vessel & (dist < 0.85)] = 6
    return tissue, (centre, radii)


def _tumour_labels(rng: np.random.Generator, coords: np.ndarray, size: int, brain: tuple) -> np.ndarray:
    """Label map (0–3) of one tumour: necrosis inside an irregular enhancing rim inside lumpy oedema."""
    b_centre, b_radii = brain
    direction = rng.standard_normal(3)
    direction /= np.linalg.norm(direction)
    centre = b_centre + b_radii * direction * 0.55 * rng.uniform() ** (1 / 3)
    radii = size * rng.uniform(0.12, 0.22, 3)
    rotation = _random_rotation(rng)
    core_centre = centre + radii * rng.uniform(-0.12, 0.12, 3)
    t_core = rng.uniform(0.5, 0.8)
    rim_frac = rng.uniform(0.25, 0.5)
    has_necrosis = rng.uniform() < 0.75
    little_enhancement = rng.uniform() < 0.15

    d_oedema = _ellipsoid_distance(coords, centre, radii, rotation) + 0.22 * smooth_field(rng, size, coarse=6)
    d_core = _ellipsoid_distance(coords, core_centre, radii, rotation) + 0.10 * smooth_field(rng, size, coarse=6)
    # irregular rim, but at least about a voxel thick so the core stays enclosed
    rim = np.maximum(t_core * rim_frac * (1 + 0.6 * smooth_field(rng, size, coarse=6)), 1.0 / radii.min())
    core = d_core < t_core
    enhancing = core & ~(d_core < t_core - rim) if has_necrosis else core.copy()
    if little_enhancement:  # enhancement in small patches only (about 4 voxels wide)
        enhancing &= smooth_field(rng, size, coarse=max(6, size // 4)) > 0.5
    labels = np.zeros((size,) * 3, dtype=np.uint8)
    labels[d_oedema < 1] = 1
    labels[core] = 2
    labels[enhancing] = 3
    return labels


def _render_channel(rng: np.random.Generator, tissue: np.ndarray, means: np.ndarray, shared_bias: np.ndarray,
                    noise_sigma: float) -> np.ndarray:
    """One channel: tissue means, texture, partial-volume blur, bias field, Rician noise (unscaled)."""
    size = tissue.shape[0]
    inside = tissue >= 0
    img = np.where(inside, means[np.maximum(tissue, 0)], 0.0).astype(np.float32)
    img *= 1 + 0.04 * smooth_field(rng, size, coarse=9)
    img = ndimage.gaussian_filter(img, sigma=0.5)
    img *= np.exp(0.12 * shared_bias + 0.06 * smooth_field(rng, size, coarse=3))
    real = img + noise_sigma * rng.standard_normal(img.shape, dtype=np.float32)
    imag = noise_sigma * rng.standard_normal(img.shape, dtype=np.float32)
    return np.sqrt(real ** 2 + imag ** 2)


def make_case(rng_or_seed: np.random.Generator | int | tuple[int, ...],
              size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Generate one synthetic BraTS-like case.

    Args:
        rng_or_seed: A numpy ``Generator`` (consumed), or a seed (an int or a tuple of ints,
            passed to ``np.random.default_rng``). The same seed always gives identical arrays.
        size: Edge length of the cubic volume in voxels (1 mm isotropic), at least :data:`MIN_SIZE`.

    Returns:
        ``image`` of shape ``(4, size, size, size)``, float32, channels T1, T1ce, T2, FLAIR,
        strictly positive inside the brain and exactly 0 outside; and ``label`` of shape
        ``(size, size, size)``, uint8, 0 background, 1 oedema, 2 necrosis / non-enhancing core,
        3 enhancing tumour (never all 0).

    Raises:
        ValueError: If ``size`` is not an integer of at least :data:`MIN_SIZE`.
    """
    image, label, _ = make_case_with_tissues(rng_or_seed, size)
    return image, label


def make_case_with_tissues(rng_or_seed: np.random.Generator | int | tuple[int, ...],
                           size: int = 64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Like :func:`make_case`, and also the tissue map behind the image.

    Returns:
        ``image``, ``label`` as :func:`make_case` returns them (the same arrays for the same
        seed), and ``tissue`` of shape ``(size, size, size)``, int8: the row of
        :data:`TISSUES` of each voxel, -1 outside the brain.
    """
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < MIN_SIZE:
        raise ValueError(f"Case size must be an integer of at least {MIN_SIZE} voxels (got {size!r}); smaller "
                         f"volumes cannot hold a tumour with oedema, rim and core. Use --size {MIN_SIZE} or more.")
    size = int(size)
    rng = rng_or_seed if isinstance(rng_or_seed, np.random.Generator) else np.random.default_rng(rng_or_seed)
    coords = np.stack(np.meshgrid(*(np.arange(size, dtype=np.float32),) * 3, indexing="ij"), -1)
    tissue, brain = _brain_tissues(rng, coords, size)
    inside = tissue >= 0

    rank = np.zeros(tissue.shape, dtype=np.int64)
    num_tumours = rng.choice([1, 2, 3], p=[0.6, 0.32, 0.08])
    for _ in range(num_tumours):
        rank = np.maximum(rank, _RANK_OF_LABEL[_tumour_labels(rng, coords, size, brain)])
    label = np.where(inside, _LABEL_OF_RANK[rank], 0).astype(np.uint8)
    while not label.any():  # a tumour drawn wholly outside the brain; draw again (still deterministic)
        label = np.where(inside, _tumour_labels(rng, coords, size, brain), 0).astype(np.uint8)
    tissue[label > 0] = label[label > 0] + 2  # label 1, 2, 3 -> tissue rows 3, 4, 5

    means = TISSUE_MEANS * rng.normal(1.0, 0.04, TISSUE_MEANS.shape)
    shared_bias = smooth_field(rng, size, coarse=3)
    noise_sigma = rng.uniform(0.03, 0.07)
    scales = 10 ** rng.uniform(1.5, 3.0, 4)
    image = np.zeros((4, *tissue.shape), dtype=np.float32)
    for c in range(4):
        channel = _render_channel(rng, tissue, means[:, c], shared_bias, noise_sigma) * scales[c]
        # exactly zero outside, strictly positive inside: nnU-Net's nonzero mask then equals the brain
        image[c] = np.where(inside, np.maximum(channel, 1e-3 * scales[c]), 0.0)
    return image, label, tissue
