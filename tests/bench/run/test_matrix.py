"""A suite given to --suite as a path is known by its own `name`: in the cells' identity, labels and file
names, in the rows, and when --resume matches the finished cells; the path only says where the file is."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.data.suite import get_suite
from bench.errors import UsageError
from bench.results.store import RunStore
from bench.run.cell import CellOutcome
from bench.run.config import RunConfig, load_run_config, save_run_config
from bench.run.matrix import plan_backends
from bench.run.runner import plan_cells

BUILT_IN = get_suite("synthetic-nuclei").path


def _suite_file(folder: Path, name: str) -> Path:
    """The built-in synthetic-nuclei suite, copied deep into `folder` under another `name`."""
    path = folder / "some" / "deep" / "folder" / f"{name}-copy.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(BUILT_IN.read_text().replace('name = "synthetic-nuclei"', f'name = "{name}"', 1))
    return path


def _cells(config: RunConfig, run_dir: Path, tmp_path: Path) -> list:
    checkpoint, reference = tmp_path / "model.pt", tmp_path / "reference.npy"
    checkpoint.write_bytes(b"weights"), reference.write_bytes(b"logits")
    references = {(name, model): (checkpoint, reference) for name in config.named_suites() for model in config.models}
    plans = plan_backends(config.backend_specs(), {}, config.device)
    return [spec for spec, _ in plan_cells(config, plans, references, {}, run_dir)]


def test_a_suite_given_by_path_is_named_by_its_name_key_and_loaded_from_its_path(tmp_path, monkeypatch):
    path = _suite_file(tmp_path, "my-nuclei")
    monkeypatch.chdir(tmp_path)
    relative = str(path.relative_to(tmp_path))
    config = RunConfig(suites=(relative,), backends=("torch-eager",), results_root=tmp_path / "results")
    run_dir = tmp_path / "results" / "run"
    (spec,) = _cells(config, run_dir, tmp_path)
    assert spec.suite == "my-nuclei" and spec.suite_file == relative
    assert spec.load_suite().name == "my-nuclei" and spec.load_suite().path == Path(relative)
    for text in (spec.key, spec.label, spec.log_file.name, spec.group()[0]):
        assert "deep" not in text and ".toml" not in text and "my-nuclei" in text
    row = CellOutcome(spec, "error: it broke").row().record()
    assert row["suite"] == "my-nuclei"

    # --resume from another folder: run.json keeps where the file is, the rows match by the name
    RunStore(run_dir).append(CellOutcome(spec, "error: it broke").row())
    save_run_config(config, run_dir)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    resumed = load_run_config(run_dir)
    assert resumed.suites == (str(path.resolve()),)
    (again,) = _cells(resumed, run_dir, tmp_path)
    assert again.key == spec.key and again.key in RunStore(run_dir).finished_cells()
    assert again.load_suite().name == "my-nuclei"


def test_two_suite_files_with_one_name_are_a_usage_error(tmp_path):
    first, second = _suite_file(tmp_path / "a", "twin"), _suite_file(tmp_path / "b", "twin")
    config = RunConfig(suites=(str(first), str(second)), backends=("torch-eager",))
    with pytest.raises(UsageError, match="are both suite 'twin'"):
        config.validate()


def test_the_same_suite_file_by_name_and_by_path_is_one_suite():
    config = RunConfig(suites=("synthetic-nuclei", str(BUILT_IN)))
    assert list(config.named_suites()) == ["synthetic-nuclei"]
    assert config.named_suites()["synthetic-nuclei"][0] == "synthetic-nuclei"


def test_the_command_line_says_so_in_one_line_and_exit_2(tmp_path, capsys):
    from bench.cli import main

    first, second = _suite_file(tmp_path / "a", "twin"), _suite_file(tmp_path / "b", "twin")
    out = tmp_path / "results"
    code = main(["run", "--suite", f"{first},{second}", "--backends", "torch-eager", "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert str(first) in err and str(second) in err and "'twin'" in err
    assert not out.exists(), "a usage error writes nothing"
