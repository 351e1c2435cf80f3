import math

import numpy as np
import pytest
from scipy import ndimage

from bench.errors import UsageError
from bench.measure.boundary import bf_tolerance, boundary_f1, class_boundaries, mean_bf_score
from tests.helpers import SHARED_DATA

CROSS = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], bool)


def square(shift: int = 0, label: int = 1, size: int = 8) -> np.ndarray:
    """Background 0 with a 3x3 square of `label` at rows 2..4, columns 2+shift..4+shift."""
    image = np.zeros((size, size), np.int64)
    image[2:5, 2 + shift : 5 + shift] = label
    return image


def matlab_bf(pred: np.ndarray, truth: np.ndarray, theta: float) -> tuple[float, float, float]:
    """MATLAB's bwbfscore2 for one pair of 2-D masks, literally: zero-padded erosion by the cross, all
    pairwise squared distances < theta^2. Our empty-side rules: both empty NaN, one empty 0."""

    def edge(mask: np.ndarray) -> np.ndarray:
        return np.argwhere(mask & ~ndimage.binary_erosion(mask, CROSS, border_value=0))

    p, t = edge(pred), edge(truth)
    if len(p) == 0 and len(t) == 0:
        return math.nan, math.nan, math.nan
    if len(p) == 0 or len(t) == 0:
        return 0.0, 0.0, 0.0
    close = ((p[:, None, :] - t[None, :, :]) ** 2).sum(-1) < theta**2
    precision, recall = close.any(1).mean(), close.any(0).mean()
    score = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return score, precision, recall


def test_tolerance_is_three_quarters_of_a_percent_of_the_diagonal():
    assert bf_tolerance(300, 400) == pytest.approx(3.75)  # diagonal sqrt(300^2 + 400^2) = 500; 0.0075 * 500
    assert boundary_f1(np.zeros((300, 400), int), np.zeros((300, 400), int), 2).tolerance == pytest.approx(3.75)


def test_default_tolerance_decides_on_a_400x300_image():
    # class 1 fills rows 0..149 of a 300x400 image (theta 3.75); the prediction moves its lower edge down.
    truth = np.zeros((300, 400), int)
    truth[:150] = 1
    pred = np.zeros_like(truth)
    pred[:153] = 1  # 3 rows: 3 < 3.75, every boundary pixel has a partner
    assert boundary_f1(pred, truth, 2).score[0, 1] == pytest.approx(1.0)
    pred[:154] = 1  # 4 rows: 4 >= 3.75
    # predicted boundary: rows 0 and 153 (400 each) + columns 0 and 399 over rows 1..152 (2 * 152) = 1104;
    # matched: row 0 (400) + the side columns (304), none of row 153 -> precision 704 / 1104.
    # true boundary: rows 0 and 149 (800) + side columns over rows 1..148 (296) = 1096; matched: row 0,
    # the sides, and the 4 + 4 pixels of row 149 within 3.75 of a side column -> recall 704 / 1096.
    # BF = 2PR / (P + R) = 2 * 704 / (1104 + 1096) = 0.64
    bf = boundary_f1(pred, truth, 2)
    assert bf.precision[0, 1] == pytest.approx(704 / 1104) and bf.recall[0, 1] == pytest.approx(704 / 1096)
    assert bf.score[0, 1] == pytest.approx(0.64)


def test_square_shifted_by_one_pixel():
    truth, pred = square(0), square(1)
    # class 1: each 3x3 square has an 8-pixel boundary ring (the centre survives erosion). With only exact
    # matches the rings share (2,3), (2,4), (4,3), (4,4): precision = recall = 4/8, BF = 0.5.
    # class 0: its boundary is the 28 image-border pixels plus the 12 pixels 4-adjacent to the square:
    # 40 per side; exact matches are the border and (1,3), (1,4), (5,3), (5,4): 32/40 = 0.8 both ways.
    exact = boundary_f1(pred, truth, 2, tolerance=0.5)
    assert exact.score[0].tolist() == pytest.approx([0.8, 0.5])
    assert exact.precision[0, 1] == exact.recall[0, 1] == pytest.approx(0.5)
    assert exact.per_image()[0] == pytest.approx((0.8 + 0.5) / 2)
    # the match is strict, d^2 < theta^2 as in MATLAB: at theta = 1 a one-pixel shift still misses
    assert boundary_f1(pred, truth, 2, tolerance=1.0).score[0].tolist() == pytest.approx([0.8, 0.5])
    # at theta = 1.5 every boundary pixel has a partner at distance 1
    assert boundary_f1(pred, truth, 2, tolerance=1.5).score[0].tolist() == pytest.approx([1.0, 1.0])


