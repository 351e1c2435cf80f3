import numpy as np

from bench.data.request import SPLITS as ALL_SPLITS
from bench.data.suite import get_suite
from bench.data.synthetic_scenes import CLASSES, SceneParams, generate_scene, generate_scenes

SPLITS = ALL_SPLITS[:3]  # train, calibration, evaluation (the tuning split: test_tuning_split.py)


def test_same_seed_and_index_give_identical_scenes_alone_or_in_a_batch():
    images, masks = generate_scenes(5, np.array([3, 8]))
    image, mask = generate_scene(5, 8)
    assert np.array_equal(images[1], image) and np.array_equal(masks[1], mask)
    again = generate_scenes(5, np.array([3, 8]))
    assert np.array_equal(images, again[0]) and np.array_equal(masks, again[1])
    other = generate_scenes(6, np.array([3, 8]))
    assert not np.array_equal(images, other[0]) and not np.array_equal(masks, other[1])


def test_every_class_appears_within_a_few_scenes_and_images_are_valid():
    images, masks = generate_scenes(0, np.arange(6))
    assert len(CLASSES) >= 5
    assert set(np.unique(masks)) == set(range(len(CLASSES)))
    assert images.shape == (6, 3, 128, 128) and images.dtype == np.float32 and masks.dtype == np.int64
    assert 0.0 <= images.min() and images.max() <= 1.0
    for m in masks:  # each scene has sky, road and at least one car
        assert {CLASSES.index("sky"), CLASSES.index("road"), CLASSES.index("car")} <= set(np.unique(m))


def test_image_is_not_a_flat_colouring_of_the_mask():
    """Texture, lighting and noise: pixels of one class vary, and the same class differs between scenes."""
    images, masks = generate_scenes(0, np.arange(4))
    road = CLASSES.index("road")
    spreads = [images[i][:, masks[i] == road].std(axis=1).mean() for i in range(4)]
    assert min(spreads) > 0.02
    means = [images[i][:, masks[i] == road].mean() for i in range(4)]
    assert max(means) - min(means) > 0.03


def test_params_set_the_size_and_the_suite_file_matches_the_generator():
    image, mask = generate_scene(1, 0, SceneParams(height=64, width=96))
    assert image.shape == (3, 64, 96) and mask.shape == (64, 96)
    suite = get_suite("synthetic-scenes")
    assert suite.num_classes >= 5 and suite.in_channels == 3 and suite.input_size == (128, 128)
    assert [suite.classes[c] for c in suite.gradcam_classes] == ["car", "tree"]
    evaluation = suite.load("evaluation")
    assert len(evaluation) == suite.split_sizes["evaluation"]
    sizes = {s: suite.split_sizes[s] for s in SPLITS}
    assert sum(sizes.values()) == 416 and suite.split_sizes["tuning"] == 32
