"""The roofline stage of a run: which peaks a run gets, a model counted once (then from this run's memory,
then from the cache), a measured row given its record and any other left alone, and a count that fails
in its worker turned into the row's `roofline_status` (integration: a real worker)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import onnx
import pytest

from bench.backend import NoOptions
from bench.measure.peaks import MachinePeaks
from bench.measure.timing import TimingConfig
from bench.onnx.macs import GraphCount
from bench.run import roofline as stage_module
from bench.run.cell import CellOutcome
from bench.run.config import RunConfig
from bench.run.count_cache import count_record
from bench.run.matrix import CellSpec
from bench.run.roofline import RooflineStage, peaks_env, peaks_line, run_peaks
from tests.bench.onnx.test_macs import TOTAL, hand_graph

PEAKS = MachinePeaks(2, {"fp32": 100.0, "int8": 400.0, "bf16": 200.0}, {}, 25.0, measure_s=1.25)
COUNT = GraphCount(2_000_000_000, 1_000_000, 9_000_000, nodes=10, counted_nodes=4, uncounted=(("Relu", 6),))


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SEGBENCH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _outcome(precision: str = "fp32", status: str = "ok", onnx_file: Path | None = None) -> CellOutcome:
    spec = CellSpec(
        suite="s",
        model="m",
        backend="b",
        precision=precision,
        device="cpu",
        threads=1,
        batch_size=1,
        timing=TimingConfig(),
        checkpoint=Path("c"),
        reference=Path("r"),
        options=NoOptions(),
        checkpoint_digest="abc",
        onnx=onnx_file,
    )
    measured: Any = SimpleNamespace(stats=SimpleNamespace(p50_ms=40.0))
    return CellOutcome(spec, status, measurement=measured if status == "ok" else None)


def test_a_cuda_or_ray_run_has_no_measured_peaks_and_says_why() -> None:
    assert run_peaks(RunConfig(device="cuda")).status == "unavailable: no measured peak for cuda rows"
    ray = run_peaks(RunConfig(executor="ray"))
    assert ray.status == "unavailable: measured by each node's run (--executor ray)"
    assert peaks_env(ray) == {"peaks": {"measured": ray.record(), "theoretical": None}}


def test_a_local_cpu_run_reads_its_machines_record(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = []
    monkeypatch.setattr(stage_module, "machine_peaks", lambda *args: asked.append(args) or PEAKS)
    assert run_peaks(RunConfig(threads=2)) is PEAKS
    threads, priority, record = asked[0]
    assert threads == 2 and record.name.startswith("peaks--") and record.name.endswith("--t2.json")
    assert set(peaks_env(PEAKS)["peaks"]) == {"measured", "theoretical"}  # type: ignore[arg-type]


def test_the_run_says_which_peaks_it_judges_against() -> None:
    assert peaks_line(PEAKS) == (
        "machine peaks on 2 thread(s) (first run here; measured in 1.2 s): GEMM GMAC/s fp32 100, int8 400, "
        "bf16 200, copy 25.0 GB/s"
    )
    assert "(best of 3 runs;" in peaks_line(replace(PEAKS, runs=3))
    assert peaks_line(MachinePeaks.unavailable(2, "a CUDA run")) == ""


def test_a_model_is_counted_once_and_then_read_from_the_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    counted = []
    monkeypatch.setattr(RooflineStage, "_counted", lambda self, spec, on_stage: counted.append(spec.key) or COUNT)
    stage = RooflineStage(PEAKS, 60.0)
    fp32 = stage.apply(_outcome("fp32"), lambda name: None)
    int8 = stage.apply(_outcome("int8"), lambda name: None)
    assert len(counted) == 1 and count_record(fp32.spec).is_file()
    assert fp32.roofline is not None and fp32.roofline.pct_of_peak == pytest.approx(50.0)
    assert int8.roofline is not None and int8.roofline.peak_gmacs == 400.0
    later = RooflineStage(PEAKS, 60.0).apply(_outcome("fp32"), lambda name: None)
    assert len(counted) == 1 and later.roofline == fp32.roofline


def test_a_cell_without_a_measurement_gets_no_roofline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(RooflineStage, "_counted", lambda self, spec, on_stage: pytest.fail("nothing to count"))
    failed = _outcome(status="error: boom")
    assert RooflineStage(PEAKS, 60.0).apply(failed, lambda name: None) is failed


def test_a_user_onnx_file_is_keyed_on_its_bytes(tmp_path: Path) -> None:
    first, second = tmp_path / "a.onnx", tmp_path / "b.onnx"
    onnx.save(hand_graph(), first)
    onnx.save(hand_graph(2), second)
    assert count_record(_outcome(onnx_file=first).spec) != count_record(_outcome(onnx_file=second).spec)
    assert count_record(_outcome(onnx_file=first).spec) != count_record(_outcome().spec)


@pytest.mark.integration
def test_a_count_in_its_worker_and_one_that_fails_there(tmp_path: Path) -> None:
    graph, broken = tmp_path / "hand.onnx", tmp_path / "broken.onnx"
    onnx.save(hand_graph(), graph)
    broken.write_text("not an ONNX file")
    stage = RooflineStage(PEAKS, 120.0)
    counted = stage.apply(_outcome(onnx_file=graph), lambda name: None).roofline
    assert counted is not None and counted.gmac_per_image == TOTAL / 1e9
    failed = stage.apply(_outcome(onnx_file=broken), lambda name: None).roofline
    assert failed is not None and failed.status.startswith("error: counting MACs: ")
    assert "\n" not in failed.status and failed.gmac_per_image is None
    assert not count_record(_outcome(onnx_file=broken).spec).exists()  # a failure is not cached
