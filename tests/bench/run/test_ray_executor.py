"""`segbench run --executor ray` on a local two-node Ray cluster: placement by label, every node's own
run folder with --per-node, a node killed mid-group, and --resume on a new matching node."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from bench.cli import main
from bench.run.ray_executor import Node
from tests.bench.test_backend import PLUGIN

REPO = Path(__file__).resolve().parents[3]
RUN = [
    "run",
    "--executor",
    "ray",
    "--backends",
    "torch-eager,dummy-threshold",
    "--no-gradcam",
    "--threads",
    "1",
    "--min-time",
    "0.2",
    "--min-iters",
    "5",
    "--warmup",
    "0.05",
]


def test_where_matches_labels_and_custom_resources() -> None:
    node = Node("abc123456789", "10.0.0.1", {"cpu": "epyc"}, {"segbench": 1.0, "h100": 1.0})
    assert node.matches({}) and node.matches({"cpu": "epyc"}) and node.matches({"resource": "h100"})
    assert not node.matches({"cpu": "xeon"}) and not node.matches({"resource": "a100"})
    assert node.name == "10.0.0.1-abc12345"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--where", "cpu=epyc"], "--where needs --executor ray"),
        (["--per-node"], "--per-node needs --executor ray"),
        (["--executor", "ray", "--where", "epyc"], "--where 'epyc' is not valid; expected KEY=VALUE"),
    ],
)
def test_ray_options_are_checked_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert main(["run", "--out", str(tmp_path / "out"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and not (tmp_path / "out").exists()


def test_without_ray_the_executor_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    assert main(["run", "--executor", "ray", "--out", str(tmp_path / "out")]) == 2
    assert "pip install 'segbench[ray]'" in capsys.readouterr().err and not (tmp_path / "out").exists()


@pytest.fixture
def cluster(session_cache: Path, monkeypatch: pytest.MonkeyPatch):
    """A head (label kind=head) and a second node (kind=worker, and a custom resource), each offering one
    segbench slot; the test plugin importable on both. Stopped at the end, whatever happens."""
    ray_utils = pytest.importorskip("ray.cluster_utils")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(PLUGIN), str(REPO)]))
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    monkeypatch.setenv("RAY_health_check_period_ms", "500")  # a removed node is noticed in ~2 s, not ~30 s
    monkeypatch.setenv("RAY_health_check_failure_threshold", "3")
    small = {"num_cpus": 1, "object_store_memory": 80 * 2**20}
    cluster = ray_utils.Cluster(
        initialize_head=True,
        head_node_args={**small, "resources": {"segbench": 1}, "labels": {"kind": "head"}, "include_dashboard": False},
    )
    try:
        cluster.worker = cluster.add_node(**small, resources={"segbench": 1, "fast-disk": 1}, labels={"kind": "worker"})
        cluster.wait_for_nodes()
        yield cluster
    finally:
        cluster.shutdown()


def _segbench(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PLUGIN), str(REPO)])}
    return subprocess.Popen(
        [sys.executable, "-m", "bench.cli", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _labels(run_dir: Path) -> dict[str, str]:
    return {node: env["ray_labels"]["kind"] for node, env in json.loads((run_dir / "nodes.json").read_text()).items()}


def _matrix(folder: Path, groups: int = 2) -> list[str]:
    """Comparison groups that need no training: copies of the nuclei suite (given as paths, so the suite
    files travel with the tasks) x a tiny user model with --weights."""
    torch = pytest.importorskip("torch")
    from tests.bench.models.byo_fixture import TinyNet

    torch.manual_seed(0)
    torch.save(TinyNet(1, 2).state_dict(), folder / "weights.pt")
    text = (REPO / "suites" / "synthetic-nuclei.toml").read_text()
    suites = []
    for name in ("nuclei-a", "nuclei-b")[:groups]:
        (folder / f"{name}.toml").write_text(text.replace('name = "synthetic-nuclei"', f'name = "{name}"'))
        suites.append(str(folder / f"{name}.toml"))
    return [*RUN, "--suite", ",".join(suites), "--models", "tests.bench.models.byo_fixture:tiny_net"] + [
        "--weights",
        str(folder / "weights.pt"),
        "--split",
        "train=8",
        "--split",
        "evaluation=8",
    ]


def _finish(process: subprocess.Popen[str], code: int = 0) -> None:
    _, err = process.communicate(timeout=400)
    assert process.returncode == code, err


@pytest.mark.slow
@pytest.mark.integration
def test_a_small_matrix_on_a_two_node_cluster(cluster, tmp_path: Path) -> None:
    args = [*_matrix(tmp_path), "--address", cluster.address]
    one_group = [*_matrix(tmp_path, groups=1), "--address", cluster.address]
    # --per-node: the whole matrix once on every node, each node's own run folder (compare --by machine)
    _finish(_segbench([*one_group, "--per-node", "--out", str(tmp_path / "per-node")], tmp_path))
    folders = sorted((tmp_path / "per-node").glob("2*/nodes/*"))
    assert len(folders) == 2
    kinds = set()
    for folder in folders:
        kinds.add(json.loads((folder / "env.json").read_text())["ray_labels"]["kind"])
        rows = pd.read_parquet(folder / "results.parquet")
        assert len(rows) == 2 and set(rows.status) == {"ok"} and set(rows.node) == {folder.name}
        assert rows.speedup_vs_fp32.notna().all()
    assert kinds == {"head", "worker"}
    assert main(["compare", str(folders[0]), str(folders[1]), "--by", "machine"]) == 0

    # the worker removed while its group runs: that group's rows say so, the head's group finishes
    worker_id = cluster.worker.node_id[:8]
    killed = _segbench([*args, "--out", str(tmp_path / "kill")], tmp_path)
    assert killed.stderr is not None
    for line in killed.stderr:
        if "started on node" in line and worker_id in line:
            break
    time.sleep(3)  # the group is loading and timing on the worker
    cluster.remove_node(cluster.worker, allow_graceful=False)
    _finish(killed, 1)  # its lost group's cells ended in error
    run_dir = next((tmp_path / "kill").glob("2*"))
    rows = pd.read_parquet(run_dir / "results.parquet")
    lost = rows[rows.status.str.startswith("error: node lost")]
    assert len(rows) == 4 and len(lost) == 2 and lost.suite.nunique() == 1, list(rows.status)
    assert set(rows[~rows.index.isin(lost.index)].status) == {"ok"}

    # --resume: only the failed group again, on a live node (the head, or a new worker)
    cluster.add_node(num_cpus=1, object_store_memory=80 * 2**20, resources={"segbench": 1}, labels={"kind": "worker"})
    cluster.wait_for_nodes()
    kept = rows[rows.status == "ok"].set_index("backend").latency_p50_ms
    _finish(_segbench(["run", "--resume", str(run_dir)], tmp_path))
    rows = pd.read_parquet(run_dir / "results.parquet")
    assert len(rows) == 4 and set(rows.status) == {"ok"}, list(rows.status)
    again = rows[rows.suite == lost.suite.iloc[0]]
    assert again.speedup_vs_fp32.notna().all() and worker_id not in set(again.node)
    untouched = rows[rows.suite != lost.suite.iloc[0]].set_index("backend").latency_p50_ms
    assert untouched.sort_index().equals(kept.sort_index())  # the finished group was not measured again

    # --where: only the node labelled kind=worker (the new one) measures
    _finish(_segbench([*one_group, "--where", "kind=worker", "--out", str(tmp_path / "where")], tmp_path))
    where_dir = next((tmp_path / "where").glob("2*"))
    assert set(pd.read_parquet(where_dir / "results.parquet").status) == {"ok"}
    assert set(_labels(where_dir).values()) == {"worker"}
    assert json.loads((where_dir / "env.json").read_text())["nodes"] == sorted(_labels(where_dir))  # who measured
