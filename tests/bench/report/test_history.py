"""segbench history on run folders written the way a nightly job leaves them (results.parquet + env.json)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.cli import main
from bench.report.history import LATENCY, build_history, change_points, find_runs

BACKENDS = ("torch-eager", "ort", "ort-qdq-int8")
CPU = {"cpu_model": "Test CPU", "logical_cores": 2, "gpu": None, "threads": 2}


def write_run(
    root: Path,
    night: int,
    latencies: dict[str, float],
    dice: dict[str, float] | None = None,
    env: dict | None = None,
    extra: dict[str, dict] | None = None,
) -> Path:
    """One run folder dated `night` days after 2026-11-01, one ok row per backend."""
    date = dt.datetime(2026, 11, 1, 2, 0, tzinfo=dt.UTC) + dt.timedelta(days=night)
    folder = root / date.strftime("%Y%m%d-%H%M%S")
    folder.mkdir(parents=True)
    rows = []
    for backend, p50 in latencies.items():
        rows.append(
            {
                "suite": "synthetic-nuclei",
                "model": "unet",
                "backend": backend,
                "precision": "int8" if "int8" in backend else "fp32",
                "device": "cpu",
                "batch_size": 1,
                "threads": 2,
                "status": "ok",
                "latency_p50_ms": p50,
                "timing_quality": "ok",
                "dice": (dice or {}).get(backend, 0.9),
                "gradcam_method": "autograd",
                "gradcam_pearson": 0.95,
                **(extra or {}).get(backend, {}),
            }
        )
    pd.DataFrame(rows).to_parquet(folder / "results.parquet", index=False)
    env = {**CPU, **(env or {}), "date": date.isoformat(), "git_commit": f"{night:02d}" + "c" * 38}
    (folder / "env.json").write_text(json.dumps(env))
    return folder


def nightly(root: Path, nights: int, seed: int = 0, step: tuple[str, int, float] | None = None) -> None:
    """`nights` runs with +-5% run-to-run noise; `step` = (backend, first night, factor) slows one backend."""
    rng = np.random.default_rng(seed)
    base = {"torch-eager": 20.0, "ort": 12.0, "ort-qdq-int8": 6.0}
    for night in range(nights):
        lat = {b: v * float(np.exp(rng.normal(0, 0.05))) for b, v in base.items()}
        if step is not None and night >= step[1]:
            lat[step[0]] *= step[2]
        write_run(root, night, lat)


def test_change_points_finds_a_step_and_nothing_in_flat_data() -> None:
    assert change_points(np.log([10.0, 10.2, 9.9, 20.0, 20.3, 19.8]), 0.02) == [3]
    assert change_points(np.log([10.0, 10.2, 9.9, 10.1]), 0.02) == []


def test_a_latency_step_is_found_once_with_its_first_run_and_commits(tmp_path: Path) -> None:
    nightly(tmp_path, 10, step=("ort", 6, 1.6))
    history = build_history(tmp_path)
    assert len(history.runs) == 10
    [change] = history.changes
    assert change.series.metric == LATENCY and change.series.cell[2] == "ort"
    assert history.runs[change.first_run].path.name.startswith("20261107")
    assert change.worse and change.kind == "step"
    assert 1.45 < change.after / change.before < 1.75
    assert history.recent_changes(3) == [] and history.recent_changes(4) == [change]


def test_changes_within_the_spread_are_not_reported(tmp_path: Path) -> None:
    """+-5% noise: a 8% step is inside 3x the spread this history shows, a 60% one is not."""
    nightly(tmp_path / "small", 10, step=("ort", 5, 1.08))
    assert build_history(tmp_path / "small").changes == ()
    nightly(tmp_path / "large", 10, step=("ort", 5, 1.6))
    assert len(build_history(tmp_path / "large").changes) == 1


def test_a_change_seen_only_in_noisy_rows_is_listed_but_unconfirmed(tmp_path: Path) -> None:
    """A x5 newest point timed on a busy machine: shown, never exit 1; once a quiet night shows the same
    level, the change is confirmed."""
    noisy = {"ort": {"timing_quality": "noisy: other processes used 80% of the CPU"}}
    for night in range(6):
        write_run(
            tmp_path,
            night,
            {"ort": 12.0 * (5 if night == 5 else 1) * (1 + 0.01 * night)},
            extra=noisy if night == 5 else None,
        )
    history = build_history(tmp_path)
    [change] = history.changes
    assert not change.confirmed and history.recent_changes(3) == []
    assert main(["history", str(tmp_path)]) == 0
    write_run(tmp_path, 6, {"ort": 62.5})  # a quiet night at the new level
    [change] = build_history(tmp_path).changes
    assert change.confirmed and change.first_run == 5
    assert main(["history", str(tmp_path)]) == 1


def test_a_quality_drop_is_a_change_and_a_method_switch_is_not(tmp_path: Path) -> None:
    for night in range(6):
        write_run(
            tmp_path,
            night,
            {"ort-qdq-int8": 6.0},
            dice={"ort-qdq-int8": 0.90 if night < 4 else 0.88},
            extra={"ort-qdq-int8": {"gradcam_method": "fd", "gradcam_pearson": 0.5}} if night < 2 else None,
        )
    history = build_history(tmp_path)
    [change] = history.changes
    assert change.series.metric == "dice" and change.worse
    assert history.runs[change.first_run].path.name.startswith("20261105")
    gradcam = [s for s in history.series if s.metric == "gradcam_pearson"]
    assert gradcam[0].runs == (2, 3, 4, 5) and gradcam[0].left_out == 2  # nights 0-1 used another method


def test_two_machines_never_mix(tmp_path: Path) -> None:
    """A fast and a slow machine alternating nights: each is flat, so no change."""
    for night in range(8):
        fast = night % 2 == 0
        write_run(
            tmp_path,
            night,
            {"ort": 5.0 if fast else 15.0},
            env={"cpu_model": "Fast CPU" if fast else "Slow CPU"},
        )
    history = build_history(tmp_path)
    assert history.changes == ()
    assert len({s.machine_label for s in history.series}) == 2


def test_a_slow_drift_is_labelled_drift(tmp_path: Path) -> None:
    for night, p50 in enumerate([10.0, 10.0, 10.0, 14.0, 19.6, 27.4, 27.4, 27.4]):
        write_run(tmp_path, night, {"ort": p50, "ort-qdq-int8": 6.0 * (1 + 0.02 * (night % 2))})
    changes = build_history(tmp_path).changes
    assert len(changes) >= 2 and {c.kind for c in changes} == {"drift"}


def test_since_keeps_later_runs_and_symlinks_are_not_counted_twice(tmp_path: Path) -> None:
    nightly(tmp_path, 6)
    (tmp_path / "latest").symlink_to(sorted(tmp_path.iterdir())[-1].name)
    assert len(find_runs(tmp_path)) == 6
    assert len(find_runs(tmp_path, dt.datetime(2026, 11, 4, tzinfo=dt.UTC))) == 3


def test_cli_writes_markdown_and_a_self_contained_page_and_exits_1_on_a_recent_change(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nightly(tmp_path, 8, step=("torch-eager", 6, 2.0))
    assert main(["history", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "torch-eager" in out and "latency_p50_ms" in out and "05cccccccc..06cccccccc" in out
    page = (tmp_path / "history.html").read_text()
    assert page.count('<img class="trend" src="data:image/png;base64,') == 1 and "http" not in page
    assert (tmp_path / "history.md").read_text().startswith("# segbench history")
    assert main(["history", str(tmp_path), "--recent", "1", "--out", str(tmp_path / "h.html")]) == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing-root"], "does not exist"),
        (["{root}", "--since", "yesterday"], "--since 'yesterday' is not a date"),
        (["{root}", "--recent", "0"], "--recent 0 is not valid"),
        (["{root}", "--out", "{root}/no/such/h.html"], "does not exist"),
        (["{empty}"], "holds no segbench run folders"),
        (["{root}", "--since", "2030-01-01"], "dated 2030-01-01 or later"),
    ],
)
def test_usage_errors_are_one_line_exit_2_and_write_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    root, empty = tmp_path / "root", tmp_path / "empty"
    nightly(root, 3)
    empty.mkdir()
    argv = ["history", *(a.format(root=root, empty=empty) for a in args)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
    assert not (root / "history.html").exists() and not list(empty.iterdir())


def test_each_metric_changes_at_its_own_declared_threshold(tmp_path: Path) -> None:
    """A 2 dB SQNR drop is a change (1 dB threshold); a 0.005 drop of one class's IoU is not (0.01), unless
    --quality-threshold asks for less."""
    for night in range(6):
        late = night >= 3
        write_run(
            tmp_path,
            night,
            {"ort-qdq-int8": 6.0},
            extra={"ort-qdq-int8": {"sqnr_db": 28.0 if late else 30.0, "iou_nucleus": 0.795 if late else 0.8}},
        )
    [change] = build_history(tmp_path).changes
    assert change.series.metric == "sqnr_db" and change.worse and change.threshold == 1.0
    changed = {c.series.metric for c in build_history(tmp_path, quality_threshold=0.001).changes}
    assert changed == {"sqnr_db", "iou_nucleus"}


def test_sqnr_of_a_float_row_moving_above_its_ceiling_is_no_change(tmp_path: Path) -> None:
    for night, sqnr in enumerate([148.5, 141.0, 149.0, 139.5, 146.0, 140.0]):
        write_run(tmp_path, night, {"ort": 12.0}, extra={"ort": {"sqnr_db": sqnr}})
    history = build_history(tmp_path)
    assert history.changes == ()
    assert next(s for s in history.series if s.metric == "sqnr_db").values == (60.0,) * 6
