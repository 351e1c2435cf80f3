import numpy as np

from bench.data import synthetic_nuclei
from bench.data.suite import get_suite
from bench.data.synthetic_nuclei import NucleiParams, generate_nuclei


def test_same_seed_gives_identical_images_and_masks():
    a = generate_nuclei(7, np.arange(6))
    b = generate_nuclei(7, np.arange(6))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_other_seed_gives_different_data():
    a = generate_nuclei(7, np.arange(6))
    b = generate_nuclei(8, np.arange(6))
    assert not np.array_equal(a[0], b[0])
    assert not np.array_equal(a[1], b[1])


def test_suite_split_identical_across_generations_and_differs_with_seed():
    suite = get_suite("synthetic-nuclei")
    first = synthetic_nuclei.SOURCE.load(suite.request, "calibration")  # the source itself: no process cache between
    again = synthetic_nuclei.SOURCE.load(get_suite("synthetic-nuclei").request, "calibration")
    assert first is not again
    assert np.array_equal(first.images, again.images) and np.array_equal(first.masks, again.masks)
    loaded = suite.load("calibration")  # what a run gets: the same split
    assert np.array_equal(loaded.images, first.images) and np.array_equal(loaded.masks, first.masks)
    other = synthetic_nuclei.SOURCE.load(suite.with_seed(suite.seed + 1).request, "calibration")
    assert not np.array_equal(first.images, other.images)


def test_images_look_like_nuclei():
    images, masks = generate_nuclei(3, np.arange(8), NucleiParams())
    assert images.shape == (8, 1, 128, 128) and images.dtype == np.float32
    assert set(np.unique(masks)) == {0, 1}
    assert 0.03 < masks.mean() < 0.4  # nuclei cover a plausible fraction of the field
    assert images[:, 0][masks == 1].mean() > 3 * images[:, 0][masks == 0].mean()  # bright on dark
    assert 0.0 <= images.min() and images.max() <= 1.0
