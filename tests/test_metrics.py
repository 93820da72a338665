"""Dice and HD95: hand-computed cases, empty-mask conventions, and agreement with medpy."""
import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from nnunetv2_mstkd.evaluation.metrics import dice, hd95, region_metrics, volume_diagonal


def _cube(shape, corner, size):
    m = np.zeros(shape, dtype=bool)
    m[tuple(slice(c, c + s) for c, s in zip(corner, size))] = True
    return m


def test_brats_grid_diagonal_is_373_13_mm():
    assert volume_diagonal((240, 240, 155), (1, 1, 1)) == pytest.approx(373.13, abs=0.005)
    assert volume_diagonal((10, 20), (2.0, 0.5)) == pytest.approx(np.sqrt(20**2 + 10**2))


def test_exactly_one_empty_gives_dice_0_and_the_diagonal():
    ref = np.zeros((240, 240, 155), dtype=bool)
    ref[120, 120, 77] = True
    empty = np.zeros_like(ref)
    assert dice(empty, ref) == 0.0
    assert hd95(empty, ref, (1, 1, 1)) == pytest.approx(373.13, abs=0.005)
    assert hd95(ref, empty, (1, 1, 1)) == pytest.approx(373.13, abs=0.005)
    # Anisotropic grid: sqrt((4*2)^2 + (5*1)^2 + (6*3)^2) = sqrt(413).
    small = np.zeros((4, 5, 6), dtype=bool)
    small[0, 0, 0] = True
    assert hd95(small, np.zeros_like(small), (2, 1, 3)) == pytest.approx(np.sqrt(413))


def test_both_empty_gives_dice_1_and_hd95_0():
    z = np.zeros((7, 8, 9), dtype=bool)
    assert dice(z, z) == 1.0
    assert hd95(z, z, (1, 2, 3)) == 0.0


def test_identical_masks():
    m = _cube((12, 12, 12), (2, 3, 4), (5, 4, 3))
    assert dice(m, m) == 1.0
    assert hd95(m, m, (0.5, 1, 2)) == 0.0


def test_single_voxel_offset_anisotropic():
    a = np.zeros((10, 10, 10), dtype=bool)
    b = np.zeros_like(a)
    a[2, 5, 1] = True
    b[5, 5, 5] = True
    # Offsets 3 and 4 voxels at 1.2 and 0.9 mm: sqrt(3.6^2 + 3.6^2).
    assert hd95(a, b, (1.2, 7.0, 0.9)) == pytest.approx(np.sqrt(2 * 3.6**2))
    assert dice(a, b) == 0.0


def test_two_cubes_apart_along_the_coarse_axis():
    # 3x3x3 cubes at z = 0..2 and 5..7, spacing 2.5 mm along z. Surfaces: 26 voxels each
    # (layers of 9, 8, 9). Distances to the facing layer: 3, 4, 5 slices; the 95th percentile of
    # the 52 values (18 x 7.5, 16 x 10, 18 x 12.5 mm) is 12.5 mm.
    a = _cube((9, 9, 12), (3, 3, 0), (3, 3, 3))
    b = _cube((9, 9, 12), (3, 3, 5), (3, 3, 3))
    assert hd95(a, b, (1.0, 1.0, 2.5)) == pytest.approx(12.5)
    assert hd95(b, a, (1.0, 1.0, 2.5)) == pytest.approx(12.5)


def test_percentile_is_over_the_union_of_both_directions():
    # A 1-voxel-wide line (every voxel is surface). pred has 2 extra voxels at 1.5 and 3.0 mm.
    # Union of distances: 20 zeros, 1.5, 3.0 -> position 0.95 * 21 = 19.95 -> 0.95 * 1.5 = 1.425.
    # (The larger of the two directed 95th percentiles would be 2.175 mm.)
    ref = np.zeros((1, 14), dtype=bool)
    ref[0, :10] = True
    pred = np.zeros_like(ref)
    pred[0, :12] = True
    assert hd95(pred, ref, (1.0, 1.5)) == pytest.approx(1.425)
    assert dice(pred, ref) == pytest.approx(20 / 22)


def test_dice_by_hand():
    a = _cube((10, 10), (0, 0), (4, 5))  # 20 voxels
    b = _cube((10, 10), (2, 0), (4, 5))  # 20 voxels, overlap 2 x 5 = 10
    assert dice(a, b) == pytest.approx(2 * 10 / 40)


def test_outlier_voxel_does_not_move_hd95():
    ref = _cube((30, 12, 12), (2, 2, 2), (4, 4, 4))
    pred = ref.copy()
    pred[28, 5, 5] = True  # 1 of 113 surface distances: below the 95th percentile
    assert hd95(pred, ref, (1, 1, 1)) == 0.0


def test_region_metrics_by_hand():
    # Labels 1 edema, 2 necrosis, 3 enhancing on a 1 x 10 strip.
    ref = np.array([[0, 1, 1, 2, 2, 3, 3, 0, 0, 0]])
    pred = np.array([[0, 1, 1, 1, 2, 2, 2, 0, 0, 0]])
    out = region_metrics(pred, ref, (1.0, 1.0))
    assert list(out) == ["WT", "TC", "ET"]
    assert out["WT"] == {"Dice": 1.0, "HD95": 0.0}
    assert out["TC"]["Dice"] == pytest.approx(2 * 3 / (3 + 4))  # pred {4,5,6}, ref {3,4,5,6}
    assert out["ET"]["Dice"] == 0.0
    assert out["ET"]["HD95"] == pytest.approx(np.sqrt(1 + 100))  # ET missing from pred: the diagonal
    custom = region_metrics(pred, ref, (1.0, 1.0), regions={"edema": 1})
    assert custom["edema"]["Dice"] == pytest.approx(2 * 2 / (3 + 2))


@pytest.mark.parametrize("pred, ref, spacing, error", [
    (np.zeros((3, 3), dtype=np.uint8), np.zeros((3, 3), dtype=bool), (1, 1), TypeError),
    (np.zeros((3, 3), dtype=bool), np.zeros((3, 4), dtype=bool), (1, 1), ValueError),
    (np.ones((3, 3), dtype=bool), np.ones((3, 3), dtype=bool), (1, 1, 1), ValueError),
    (np.ones((3, 3), dtype=bool), np.ones((3, 3), dtype=bool), (1, -1), ValueError),
])
def test_bad_inputs_are_refused(pred, ref, spacing, error):
    with pytest.raises(error):
        hd95(pred, ref, spacing)


def test_region_metrics_refuses_mismatched_grids():
    with pytest.raises(ValueError, match="resample"):
        region_metrics(np.zeros((4, 4, 4), int), np.zeros((4, 4, 5), int), (1, 1, 1))


def test_agrees_with_medpy_on_random_blobs():
    binary = pytest.importorskip("medpy.metric.binary")
    rng = np.random.default_rng(42)
    for i in range(20):
        shape = (24, 28, 20) if i % 2 else (40, 36)
        spacing = tuple(rng.uniform(0.5, 3.0, size=len(shape)))
        pred = gaussian_filter(rng.random(shape), 2.0) > 0.52
        ref = gaussian_filter(rng.random(shape), 2.0) > 0.52
        assert pred.any() and ref.any()
        assert hd95(pred, ref, spacing) == pytest.approx(binary.hd95(pred, ref, voxelspacing=spacing), rel=1e-9)
        assert dice(pred, ref) == pytest.approx(binary.dc(pred, ref), rel=1e-12)
