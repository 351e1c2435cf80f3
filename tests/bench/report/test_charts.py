"""The report's charts: which cells are on the Pareto front of drift against latency."""

import pandas as pd

from bench.report.charts import pareto_front


def test_pareto_front_keeps_only_undominated_rows():
    df = pd.DataFrame(
        {"latency_p50_ms": [10.0, 4.0, 5.0, 3.0, 12.0, None], "dice_drift": [0.0, -0.001, -0.01, -0.05, 0.0, 0.0]}
    )
    # 2 is slower and worse than 1; 4 ties 0 on drift but is slower; 5 has no latency
    assert pareto_front(df) == [3, 1, 0]
    assert pareto_front(df.drop(index=[1])) == [3, 2, 0]
