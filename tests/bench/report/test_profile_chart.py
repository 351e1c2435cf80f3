"""The op-type bar of a profiled cell (figures/profile_*.png)."""

from __future__ import annotations

import pandas as pd
import pytest

from bench.report.profile_chart import op_type_chart


def test_the_op_type_bar_keeps_eight_op_types_and_the_rest_as_other() -> None:
    ops = pd.DataFrame(
        {
            "op_type": [f"Op{i}" for i in range(11)] + ["DequantizeLinear"],
            "category": ["compute"] * 11 + ["dequantize"],
            "ms_per_run": [float(20 - i) for i in range(11)] + [15.5],
        }
    )
    fig = op_type_chart(ops, "cell", p50_ms=200.0)
    ax = fig.axes[0]
    bars = ax.patches
    assert len(bars) == 9
    widths = [b.get_width() for b in bars]
    assert widths[:3] == [20.0, 19.0, 18.0] and widths[5] == 15.5  # sorted by time, DequantizeLinear among them
    assert bars[5].get_hatch() == "//" and bars[0].get_hatch() is None
    assert widths[-1] == pytest.approx(sum(range(10, 14)))  # Op7..Op10: four op types in "other"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[-2].startswith("other (4 op types)") and labels[-1].startswith("p50 unprofiled")
    assert sum(widths) == pytest.approx(ops["ms_per_run"].sum())
