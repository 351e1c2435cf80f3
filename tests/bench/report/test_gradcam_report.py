"""The Grad-CAM table (divergence beside the method's floor) and the montage's difference panel."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from bench.report.figures import ZERO_MAP, gradcam_montage, montage_title
from bench.report.tables import NEGLIGIBLE_DIVERGENCE, gradcam_status_lines, gradcam_table, gradcam_verdict
from bench.results.columns import column


def _rows() -> pd.DataFrame:
    base = {"suite": "camvid", "model": "m", "precision": "int8", "gradcam_layer": "aspp", "status": "ok"}
    return pd.DataFrame(
        [
            {
                **base,
                "backend": "torch-eager",
                "precision": "fp32",
                "gradcam_method": "autograd",
                "gradcam_pearson": 1.0,
                "gradcam_status": "ok",
            },
            {
                **base,
                "backend": "ort-qdq-int8",
                "gradcam_method": "finite-difference",
                "gradcam_pearson": 0.81,
                "gradcam_method_pearson": 0.90,
                "gradcam_step_pearson": 0.95,
                "gradcam_floor_pearson": 0.90,
                "gradcam_within_noise": True,
                "gradcam_status": "ok",
            },
            {
                **base,
                "backend": "torchao-pt2e-int8",
                "gradcam_method": "finite-difference",
                "gradcam_pearson": 0.60,
                "gradcam_floor_pearson": 0.97,
                "gradcam_within_noise": False,
                "gradcam_status": "simulation: logits differ by 9.9",
            },
            {**base, "backend": "tensorrt", "gradcam_layer": None},
        ]
    )


def test_the_table_puts_each_divergence_beside_its_floor() -> None:
    table = gradcam_table(_rows())
    lines = table.splitlines()
    assert "floor" in lines[0] and "verdict" in lines[0] and len(lines) == 2 + 3  # tensorrt: not explained
    assert "0.810" in lines[3] and "0.900" in lines[3] and "within method noise" in lines[3]
    assert "beyond method noise" in lines[4] and "simulation" in lines[4]
    assert gradcam_status_lines(_rows()) == ["camvid / m / torchao-pt2e-int8 int8: simulation: logits differ by 9.9"]
    flagged = _rows().assign(**{"gradcam_status@fakequant": [None, "simulation: 2.1% off", None, None]})
    assert "camvid / m / ort-qdq-int8 int8 (fake-quant): simulation: 2.1% off" in gradcam_status_lines(flagged)
    assert "simulation" in gradcam_table(flagged).splitlines()[3]


EDGE = 1.0 - NEGLIGIBLE_DIVERGENCE  # Pearson 0.999


@pytest.mark.parametrize(
    ("pearson", "within_noise", "verdict"),
    [
        (EDGE + 1e-5, False, "negligible"),  # just inside: the maps agree to three places, whatever the floor
        (EDGE - 1e-5, False, "beyond method noise"),  # just outside: the floor decides again
        (EDGE - 1e-5, True, "within method noise"),
        (0.5, None, ""),  # no floor measured: no verdict
        (math.nan, True, ""),  # no valid maps
    ],
)
def test_a_divergence_below_the_smallest_pearson_change_that_counts_is_negligible(pearson, within_noise, verdict):
    assert NEGLIGIBLE_DIVERGENCE == column("gradcam_pearson").threshold == 0.001  # the rule, stated once
    assert gradcam_verdict({"gradcam_pearson": pearson, "gradcam_within_noise": within_noise}) == verdict


def test_the_default_runs_pearson_1_against_a_floor_of_1_reads_negligible() -> None:
    """The table printed 1.0000 beside a floor of 1.0000 and said "beyond method noise" (1e-5 vs 1e-6)."""
    rows = _rows().iloc[[1]].assign(gradcam_pearson=0.99999, gradcam_floor_pearson=0.999999, gradcam_within_noise=False)
    row = gradcam_table(rows).splitlines()[2]
    assert "1.0000" in row and "negligible" in row and "method noise" not in row


def test_no_explained_row_means_no_table() -> None:
    assert gradcam_table(pd.DataFrame([{"suite": "s", "status": "ok"}])) == ""


def test_the_montage_has_a_difference_panel_on_the_fp32_maps_scale() -> None:
    rng = np.random.default_rng(0)
    reference = rng.random((2, 2, 8, 8)).astype(np.float32)
    backend = reference + 0.1
    fig = gradcam_montage(
        rng.random((2, 3, 8, 8)),
        np.zeros((2, 8, 8), int),
        reference,
        backend,
        ["a", "b"],
        ((0, 0, 0), (255, 0, 0)),
        "title",
        "ort",
    )
    axes = fig.axes
    assert len(axes) == 2 * (2 + 3 * 2)
    difference = axes[4].images[0]  # row 0: image, overlay, fp32 a, ort a, difference a
    assert difference.get_cmap().name == "RdBu_r"
    low, high = difference.get_clim()
    assert low == -high and np.isclose(high, reference[0, 0].max())
    np.testing.assert_allclose(difference.get_array(), 0.1, atol=1e-6)


def test_all_zero_maps_are_named_on_their_panels_and_in_the_title_instead_of_pearson_nan() -> None:
    rng = np.random.default_rng(0)
    reference = rng.random((2, 1, 8, 8)).astype(np.float32)
    backend = np.zeros_like(reference)  # ReLU of a negative sum everywhere: no map at all
    args = ("s / unet / ort-qdq-int8 int8", "encoder4", "finite-difference", float("nan"), float("nan"))
    title = montage_title(*args, reference, backend, "ort-qdq-int8", None, "ok")
    assert "nan" not in title
    assert "Pearson undefined: every (image, class) pair has an all-zero map" in title
    assert "(fp32 0 of 2, ort-qdq-int8 2 of 2)" in title
    images, labels = rng.random((2, 3, 8, 8)), np.zeros((2, 8, 8), int)
    fig = gradcam_montage(images, labels, reference, backend, ["a"], ((0, 0, 0), (255, 0, 0)), title, "ort")
    texts = [[t.get_text() for t in ax.texts] for ax in fig.axes]
    zero_pair = "Pearson undefined:\nan all-zero map"
    assert texts[:5] == [[], [], [], [ZERO_MAP], [zero_pair]]  # image, overlay, fp32, ort, difference
    assert texts[5:] == texts[:5], "every image's row says it, not only the first (the only one with titles)"
    assert fig.get_suptitle() == title


def test_a_partly_zero_row_says_how_many_pairs_its_pearson_is_over() -> None:
    rng = np.random.default_rng(1)
    reference = rng.random((2, 2, 8, 8)).astype(np.float32)
    backend = reference.copy()
    backend[1, 0] = 0
    title = montage_title("cell", "layer", "fake-quant", 0.98765, 0.5, reference, backend, "ort", 0.99, "simulation")
    assert "Pearson 0.988, top-10% IoU 0.500 over 3 of 4 pairs" in title
    assert "(left out, an all-zero map: fp32 0 of 4, ort 1 of 4)" in title
    assert title.endswith("; method floor 0.990; simulation")
    assert "left out" not in montage_title("c", "l", "m", 0.9, 0.5, reference, reference, "ort")
