"""The Python API (`import segbench`, bench/api.py), used the way a user's own regression test would:
run two backends on the default suite's U-Net, assert a speedup bound and a drift bound with their
intervals; load the folder again, compare it with itself, tune from Python; and bad input raised as
UsageError with the command line's message before anything is written."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

import segbench

QUICK = {"threads": 1, "min_time": 0.3, "min_iters": 10, "warmup": 0.05, "wait_for_quiet": 0}


@pytest.fixture(scope="module")
def api_run(trained_unet_model, tmp_path_factory: pytest.TempPathFactory) -> segbench.RunResult:
    """The suite's own splits: any other count is another checkpoint key (the data is in it), so
    `split={"evaluation": 8}` trained a second U-Net here instead of using the session's."""
    out = tmp_path_factory.mktemp("api-results")
    return segbench.run(
        models="unet",
        backends=["torch-eager", "ort-qdq-int8"],
        no_gradcam=True,
        out=out,
        fail_on=["dice_drift>=-0.05"],
        **QUICK,
    )


@pytest.mark.slow
def test_a_users_regression_test_asserts_speedup_and_drift(api_run: segbench.RunResult) -> None:
    speedup = api_run.speedup("ort-qdq-int8")
    drift = api_run.measure("ort-qdq-int8", "dice_drift")
    assert speedup.low is not None and speedup.low > 1.0, speedup  # int8 U-Net on ONNX Runtime: ~3x here
    assert drift.value >= -0.02 and drift.low is not None and drift.low <= drift.value <= drift.high, drift
    assert api_run.ok and api_run.verdict.judged == 1  # the fail_on bound, judged on the int8 row (fp32's is 0)
    assert set(api_run.rows["backend"]) == {"torch-eager", "ort-qdq-int8"}
    assert api_run.decision is not None and api_run.decision.groups[0].model == "unet"
    assert (api_run.folder / "config.toml").is_file()  # the settings, for `segbench run --config`


@pytest.mark.slow
def test_load_and_compare_read_the_folder_back(api_run: segbench.RunResult) -> None:
    again = segbench.load(api_run.folder)
    assert again.rows.equals(api_run.rows) and again.decision == api_run.decision
    assert not segbench.load(api_run.folder, fail_on=["dice_drift>=0.5"]).ok  # a bound no int8 row holds
    comparison = segbench.compare(api_run.folder, api_run.folder)
    assert comparison.regressions == () and len(comparison.table) == 2
    with pytest.raises(LookupError, match="no row"):
        api_run.row("openvino")
    with pytest.raises(LookupError, match="no column"):
        api_run.measure("torch-eager", "not_a_column")


def test_a_tune_from_python_takes_the_commands_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """segbench.tune builds the TuneConfig `segbench tune` would and returns what run_tune concluded (the
    tune itself, the same run_tune, is run end to end by tests/test_tune.py: a minute it need not repeat)."""
    from bench.tune import runner
    from bench.tune.records import TuneOutcome

    seen = {}

    def fake_run_tune(config, log, on_folder):
        seen["config"] = config
        on_folder(tmp_path)
        message = "no configuration met the budget dice_drift>=0.5"
        return TuneOutcome(tmp_path, met=False, option_line=None, message=message, errors=("x: error",))

    monkeypatch.setattr(runner, "run_tune", fake_run_tune)
    result = segbench.tune(
        suite="synthetic-nuclei", model="unet", backend="ort-qdq-int8", budget=["dice_drift>=0.5"], max_layers=1
    )
    config = seen["config"]
    assert (config.suite, config.model, config.backend, config.budgets) == (
        "synthetic-nuclei",
        "unet",
        "ort-qdq-int8",
        ("dice_drift>=0.5",),
    )
    assert config.max_layers == 1 and config.shared.threads >= 1
    assert not result.met and "dice_drift>=0.5" in result.message and result.errors == ("x: error",)
    assert "max-layers = 1" in (tmp_path / "config.toml").read_text()
    with pytest.raises(LookupError, match="no sensitivity.parquet"):
        result.table("sensitivity")
    with pytest.raises(segbench.UsageError, match="one backend per call"):
        segbench.tune(suite="synthetic-nuclei", model="unet", backend="all")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda out: segbench.run(min_tim=3, out=out),
            "segbench.run(): unknown key 'min_tim'; did you mean 'min_time'?",
        ),
        (lambda out: segbench.run(threads="two", out=out), "segbench.run(): key 'threads': 'two' is not an integer"),
        (lambda out: segbench.run(backends="nosuch", out=out), "unknown backend 'nosuch'"),
        (lambda out: segbench.run(fail_on=["nosuch>=1"], out=out), "nosuch"),
        (lambda out: segbench.tune(model="unet", out=out), "segbench tune needs --suite, --backend"),
        (lambda out: segbench.compare(out.parent, out.parent), "has no results.parquet"),
        (lambda out: segbench.compare(out, out, latency_threshold=-1), "latency-threshold"),
        (lambda out: segbench.load(out / "nothing"), "does not exist"),
    ],
)
def test_bad_input_is_a_usage_error_before_anything_is_written(tmp_path: Path, call, message: str) -> None:
    out = tmp_path / "results"
    with pytest.raises(segbench.UsageError, match=None) as raised:
        call(out)
    assert message in str(raised.value) and "\n" not in str(raised.value)
    assert not out.exists() or not any(out.iterdir())


def test_progress_goes_through_logging() -> None:
    """A caller redirects progress with a handler of its own, and silences it with the logger's level."""
    from bench.output.terminal import progress

    class Collect(logging.Handler):
        lines: list[str] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.lines.append(record.getMessage())

    handler, parent = Collect(), logging.getLogger("segbench")
    logging.getLogger("segbench.progress").addHandler(handler)
    try:
        progress("a line")
        parent.setLevel(logging.WARNING)
        progress("not this one")
    finally:
        parent.setLevel(logging.INFO)
        logging.getLogger("segbench.progress").removeHandler(handler)
    assert Collect.lines == ["a line"]


def test_the_stable_path_exports_the_api() -> None:
    assert set(segbench.__all__) >= {"run", "tune", "compare", "load", "RunResult", "UsageError", "Measure"}
    assert segbench.__version__
