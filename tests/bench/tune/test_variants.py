"""A variant is a cell: the tuned backend's spec with the layers, options or calibration draw of the
variant (each with a log file of its own), and a timed variant carries the fp32 reference's p50 and the
same-run speedup beside it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bench.run.matrix import CellSpec, TimingConfig
from bench.tune import variants
from bench.tune.config import TuneConfig
from bench.tune.variants import Variants
from tests.bench.tune.stand_ins import StandInVariants, install


class _Backend:
    def parse_options(self, options: dict[str, str]) -> dict[str, str]:
        return dict(options)


class _Plan:
    name = "b-int8"
    backend = _Backend()


def _variants(tmp_path: Path) -> Variants:
    spec = CellSpec("s", "m", "b", "int8", "cpu", 1, 1, TimingConfig(), Path("c"), Path("r"), options=None)  # type: ignore[arg-type]
    return Variants(
        plan=_Plan(),  # type: ignore[arg-type]
        reference_plan=_Plan(),  # type: ignore[arg-type]
        tuned=replace(spec, split="tuning"),
        reference=spec,
        evaluation=spec,
        base_options={"calibration": "minmax"},
        folder=tmp_path,
    )


def test_each_variant_is_the_tuned_cell_with_its_own_options_and_log(tmp_path: Path) -> None:
    found = _variants(tmp_path)
    layers = found.with_layers(("enc.0", "dec.0"))
    assert layers.split == "tuning" and layers.options == {"calibration": "minmax", "float_layers": "enc.0,dec.0"}
    assert layers.log_file is not None and layers.log_file.parent == tmp_path / "logs"
    assert layers.log_file.name.startswith("tuning-float2-")
    assert found.with_layers((), "evaluation").log_file == tmp_path / "logs" / "evaluation-int8.log"
    assert found.with_layers((), "evaluation").split == "evaluation"
    peer = found.with_options({"ir": "m.xml"}, "peer")
    assert (
        peer.options == {"calibration": "minmax", "ir": "m.xml"}
        and peer.log_file == tmp_path / "logs" / "tuning-peer.log"
    )
    draw = found.with_calibration("entropy", 8, 1)
    assert draw.calibration_draw == (8, 1) and draw.options == {"calibration": "entropy"}
    assert draw.log_file == tmp_path / "logs" / "calibration-entropy-8-1.log"
    assert found.with_calibration(None, 8, 0).options == {"calibration": "minmax"}


def test_a_timed_variant_carries_the_reference_p50_and_the_paired_speedup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install(monkeypatch)
    stand_in: Any = StandInVariants(tmp_path)
    config = TuneConfig(suite="s", model="m", backend="b-int8")
    timed = variants.timed_variant(
        config, stand_in, variants.reference_kernel(config), stand_in.with_layers(("enc.0",)), "p", print
    )
    assert timed.fp32_latency_p50_ms == 20.0
    assert timed.score.row["speedup_vs_fp32"] == pytest.approx(20.0 / 11.0)
    assert str(timed.score.row["speedup_method"]).startswith("paired: median of 4 per-cycle p50 ratios")
    failed = variants.timed_variant(config, stand_in, None, stand_in.with_layers(("bad",)), "p", print)  # type: ignore[arg-type]
    assert failed.fp32_latency_p50_ms == 20.0 and failed.score.row["speedup_vs_fp32"] is None
    assert list(failed.columns())[:2] == ["fp32_latency_p50_ms", "suite"]


def test_a_judged_row_in_one_line() -> None:
    config = TuneConfig(suite="s", model="m", backend="b", budgets=("dice_drift>=-0.01", "miou_drift>=-0.01"))
    row = {"status": "ok", "latency_p50_ms": 12.5, "dice_drift": -0.005, "miou_drift": None, "budgets_met": False}
    assert variants.summary(row, config) == "ok, p50 12.50 ms, dice_drift -0.0050, miou_drift nan"
    assert variants.summary({"status": "ok", "budgets_met": True}, config).endswith("nan, budgets met")
    lines: list[str] = []
    variants.label(lines.append, "[step 1]")("load")
    assert lines == ["[step 1]: load"]