def test_one_sided_class_scores_zero_and_absent_class_is_left_out():
    truth, pred = square(0, label=1), square(0, label=2)
    bf = boundary_f1(pred, truth, 4, tolerance=1.5)
    # class 0 identical -> 1; class 1 only in truth -> 0; class 2 only in prediction -> 0; class 3 nowhere -> NaN
    assert bf.score[0, :3].tolist() == [1.0, 0.0, 0.0] and math.isnan(bf.score[0, 3])
    assert bf.per_image()[0] == pytest.approx(1 / 3)  # (1 + 0 + 0) / 3, class 3 excluded
    assert bf.recall[0, 1] == 0.0 and bf.precision[0, 2] == 0.0


def test_void_pixels_belong_to_neither_mask():
    truth = square(0)
    truth[:, 6:] = 255  # void columns
    a, b = square(0), square(0)
    b[:, 6:] = 2  # differs only where the truth is void
    assert np.array_equal(boundary_f1(a, truth, 3, 255).score, boundary_f1(b, truth, 3, 255).score, equal_nan=True)
    assert math.isnan(boundary_f1(b, truth, 3, 255).score[0, 2])  # class 2 lies only on void: absent
    labels = np.where(truth == 255, -1, truth)[None]
    edges = class_boundaries(labels)
    assert not edges[labels < 0].any()  # no boundary pixel on void
    assert edges[0, :, 5].all()  # background pixels next to void are boundary, as in MATLAB's masking


def test_boundaries_equal_matlab_erosion_per_class():
    rng = np.random.default_rng(1)
    labels = ndimage.zoom(rng.integers(-1, 4, (3, 6, 5)), (1, 3, 3), order=0)
    edges = class_boundaries(labels)
    for c in range(4):
        mask = labels == c
        eroded = ndimage.binary_erosion(mask, CROSS[None] & np.array([0, 1, 0], bool)[:, None, None], border_value=0)
        assert np.array_equal(edges & mask, mask & ~eroded), c


@pytest.mark.parametrize("tolerance", [None, 0.9, 1.0, 2.0, 2.5, 6.3])
def test_matches_the_literal_matlab_computation(tolerance):
    rng = np.random.default_rng(7)
    truth = ndimage.zoom(rng.integers(0, 5, (4, 7, 6)), (1, 4, 4), order=0)  # 4 images 28x24, void label 4
    pred = truth.copy()
    noise = ndimage.zoom(rng.random((4, 14, 12)), (1, 2, 2), order=0) < 0.25
    pred[noise] = rng.integers(0, 4, noise.sum())
    truth[0][truth[0] == 3] = 0  # class 3 only predicted in image 0 -> 0
    pred[1][pred[1] == 2] = 1  # class 2 only true in image 1 -> 0
    # 5 classes with 4 as the void label: class 4 has no pixel on either side -> NaN everywhere
    bf = boundary_f1(pred, truth, 5, ignore_label=4, tolerance=tolerance)
    theta = bf_tolerance(28, 24) if tolerance is None else tolerance
    assert bf.score[0, 3] == 0 and bf.score[1, 2] == 0 and np.isnan(bf.score[:, 4]).all()
    for i in range(4):
        valid = truth[i] != 4
        for c in range(5):
            expected = matlab_bf((pred[i] == c) & valid, (truth[i] == c) & valid, theta)
            got = (bf.score[i, c], bf.precision[i, c], bf.recall[i, c])
            assert got == pytest.approx(expected, nan_ok=True), (i, c)


def test_dataset_mean_is_over_images_of_the_image_means():
    scores = np.array([[1.0, np.nan], [0.5, 0.0], [np.nan, np.nan]])
    # image means: 1.0 and (0.5 + 0) / 2 = 0.25; the third image has no class and is left out
    assert mean_bf_score(scores) == pytest.approx((1.0 + 0.25) / 2)
    # not the mean of class means, (0.75 + 0) / 2 = 0.375
    assert math.isnan(mean_bf_score(np.full((2, 3), np.nan)))


def test_bad_input_is_a_usage_error():
    with pytest.raises(UsageError, match="shape"):
        boundary_f1(np.zeros((2, 4, 4)), np.zeros((2, 4, 5)), 2)
    with pytest.raises(UsageError, match="tolerance"):
        boundary_f1(np.zeros((4, 4)), np.zeros((4, 4)), 2, tolerance=0)


def test_camvid_truth_against_itself_and_a_shift():
    from PIL import Image

    files = sorted((SHARED_DATA / "camvid-mini" / "valannot").glob("*.png"))[:2]
    if not files:
        pytest.skip("camvid-mini data not available")
    truth = np.stack([np.array(Image.open(f)) for f in files]).astype(np.int64)
    same = boundary_f1(truth, truth, 11, ignore_label=11)
    assert same.tolerance == pytest.approx(4.5)  # 0.0075 * sqrt(360^2 + 480^2) = 0.0075 * 600
    present = np.isfinite(same.score)
    assert present.any() and (same.score[present] == 1.0).all()
    moved = boundary_f1(np.roll(truth, 8, axis=2), truth, 11, ignore_label=11)
    assert moved.mean() < same.mean()
