"""The report's charts: which cells are on the Pareto front of drift against latency, and on which drift."""

import numpy as np
import pandas as pd

from bench.report.charts import drift_chart, pareto_front


def test_pareto_front_keeps_only_undominated_rows():
    df = pd.DataFrame(
        {"latency_p50_ms": [10.0, 4.0, 5.0, 3.0, 12.0, None], "dice_drift": [0.0, -0.001, -0.01, -0.05, 0.0, 0.0]}
    )
    # 2 is slower and worse than 1; 4 ties 0 on drift but is slower; 5 has no latency
    assert pareto_front(df) == [3, 1, 0]
    assert pareto_front(df.drop(index=[1])) == [3, 2, 0]


def _suite_rows(suite: str, classes: list[str]) -> list[dict]:
    """Three cells of one suite whose Dice and mIoU drifts disagree (int8 loses a class mIoU sees)."""
    rows = []
    for backend, p50, dice_drift, miou_drift in (
        ("torch-eager", 10.0, 0.0, 0.0),
        ("ort-qdq-int8", 4.0, -0.001, -0.08),
        ("torch-fx-int8", 5.0, -0.02, -0.01),
    ):
        row = {"suite": suite, "model": "unet", "backend": backend, "precision": "fp32" if p50 == 10.0 else "int8"}
        row |= {"device": "cpu", "batch_size": 1, "status": "ok", "latency_p50_ms": p50}
        row |= {"dice_drift": dice_drift, "miou_drift": miou_drift}
        row |= {f"iou_vs_reference_{c}": 0.9 for c in classes}
        rows.append(row)
    return rows


def test_the_drift_plot_uses_miou_drift_on_a_multi_class_suite_and_dice_drift_on_a_binary_one():
    rows = _suite_rows("scenes", ["background", "road", "car", "person"]) + _suite_rows("nuclei", ["bg", "nucleus"])
    fig = drift_chart(pd.DataFrame(rows))
    scenes, nuclei = fig.axes
    assert scenes.get_title() == "scenes / unet" and nuclei.get_title() == "nuclei / unet"
    assert scenes.get_ylabel().startswith("miou_drift") and nuclei.get_ylabel().startswith("dice_drift")
    plotted = lambda ax: sorted(float(y) for c in ax.collections for y in np.asarray(c.get_offsets())[:, 1])  # noqa: E731
    assert plotted(scenes) == sorted([0.0, -0.08, -0.01])
    assert plotted(nuclei) == sorted([0.0, -0.001, -0.02])
