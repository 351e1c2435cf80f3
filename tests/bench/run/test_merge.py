"""`segbench merge` on shard folders written from tables (as a CI job leaves them): one row per cell, who
measured each, duplicates refused (or the newest group kept), missing cells named, configurations checked."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.cli import main
from bench.errors import UsageError
from bench.report.compare import compare_runs, load_run
from bench.run.merge import merge_run_folders
from bench.run.shard import assign_groups

BACKENDS = (("torch-eager", "fp32", 20.0), ("ort-qdq-int8", "int8", 5.0))
MODELS = ("unet", "deeplabv3plus-resnet18", "hrnet-w18-small")
CPU = {"cpu_model": "Test CPU", "logical_cores": 2, "gpu": None, "threads": 2, "hostname": "runner-1"}
CONFIG = {"suites": ["synthetic-nuclei"], "models": list(MODELS), "backends": ["torch-eager", "ort-qdq-int8"]}


def cells(model: str) -> list[str]:
    return [f"synthetic-nuclei/{model}/{b}/{p}/cpu/1" for b, p, _ in BACKENDS]


MATRIX = {f"synthetic-nuclei/{m}/cpu/1": cells(m) for m in MODELS}


def write_shard(
    root: Path,
    name: str,
    models: tuple[str, ...],
    shard: tuple[int, int] | None = (1, 2),
    env: dict | None = None,
    config: dict | None = None,
    dice: float = 0.9,
    date: str = "2026-11-01T02:00:00+00:00",
) -> Path:
    """A run folder holding every backend of `models`: results, samples, per-image Dice, details, env, run.json."""
    folder = root / name
    (folder / "figures").mkdir(parents=True)
    rows, samples, per_image, details = [], [], [], {}
    for model in models:
        for backend, precision, p50 in BACKENDS:
            identity = dict(
                suite="synthetic-nuclei", model=model, backend=backend, precision=precision, device="cpu", batch_size=1
            )
            rows.append({**identity, "status": "ok", "threads": 2, "latency_p50_ms": p50, "dice": dice})
            samples.append(pd.DataFrame({**identity, "iteration": np.arange(3), "latency_ns": [int(p50 * 1e6)] * 3}))
            per_image.append(pd.DataFrame({**identity, "image_index": np.arange(2), "dice": [dice, dice]}))
            details["/".join(str(v) for v in identity.values())] = {"options": {}, "from": name}
        (folder / "figures" / f"gradcam_{model}.png").write_bytes(b"png")
    identity = ["suite", "model", "backend", "precision", "device", "batch_size", "status"]
    pd.DataFrame(rows, columns=None if rows else identity).to_parquet(folder / "results.parquet", index=False)
    if rows:  # an empty shard writes its empty table and nothing else
        pd.concat(samples).to_parquet(folder / "samples.parquet", index=False)
        pd.concat(per_image).to_parquet(folder / "per_image.parquet", index=False)
    (folder / "per_backend.json").write_text(json.dumps(details))
    record = {}
    if shard is not None:
        groups = [f"synthetic-nuclei/{m}/cpu/1" for m in models]
        record = {"shard": {"index": shard[0], "count": shard[1], "groups": groups, "matrix": MATRIX}}
    (folder / "env.json").write_text(json.dumps({**CPU, **(env or {}), "date": date, "git_commit": "c" * 40, **record}))
    run = {**CONFIG, **(config or {}), "shard": dict(zip(("index", "count"), shard)) if shard else None}
    (folder / "run.json").write_text(json.dumps({**run, "results_root": str(root)}))
    return folder


def test_two_shards_merge_into_one_run_with_who_measured_each_row(tmp_path: Path) -> None:
    a = write_shard(tmp_path, "a", ("unet", "hrnet-w18-small"), (1, 2))
    b = write_shard(tmp_path, "b", ("deeplabv3plus-resnet18",), (2, 2), env={"hostname": "runner-2"})
    result = merge_run_folders([a, b], tmp_path / "merged")
    assert result.written and result.exit_code == 0 and result.rows == 6
    assert result.duplicates == () and result.missing == () and result.warnings == ()
    out = tmp_path / "merged"
    table = pd.read_parquet(out / "results.parquet")
    assert sorted(table.model.unique()) == sorted(MODELS) and len(table) == 6
    assert dict(zip(table.model, table.hostname)) == {
        "unet": "runner-1",
        "hrnet-w18-small": "runner-1",
        "deeplabv3plus-resnet18": "runner-2",
    }
    assert set(table.machine) == {"Test CPU, 2 cores, gpu none"}
    assert set(zip(table.model, table["shard"])) >= {("unet", "1/2"), ("deeplabv3plus-resnet18", "2/2")}
    assert len(pd.read_parquet(out / "samples.parquet")) == 18 and len(pd.read_parquet(out / "per_image.parquet")) == 12
    assert len(json.loads((out / "per_backend.json").read_text())) == 6
    assert {p.name for p in (out / "figures").iterdir()} >= {f"gradcam_{m}.png" for m in MODELS}
    env = json.loads((out / "env.json").read_text())
    assert [part["run"] for part in env["shards"]] == [str(a), str(b)] and "shard" not in env
    assert env["matrix"] == MATRIX and env["cpu_model"] == "Test CPU"
    run = json.loads((out / "run.json").read_text())
    assert run["shard"] is None and run["models"] == list(MODELS)
    report = (out / "report.md").read_text()
    assert "Merged from" in report and "(shard 2 of 2)" in report


def test_a_shard_report_says_which_part_it_is(tmp_path: Path) -> None:
    from bench.report.files import write_reports

    folder = write_shard(tmp_path, "a", ("unet",), (1, 3))
    write_reports(folder)
    assert "- Shard 1 of 3: 1 of the matrix's 3 comparison groups" in (folder / "report.md").read_text()


def test_a_cell_in_two_folders_is_named_and_nothing_is_written(tmp_path: Path, capsys) -> None:
    a = write_shard(tmp_path, "a", ("unet", "hrnet-w18-small"), (1, 2))
    b = write_shard(tmp_path, "b", ("deeplabv3plus-resnet18", "unet"), (2, 2))
    out = tmp_path / "merged"
    result = merge_run_folders([a, b], out)
    assert not result.written and result.exit_code == 1 and not out.exists()
    assert result.duplicates == tuple(f"{cell}: in {a} and {b}" for cell in cells("unet"))
    assert main(["merge", str(a), str(b), "--out", str(out)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert [line for line in err if "duplicate" in line] == [
        f"segbench merge: duplicate: {d}" for d in result.duplicates
    ]
    assert not out.exists()


def test_prefer_newest_takes_a_duplicated_group_whole_from_the_newest_folder(tmp_path: Path) -> None:
    new = write_shard(tmp_path, "new", ("unet",), (1, 2), dice=0.8, date="2026-11-02T02:00:00+00:00")
    old = write_shard(tmp_path, "old", ("unet", "hrnet-w18-small", "deeplabv3plus-resnet18"), (2, 2))
    result = merge_run_folders([new, old], tmp_path / "merged", prefer="newest")
    assert result.written and result.exit_code == 0 and result.rows == 6
    assert len([w for w in result.warnings if "kept the newer" in w]) == 2
    table = pd.read_parquet(tmp_path / "merged" / "results.parquet")
    assert table.set_index("model").loc["unet", "dice"].tolist() == [0.8, 0.8]  # both rows of the group: new
    assert set(table.set_index("model").loc["unet", "source_run"]) == {str(new)}
    samples = pd.read_parquet(tmp_path / "merged" / "samples.parquet")
    assert len(samples) == 18  # the old group's samples went with its rows
    details = json.loads((tmp_path / "merged" / "per_backend.json").read_text())
    assert {v["from"] for k, v in details.items() if "/unet/" in k} == {"new"}


def test_a_missing_cell_is_named_and_the_rest_is_written(tmp_path: Path, capsys) -> None:
    a = write_shard(tmp_path, "a", ("unet", "hrnet-w18-small"), (1, 2))
    out = tmp_path / "merged"
    assert main(["merge", str(a), "--out", str(out)]) == 1
    captured = capsys.readouterr()
    missing = [line for line in captured.err.splitlines() if "missing" in line]
    group = "synthetic-nuclei/deeplabv3plus-resnet18/cpu/1"
    owner = assign_groups(MATRIX, 2)[group]  # the shard that was to measure it, as `--shard K/2` deals
    assert missing == [
        f"segbench merge: missing: {cell}: in no input (group {group}, shard {owner}/2)"
        for cell in cells("deeplabv3plus-resnet18")
    ]
    assert len(pd.read_parquet(out / "results.parquet")) == 4 and (out / "report.html").is_file()
    assert "segbench merge: warning: no input is shard 2/2" in captured.err
    assert "2 planned cell(s) missing" in captured.out


def test_an_empty_shard_merges_like_any_other(tmp_path: Path) -> None:
    a = write_shard(tmp_path, "a", ("unet", "hrnet-w18-small", "deeplabv3plus-resnet18"), (1, 4))
    empty = write_shard(tmp_path, "empty", (), (4, 4))
    result = merge_run_folders([a, empty], tmp_path / "merged")
    assert result.exit_code == 0 and result.rows == 6


def test_different_configurations_are_a_usage_error_naming_both_folders_and_the_key(tmp_path: Path, capsys) -> None:
    a = write_shard(tmp_path, "a", ("unet",), (1, 2))
    b = write_shard(tmp_path, "b", ("deeplabv3plus-resnet18",), (2, 2), config={"threads": 4})
    out = tmp_path / "merged"
    assert main(["merge", str(a), str(b), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"'{a}' and '{b}'" in err and "differ in 'threads'" in err
    assert not out.exists()
    c = write_shard(tmp_path, "c", ("deeplabv3plus-resnet18",), (2, 2), config={"results_root": "elsewhere"})
    assert merge_run_folders([a, c], out).written  # where each shard wrote its folder does not matter


@pytest.mark.parametrize("problem", ["not empty", "no run", "twice"])
def test_usage_errors_write_nothing(tmp_path: Path, problem: str) -> None:
    a = write_shard(tmp_path, "a", ("unet",), (1, 2))
    out = tmp_path / "merged"
    inputs = [a]
    if problem == "not empty":
        out.mkdir()
        (out / "something").write_text("")
    elif problem == "no run":
        (tmp_path / "plain").mkdir()
        inputs.append(tmp_path / "plain")
    else:
        inputs.append(tmp_path / "." / "a")
    with pytest.raises(UsageError):
        merge_run_folders(inputs, out)
    assert not out.exists() or [p.name for p in out.iterdir()] == ["something"]


def test_shards_of_two_machines_are_flagged_and_compare_warns(tmp_path: Path) -> None:
    a = write_shard(tmp_path, "a", ("unet", "hrnet-w18-small"), (1, 2))
    b = write_shard(tmp_path, "b", ("deeplabv3plus-resnet18",), (2, 2), env={"cpu_model": "Other CPU"})
    result = merge_run_folders([a, b], tmp_path / "merged")
    assert result.exit_code == 0
    [warning] = [w for w in result.warnings if "machines" in w]
    assert "2 machines" in warning and "Other CPU" in warning
    table = pd.read_parquet(tmp_path / "merged" / "results.parquet")
    assert set(table[table.model == "deeplabv3plus-resnet18"].machine) == {"Other CPU, 2 cores, gpu none"}
    baseline = write_shard(tmp_path, "baseline", MODELS, None)
    comparison = compare_runs(load_run(baseline), load_run(tmp_path / "merged"))
    assert any("different machines" in w for w in comparison.warnings)
    same = merge_run_folders([a, write_shard(tmp_path, "b2", ("deeplabv3plus-resnet18",), (2, 2))], tmp_path / "m2")
    assert not any("different machines" in w for w in compare_runs(load_run(baseline), load_run(same.out)).warnings)


def test_a_merged_folder_merges_again_keeping_who_measured_each_row(tmp_path: Path) -> None:
    a = write_shard(tmp_path, "a", ("unet", "hrnet-w18-small"), (1, 2))
    b = write_shard(tmp_path, "b", ("deeplabv3plus-resnet18",), (2, 2), env={"hostname": "runner-2"})
    partial = merge_run_folders([a], tmp_path / "partial")  # shard 2 came late
    assert partial.exit_code == 1 and len(partial.missing) == 2
    result = merge_run_folders([partial.out, b], tmp_path / "merged")
    assert result.exit_code == 0 and result.rows == 6 and result.warnings == ()
    table = pd.read_parquet(tmp_path / "merged" / "results.parquet")
    assert dict(zip(table.model, table.source_run)) == {
        "unet": str(a),
        "hrnet-w18-small": str(a),
        "deeplabv3plus-resnet18": str(b),
    }
    env = json.loads((tmp_path / "merged" / "env.json").read_text())
    assert [part["run"] for part in env["shards"]] == [str(a), str(b)]
