"""segbench's Python API: `segbench.run(...)`, `segbench.tune(...)`, `segbench.compare(...)` and
`segbench.load(folder)`, with typed results (`RunResult`, `TuneResult`, `CompareResult`, `Measure`) and
`UsageError` for bad input, as the command line refuses it. This import path is the stable one; the
implementation is bench/api.py, and everything else under bench/ and backends/ may move between releases.

    import segbench

    result = segbench.run(models="unet", backends=["torch-eager", "ort-qdq-int8"], no_gradcam=True)
    assert result.speedup("ort-qdq-int8").low > 1.5
    assert result.measure("ort-qdq-int8", "dice_drift").value > -0.01
"""

from bench import __version__
from bench.api import CompareResult, Measure, RunResult, TuneResult, UsageError, compare, load, run, tune

__all__ = [
    "CompareResult",
    "Measure",
    "RunResult",
    "TuneResult",
    "UsageError",
    "__version__",
    "compare",
    "load",
    "run",
    "tune",
]
