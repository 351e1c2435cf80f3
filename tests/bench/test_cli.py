import subprocess
import sys

import pytest

from bench.cli import main


def segbench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bench.cli", *args], capture_output=True, text=True, timeout=120)


@pytest.mark.integration
def test_unknown_backend_exits_2_and_lists_valid_names():
    result = segbench("run", "--backends", "torch-eager,nope")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(
        "segbench: error: unknown backend 'nope'; valid backends: openvino, openvino-int8, ort, ort-qdq-int8, "
    )
    for name in ("tensorrt-int8", "torch-eager", "torch-fx-int8"):
        assert name in lines[0]


@pytest.mark.parametrize("option,value,kind", [("--models", "nope", "model"), ("--suite", "nope", "suite")])
def test_unknown_model_or_suite_exits_2(option, value, kind, capsys):
    assert main(["run", option, value]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"segbench: error: unknown {kind} 'nope'; valid {kind}s:")


@pytest.mark.integration
def test_bad_option_value_is_one_line_exit_2():
    result = segbench("run", "--min-time", "-1")
    assert result.returncode == 2
    assert result.stderr.strip() == "segbench: error: argument --min-time: '-1' must be greater than 0"


def test_list_backends_shows_availability(capsys):
    assert main(["list", "backends"]) == 0
    status = {line.split()[0]: line.split(maxsplit=3)[-1].strip() for line in capsys.readouterr().out.splitlines()[2:]}
    for name in ("torch-eager", "ort", "ort-qdq-int8", "torch-fx-int8", "torchao-pt2e-int8"):
        assert status[name] == "available", (name, status[name])  # every CPU backend runs here
    assert status["tensorrt-int8"] == "unavailable: tensorrt is not importable"  # never on these machines


def test_list_suites_and_models(capsys):
    assert main(["list", "suites"]) == 0
    assert main(["list", "models"]) == 0
    out = capsys.readouterr().out
    assert "synthetic-nuclei" in out and "unet" in out


@pytest.mark.parametrize(
    "args,expected",
    [
        (["--threads", "0"], "--threads 0 is not valid; expected at least 1"),
        (["--batch-size", "-2"], "--batch-size -2 is not valid; expected at least 1"),
        (
            ["--gradcam-layer", "nosuch"],
            "--gradcam-layer 'nosuch' is not a layer of model 'unet' (aliases: encoder, bottleneck, decoder",
        ),
        (["--threshold", "1.5"], "--threshold 1.5 is not valid; expected a probability between 0 and 1"),
        (["--profile", "--profile-calls", "0"], "--profile-calls 0 is not valid; expected at least 1"),
        (
            ["--models", "unet,deeplabv3plus-resnet18", "--weights", "w.pt"],
            "--weights needs exactly one model in --models (got 2)",
        ),
        (["--scenario", "server"], "--scenario server needs --latency-bound MS"),
        (["--latency-bound", "20"], "--latency-bound needs --scenario server"),
        (["--scenario", "offline", "--latency-bound", "20"], "--latency-bound needs --scenario server"),
        (
            ["--speedup-precision", "5", "--timing", "sequential"],
            "--speedup-precision 5: --timing sequential times each backend apart, with no cycles to pair",
        ),
        (
            ["--rounds", "40", "--timing", "sequential"],
            "--rounds 40: --timing sequential times each backend in one round; use --timing interleaved",
        ),
    ],
)
def test_bad_run_arguments_are_one_line_exit_2(args, expected, capsys, tmp_path):
    assert main(["run", "--backends", "torch-eager", "--out", str(tmp_path / "results"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expected in err
    assert not (tmp_path / "results").exists()  # a usage error touches nothing on disk


def test_missing_data_folder_is_one_line_and_creates_no_run_folder(capsys, tmp_path):
    results = tmp_path / "results"
    code = main(
        [
            "run",
            "--suite",
            "dsb2018",
            "--data-dir",
            str(tmp_path / "nowhere"),
            "--backends",
            "torch-eager",
            "--out",
            str(results),
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "nowhere" in err and "does not exist" in err
    assert not results.exists()


def test_resume_refuses_other_run_options_even_at_their_defaults(capsys, tmp_path):
    """A resumed run keeps its settings: an option beside --resume would be ignored, so it is an error."""
    run_dir = tmp_path / "results" / "run1"
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text("{}")
    before = sorted(p.name for p in run_dir.iterdir())
    assert main(["run", "--resume", str(run_dir), "--threads", "1", "--no-gradcam"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.endswith("drop --threads, --no-gradcam")
    assert sorted(p.name for p in run_dir.iterdir()) == before


def test_a_broken_run_file_is_one_line_exit_2(capsys, tmp_path):
    run_dir = tmp_path / "run1"
    run_dir.mkdir()
    (run_dir / "run.json").write_text("{}")
    assert main(["run", "--resume", str(run_dir), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "run.json is unreadable (KeyError" in err


def test_a_run_folder_from_before_interleaved_timing_resumes_sequentially(tmp_path):
    import json
    from dataclasses import asdict

    from bench.run.config import RunConfig, load_run_config, save_run_config

    save_run_config(RunConfig(data_dir=tmp_path / "data"), tmp_path)
    assert load_run_config(tmp_path).timing.mode == "interleaved"
    assert load_run_config(tmp_path).data_dir == (tmp_path / "data").resolve()
    data = json.loads((tmp_path / "run.json").read_text())
    del data["timing"]["mode"]
    (tmp_path / "run.json").write_text(json.dumps(data))
    old = load_run_config(tmp_path)
    assert old.timing.mode == "sequential"
    assert asdict(old.timing) == {**asdict(RunConfig().timing), "mode": "sequential"}


def test_the_scenario_travels_in_run_json_only_when_one_was_asked_for(tmp_path):
    """A single-stream run's run.json is what it always was (merge compares run.json files); an offline or
    server run's keeps its settings, and --resume finishes it with them."""
    import json

    from bench.measure.scenarios import ScenarioConfig
    from bench.run.config import RunConfig, load_run_config, save_run_config

    save_run_config(RunConfig(), tmp_path)
    assert "scenario" not in json.loads((tmp_path / "run.json").read_text())
    assert load_run_config(tmp_path).scenario == ScenarioConfig()
    server = ScenarioConfig("server", 25.0, 1.0, (1, 2))
    save_run_config(RunConfig(scenario=server), tmp_path)
    assert load_run_config(tmp_path).scenario == server


def _run_configs(monkeypatch, tmp_path, *extras: list[str]) -> list:
    """The RunConfig each `segbench run` with these extra options would start (the run itself stopped there)."""
    seen = []

    class Started(Exception):
        pass

    def started(config, **kwargs):
        seen.append(config)
        raise Started

    monkeypatch.setattr("bench.run.runner.run_benchmark", started)
    for extra in extras:
        with pytest.raises(Started):
            main(["run", "--backends", "torch-eager", "--out", str(tmp_path), "--quiet", *extra])
    return seen


def test_the_scenario_options_become_the_run_configuration(tmp_path, monkeypatch):
    server_options = ["--scenario", "server", "--latency-bound", "12.5", "--scenario-time", "0.5"]
    configs = _run_configs(monkeypatch, tmp_path, [*server_options, "--offline-batch-sizes", "2,8"], [])
    server, plain = (config.scenario for config in configs)
    assert (server.name, server.latency_bound_ms, server.duration_s) == ("server", 12.5, 0.5)
    assert server.batch_sizes == (2, 8)
    assert plain.name == "single-stream" and not plain.active


def test_the_fp32_reference_comes_first_not_merely_the_reference_backend():
    from bench.run.config import RunConfig

    specs = RunConfig(backends=("ort-fp32", "torch-eager:bf16", "torch-eager:fp32", "ort-qdq-int8")).backend_specs()
    assert specs == ("torch-eager:fp32", "ort-fp32", "torch-eager:bf16", "ort-qdq-int8")
    assert RunConfig(backends=("ort-fp32", "torch-eager")).backend_specs()[0] == "torch-eager"


def test_gradcam_layer_aliases_resolve_to_module_paths():
    from bench.gradcam.method import layer_path, resolve_layer
    from bench.models import create_model

    model = create_model("deeplabv3plus-resnet18", 3, 4)
    assert layer_path(model, "encoder") == "backbone.layer4"
    assert layer_path(model, "aspp.project") == "aspp.project"  # a module path passes through
    assert resolve_layer(model, layer_path(model, "encoder")) is model.backbone.layer4


def test_an_unknown_gradcam_method_is_one_line_exit_2(capsys, tmp_path):
    with pytest.raises(SystemExit) as exited:
        main(["run", "--gradcam-method", "lrp", "--out", str(tmp_path / "results")])
    assert exited.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--gradcam-method: invalid choice: 'lrp'" in err
    assert not (tmp_path / "results").exists()


TUNE = ["tune", "--suite", "synthetic-nuclei", "--model", "unet", "--backend", "ort-qdq-int8", "--budget", "dice>=0"]


@pytest.mark.parametrize("command", [["run", "--backends", "torch-eager"], TUNE, ["train"]])
@pytest.mark.parametrize("value", ["train=1.5", "validation=10", "evaluation", "tuning=some"])
def test_a_bad_split_option_is_one_line_exit_2(command, value, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("SEGBENCH_CACHE", str(tmp_path / "cache"))
    out = [] if command == ["train"] else ["--out", str(tmp_path / "results")]
    assert main([*command, *out, "--split", "train=0.8", "--split", value]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith(f"segbench: error: --split '{value}' is not valid; expected NAME=COUNT with NAME one of")
    assert not (tmp_path / "results").exists() and not (tmp_path / "cache").exists()


def test_a_split_a_suite_cannot_take_names_the_suite_file(capsys, tmp_path):
    results = tmp_path / "results"
    assert main(["run", "--backends", "torch-eager", "--out", str(results), "--split", "evaluation=all"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and not results.exists()
    assert "synthetic-nuclei.toml: --split evaluation=all is not valid for the procedural source" in err


def test_resume_refuses_a_split_option(capsys, tmp_path):
    run_dir = tmp_path / "results" / "run1"
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text("{}")
    assert main(["run", "--resume", str(run_dir), "--split", "evaluation=8"]) == 2
    assert capsys.readouterr().err.strip().endswith("drop --split")
    assert main(["tune", "--resume", str(run_dir), "--split", "evaluation=8"]) == 2
    assert capsys.readouterr().err.strip().endswith("drop --split")


@pytest.mark.parametrize("value", ["0", "100", "-5", "tight"])
def test_a_bad_speedup_precision_is_one_line_exit_2(value, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_:
        main(["run", "--speedup-precision", value, "--out", str(tmp_path / "results")])
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and len(err.splitlines()) == 1
    assert "--speedup-precision" in err and f"'{value}'" in err and not (tmp_path / "results").exists()


@pytest.mark.parametrize("command", ["run", "tune"])
@pytest.mark.parametrize("value", ["1", "0", "-4", "2.5", "many"])
def test_a_bad_round_count_is_one_line_exit_2(command, value, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--rounds", value, "--out", str(tmp_path / "results")])
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and len(err.splitlines()) == 1
    assert "--rounds" in err and f"'{value}'" in err and not (tmp_path / "results").exists()


def test_rounds_reach_the_timing_of_run_and_tune_and_split_the_minimum(tmp_path, monkeypatch):
    """--rounds N: every cell's (tune: step's) minimum time and count in N rounds, one per cycle; left out,
    TimingConfig's 10."""
    from bench.cli import build_parser
    from bench.cli.tune import tune_config
    from bench.measure.timing import TimingConfig

    given, default = (config.timing for config in _run_configs(monkeypatch, tmp_path, ["--rounds", "40"], []))
    assert (given.rounds, default.rounds) == (40, TimingConfig().rounds) == (40, 10)
    assert given.round_budget() == (3.0 / 40, 1)  # --min-time 3, --min-iters 30: 75 ms and a call a round
    assert default.round_budget() == (0.3, 3)
    tune = ["tune", "--suite", "synthetic-nuclei", "--model", "unet", "--backend", "ort-qdq-int8", "--rounds", "12"]
    parsed = build_parser().parse_args([*tune, "--out", str(tmp_path)])
    assert tune_config(parsed).shared.timing.rounds == 12


@pytest.mark.parametrize("value", ["-1", "soon", "inf"])
def test_a_bad_wait_for_quiet_is_one_line_exit_2(value, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_:
        main(["run", "--wait-for-quiet", value, "--out", str(tmp_path / "results")])
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and "--wait-for-quiet" in err and f"'{value}'" in err
    assert not (tmp_path / "results").exists()


def test_the_wait_for_quiet_default_comes_from_the_environment(capsys, tmp_path, monkeypatch):
    from bench.cli.options import DEFAULT_QUIET_WAIT_S, QUIET_WAIT_ENV, _quiet_wait_s

    monkeypatch.setenv(QUIET_WAIT_ENV, "7.5")
    assert _quiet_wait_s(None) == 7.5 and _quiet_wait_s(0.0) == 0.0  # the option wins over the environment
    monkeypatch.delenv(QUIET_WAIT_ENV)
    assert _quiet_wait_s(None) == DEFAULT_QUIET_WAIT_S
    monkeypatch.setenv(QUIET_WAIT_ENV, "later")
    assert main(["run", "--backends", "torch-eager", "--out", str(tmp_path / "results")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"environment variable {QUIET_WAIT_ENV}: 'later' is not a number" in err
    assert not (tmp_path / "results").exists()


def test_a_bad_priority_is_one_line_exit_2(capsys, tmp_path, monkeypatch):
    from bench.cli.options import PRIORITY_ENV, _priority

    with pytest.raises(SystemExit) as exit_:
        main(["run", "--priority", "urgent", "--out", str(tmp_path / "results")])
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and "--priority" in err and "'urgent'" in err
    monkeypatch.setenv(PRIORITY_ENV, "high")
    assert _priority(None) == "high" and _priority("normal") == "normal"  # the option wins over the environment
    monkeypatch.setenv(PRIORITY_ENV, "urgent")
    assert main(["run", "--backends", "torch-eager", "--out", str(tmp_path / "results")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"environment variable {PRIORITY_ENV}: 'urgent', expected one of" in err
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("dice_drift>0", "--fail-on 'dice_drift>0' is not valid; expected COLUMN>=NUMBER or COLUMN<=NUMBER"),
        ("dise_drift>=0", "--fail-on 'dise_drift>=0': no column 'dise_drift' is declared"),
        ("latency_iterations>=30", "'latency_iterations' is informational"),
        ("iou_nucleos>=0.5", "no suite of this run has a column 'iou_nucleos'"),
    ],
)
def test_a_bad_fail_on_is_one_line_exit_2_before_anything_runs(value, expected, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("SEGBENCH_CACHE", str(tmp_path / "cache"))
    results = tmp_path / "results"
    assert (
        main(["run", "--backends", "torch-eager", "--out", str(results), "--fail-on", "dice>=0", "--fail-on", value])
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("segbench: error: ") and expected in err
    assert not results.exists() and not (tmp_path / "cache").exists()  # nothing trained, nothing written


def test_fail_on_is_taken_beside_resume_and_checked_against_the_resumed_run(capsys, tmp_path):
    """--fail-on changes no measurement, so a resume takes it (it is not saved in run.json)."""
    from bench.run.config import RunConfig, save_run_config

    run_dir = tmp_path / "results" / "run1"
    run_dir.mkdir(parents=True)
    save_run_config(RunConfig(gradcam=False), run_dir)
    before = sorted(p.name for p in run_dir.iterdir())
    assert main(["run", "--resume", str(run_dir), "--fail-on", "gradcam_pearson>=0.9"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "segbench: error: --fail-on 'gradcam_pearson>=0.9': a Grad-CAM column, but the run has --no-gradcam"
    assert sorted(p.name for p in run_dir.iterdir()) == before
    assert "fail_on" not in (run_dir / "run.json").read_text()


def test_tune_exits_1_when_a_variant_ended_in_error_even_when_the_budget_is_met(capsys, tmp_path, monkeypatch):
    from bench.tune import runner
    from bench.tune.records import TuneOutcome

    outcome = TuneOutcome(
        tmp_path,
        True,
        "--option ort-qdq-int8.float_layers=head",
        "every budget holds with 1 layer(s) in float",
        errors=("sensitivity layer features.0: error: worker died (killed by SIGABRT)",),
    )
    monkeypatch.setattr(runner, "run_tune", lambda config, log, resume, on_folder: outcome)
    assert main([*TUNE, "--out", str(tmp_path), "--quiet"]) == 1
    captured = capsys.readouterr()
    assert "--option ort-qdq-int8.float_layers=head" in captured.out  # the choice still stands, and is printed
    assert captured.err.splitlines() == [
        "segbench tune: 1 cell(s) ended in error (exit 1):",
        "segbench tune:   sensitivity layer features.0: error: worker died (killed by SIGABRT)",
    ]
    monkeypatch.setattr(
        runner, "run_tune", lambda config, log, resume, on_folder: TuneOutcome(tmp_path, True, None, "ok")
    )
    assert main([*TUNE, "--out", str(tmp_path), "--quiet"]) == 0


def test_run_and_tune_take_the_options_they_share_as_one_record(tmp_path, monkeypatch):
    """A tune measures with the settings a run given the same options would: one SharedSettings."""
    from bench.run.settings import SharedSettings
    from bench.tune import runner

    seen = []

    class Started(Exception):
        pass

    def started(config, **kwargs):
        seen.append(config)
        raise Started

    monkeypatch.setattr("bench.run.runner.run_benchmark", started)
    monkeypatch.setattr(runner, "run_tune", started)
    monkeypatch.setenv("SEGBENCH_WAIT_FOR_QUIET", "7")
    (tmp_path / "w.pt").write_bytes(b"")
    shared = [
        *["--threads", "2", "--min-time", "0.2", "--min-iters", "5", "--warmup", "0.05", "--timeout", "60"],
        *["--data-dir", str(tmp_path), "--split", "tuning=4", "--out", str(tmp_path / "out"), "--priority", "normal"],
        *["--weights", str(tmp_path / "w.pt"), "--quiet"],
    ]
    for command in (["run", "--backends", "torch-eager"], TUNE):
        with pytest.raises(Started):
            main([*command, *shared])
    run, tune = seen
    assert tune.shared == SharedSettings(**{name: getattr(run, name) for name in SharedSettings.__dataclass_fields__})
    assert (tune.shared.threads, tune.shared.cell_timeout_s, tune.shared.progress) == (2, 60.0, False)
    assert (tune.shared.timing.min_iters, tune.shared.timing.priority, tune.shared.timing.quiet_wait_s) == (
        5,
        "normal",
        7,
    )
    assert tune.shared.splits == {"tuning": 4} and tune.shared.weights == tmp_path / "w.pt"
    with pytest.raises(Started):
        main(["run", "--backends", "torch-eager", *shared, "--batch-size", "3", "--timing", "sequential"])
    assert (seen[-1].batch_size, seen[-1].timing.mode) == (3, "sequential")  # what only run takes


class _Part:
    """A stage record standing in for the real ones: it fills the columns it is given."""

    def __init__(self, **columns):
        self._columns = columns

    def columns(self):
        return dict(self._columns)


def _run_folder(path):
    """A small run folder as `segbench run` leaves it: results, samples, env.json, run.json."""
    import numpy as np

    from bench.results.row import Row
    from bench.results.store import RunStore
    from bench.run.config import RunConfig, save_run_config

    store = RunStore(path)
    store.write_env({"cpu_model": "x", "logical_cores": 2, "threads": 1, "date": "2026-12-01T00:00:00+00:00"})
    row = Row("synthetic-nuclei", "unet", "torch-eager", "fp32", "cpu", "ok", parts=(_Part(latency_p50_ms=1.0),))
    store.append(row, np.array([1_000_000, 1_100_000, 1_200_000]))
    save_run_config(RunConfig(results_root=path.parent, backends=("torch-eager",)), path)
    return path


def _damage(path):
    if path.suffix == ".parquet":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])  # a copy cut short
    else:
        path.write_text(path.read_text()[:-5])  # JSON that ends mid-object


# command (RUN: the damaged folder, OTHER: an intact one, OUT: where the command would write), damaged file
DAMAGED_FILE_COMMANDS = (
    [(["compare", "OTHER", "RUN"], name) for name in ("results.parquet", "samples.parquet", "env.json")]
    + [(["report", "RUN"], name) for name in ("results.parquet", "samples.parquet", "env.json")]
    + [(["history", "ROOT", "--out", "OUT/history.html"], name) for name in ("results.parquet", "env.json")]
    + [
        (["export", "RUN", "--format", "pytest-benchmark", "--out", "OUT/bench.json"], name)
        for name in ("samples.parquet", "env.json")
    ]
    + [
        (["export", "RUN", "--format", export_format, "--out", "OUT/bench.json"], "results.parquet")
        for export_format in ("bmf", "github-action-benchmark")
    ]
    + [
        (["merge", "RUN", "OTHER", "--out", "OUT/merged"], name)
        for name in ("samples.parquet", "run.json", "per_backend.json")
    ]
    + [(["run", "--resume", "RUN", "--quiet"], name) for name in ("results.parquet", "run.json")]
)


@pytest.mark.parametrize("command,damaged", DAMAGED_FILE_COMMANDS)
def test_a_damaged_run_file_is_one_line_naming_it_exit_2_and_nothing_written(command, damaged, tmp_path, capsys):
    root, out = tmp_path / "results", tmp_path / "out"
    out.mkdir()
    run, other = _run_folder(root / "run1"), _run_folder(root / "run2")
    if damaged == "per_backend.json":
        (run / damaged).write_text('{"cell": {"options": ')
    else:
        _damage(run / damaged)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    names = {"RUN": str(run), "OTHER": str(other), "ROOT": str(root), "OUT": str(out)}
    args = [names.get(a, a.replace("OUT", str(out))) for a in command]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"segbench: error: {run / damaged}: ") and "Traceback" not in err
    assert "damaged or unreadable" in err or "is unreadable" in err  # run.json says which key, or that it is broken
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_version_prints_the_one_version_and_exits_0(capsys):
    import bench

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"segbench {bench.__version__}\n"


def _commands() -> dict:
    from bench.cli import build_parser

    parser = build_parser()
    return next(a for a in parser._actions if a.choices and "run" in a.choices).choices


def test_every_option_of_every_command_has_help_and_every_command_examples():
    for name, command in _commands().items():
        missing = [a.option_strings[0] for a in command._actions if a.option_strings and not a.help]
        assert not missing, f"segbench {name}: options without help: {missing}"
        assert command.epilog and command.epilog.startswith("examples:\n  segbench "), name


def test_run_help_shows_defaults_groups_and_examples(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["run", "--help"])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # the formatter wraps lines
    assert "minimum timed seconds per cell (default: 3.0)" in text
    assert "(default: None)" not in text and "(default: [])" not in text and "(default: False)" not in text
    for group in ("what to run:", "timing:", "data and model:", "Grad-CAM:", "profiling:", "decision and bounds:"):
        assert group in text
    assert "where it runs:" in text and "examples: segbench run " in text


@pytest.mark.parametrize("command", ["run", "tune"])
def test_quiet_and_verbose_together_are_one_line_exit_2(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--quiet", "--verbose"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("segbench: error: argument --verbose: not allowed with argument --quiet")
    assert len(err.splitlines()) == 1
