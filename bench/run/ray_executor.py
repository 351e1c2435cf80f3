"""`segbench run --executor ray`: the matrix handed to a Ray cluster, one whole machine per task.

Two cells timed on one machine at once disturb each other, so the unit of scheduling is a machine: each
node offers one `segbench` slot (a custom resource, `ray start --resources '{"segbench": 1}'`) and every
task takes it. A task is one comparison group (suite, model, device, batch size: the backends timed
interleaved, whose same-run speedups need each other), pinned by the driver to a free matching node
(`NodeAffinitySchedulingStrategy`, hard), so the driver, not Ray's spill-over policy, decides where
cells run and knows which node was lost.

Inside a task the group runs exactly as locally: `python -m bench.run.ray_task CONFIG OUT` on the
node starts an ordinary `run_benchmark` (fresh worker processes, the same timing and columns) in a
temporary folder, and the task returns that sub-run's files. The driver trains or finds each reference
checkpoint once and ships its bytes (and the suite file, and a user's ONNX) through Ray's object store;
the data of a real-data suite must be at the `--data-dir` path on every node (a shared file system or a
copy), since data sets are too big to send per task. Rows stream into the driver's run folder as each
task finishes, with the node that measured them (`node`, `hostname`, `machine` columns) and every node's
`env.json` in `nodes.json`; with `--per-node` each node gets its own run folder under `nodes/`, so
`segbench compare --by machine nodes/A nodes/B` is the hardware report.

Over 400 lines (419) for now: connecting, choosing nodes, shipping a group and taking its files back are
one protocol with Ray's API, tested against one local cluster (tests/bench/run/test_ray_executor.py);
splitting it would spread that protocol over modules that only make sense together.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bench.environment import combined_fingerprint, machine_label
from bench.errors import UsageError
from bench.results.row import Row, cell_id
from bench.results.store import RunStore
from bench.run.config import RunConfig, save_run_config
from bench.run.matrix import BackendPlan, CellSpec, group_cells

SLOT = "segbench"  # the custom resource each benchmark node offers once
SETUP_MARGIN_S = 300.0  # a task's deadline: --timeout per cell plus this, for start-up and references
RESULT_FILES = ("results.parquet", "samples.parquet", "per_image.parquet", "gradcam.parquet", "per_backend.json")


def ray_module() -> Any:
    """Ray, or a one-line usage error saying how to get it."""
    try:
        import ray
    except ImportError:
        raise UsageError("--executor ray needs Ray: pip install 'segbench[ray]'") from None
    return ray


@dataclass(frozen=True)
class Node:
    """A live Ray node with a segbench slot."""

    node_id: str
    address: str
    labels: dict[str, str]
    resources: dict[str, float]

    @property
    def name(self) -> str:
        """A folder-safe name: the address and the node id's start (two nodes may share a host)."""
        return f"{self.address}-{self.node_id[:8]}".replace(":", "-")

    def matches(self, where: dict[str, str]) -> bool:
        """`--where KEY=VALUE`: a node label (`ray start --labels KEY=VALUE`), or `resource=NAME` for a
        node offering the custom resource NAME."""
        return all(
            (value in self.resources) if key == "resource" else self.labels.get(key) == value
            for key, value in where.items()
        )


def benchmark_nodes(ray: Any, where: dict[str, str]) -> list[Node]:
    """The live nodes that offer a segbench slot and match `--where`; a usage error when there is none."""
    nodes = [
        Node(n["NodeID"], n.get("NodeManagerAddress", "node"), dict(n.get("Labels") or {}), dict(n["Resources"]))
        for n in ray.nodes()
        if n.get("Alive") and n.get("Resources", {}).get(SLOT, 0) >= 1
    ]
    matching = [n for n in nodes if n.matches(where)]
    if not matching:
        wanted = " ".join(f"{k}={v}" for k, v in where.items()) or "(any)"
        raise UsageError(
            f"--where {wanted}: no live Ray node offers a '{SLOT}' slot and matches (nodes with a slot: "
            f"{', '.join(f'{n.name} {n.labels}' for n in nodes) or 'none'}; "
            f"start each with ray start --resources '{{\"{SLOT}\": 1}}' --labels KEY=VALUE)"
        )
    return matching


@dataclass(frozen=True)
class GroupTask:
    """One comparison group: its cells (identity, for error rows) and the sub-run that measures them."""

    cells: tuple[CellSpec, ...]
    config: RunConfig  # one suite, one model, the group's backends, executor local
    suite_text: str | None  # the suite file's text when the suite was given as a path
    checkpoint: Path
    onnx: Path | None

    @property
    def keys(self) -> set[str]:
        return {c.key for c in self.cells}

    @property
    def label(self) -> str:
        first = self.cells[0]
        return f"{first.suite} / {first.model} ({len(self.cells)} backend(s))"


def group_tasks(
    config: RunConfig, cells: list[tuple[CellSpec, BackendPlan]], entries: dict[str, str]
) -> list[GroupTask]:
    """The cells as Ray tasks, one per (suite, model, device, batch size); `entries` maps a suite's name to
    the --suite entry (a name or a TOML path)."""
    tasks = []
    for members in group_cells(cells):
        first = members[0][0]
        entry = entries[first.suite]
        names = {plan.name for _, plan in members}
        sub = replace(
            config,
            suites=(entry,),
            models=(first.model,),
            batch_size=first.batch_size,  # one group: one batch size of a --batch-sizes sweep
            batch_sizes=(),
            backends=tuple(f"{plan.name}:{plan.precision}" for _, plan in members),
            backend_options={k: v for k, v in config.backend_options.items() if k in names},
            weights=None,
            checkpoint=first.checkpoint,
            executor="local",
            ray_address=None,
            where={},
            per_node=False,
            progress=False,
        )
        text = Path(entry).read_text() if entry.endswith(".toml") else None
        tasks.append(GroupTask(tuple(spec for spec, _ in members), sub, text, first.checkpoint, first.onnx))
    return tasks


def run_group_on_node(payload: dict[str, Any]) -> dict[str, Any]:
    """The Ray task: write the shipped files, run the group as an ordinary local run in a fresh process,
    and return the sub-run's files (read on the node, where they were written)."""
    import ray

    node_id = ray.get_runtime_context().get_node_id()
    with tempfile.TemporaryDirectory(prefix="segbench-task-") as tmp:
        root = Path(tmp)
        config_dir = root / "config"
        config_dir.mkdir()
        run = json.loads(payload["run_json"])
        (root / "checkpoint.pt").write_bytes(payload["checkpoint"])
        run["checkpoint"] = str(root / "checkpoint.pt")
        if payload.get("suite_text") is not None:
            (root / "suite.toml").write_text(payload["suite_text"])
            run["suites"] = [str(root / "suite.toml")]
        if payload.get("onnx") is not None:
            (root / "model.onnx").write_bytes(payload["onnx"])
            run["onnx"] = str(root / "model.onnx")
        (config_dir / "run.json").write_text(json.dumps(run))
        process = subprocess.run(
            [sys.executable, "-m", "bench.run.ray_task", str(config_dir), str(root / "results")],
            capture_output=True,
            text=True,
            preexec_fn=_die_with_parent,
        )
        folders = [p for p in (root / "results").glob("*") if p.is_dir() and not p.is_symlink()]
        files: dict[str, bytes] = {}
        if folders:
            for path in folders[0].rglob("*"):
                if path.is_file() and (path.name in (*RESULT_FILES, "env.json") or path.parent.name == "logs"):
                    files[str(path.relative_to(folders[0]))] = path.read_bytes()
    return {
        "node_id": node_id,
        "returncode": process.returncode,
        "stderr": process.stderr[-4000:],
        "files": files,
    }


def _connect(ray: Any, address: str | None) -> None:
    """`--address ADDR` (default: the cluster `ray start` made on this machine, "auto"), or "local" for a
    one-node cluster of this machine started for the run."""
    try:
        if address == "local":
            ray.init(resources={SLOT: 1}, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
        else:
            ray.init(address=address or "auto", log_to_driver=False, logging_level="ERROR")
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise UsageError(
            f"--address {address or 'auto'}: cannot connect to a Ray cluster ({str(exc).splitlines()[0]}); "
            "start one with ray start --head, or use --address local"
        ) from None


def _die_with_parent() -> None:
    """In the group's process, before it starts: on Linux, be killed when the Ray worker that started it
    dies (a node that is removed or killed must not leave its benchmark running as an orphan)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


@dataclass
class _Running:
    task: GroupTask
    node: Node
    store: RunStore
    deadline: float


class RayExecutor:
    """The driver: hands groups to free matching nodes, collects rows as tasks finish, and turns a lost
    node or an overrun into error rows while the rest go on."""

    def __init__(self, config: RunConfig) -> None:
        self.ray = ray_module()
        self.config = config
        self.log: Callable[[str], None] = lambda message: None
        if not self.ray.is_initialized():
            _connect(self.ray, config.ray_address)
        self.nodes = benchmark_nodes(self.ray, config.where)
        self.remote = self.ray.remote(num_cpus=0, resources={SLOT: 1}, max_retries=0)(run_group_on_node)

    def run(
        self,
        cells: list[tuple[CellSpec, BackendPlan]],
        entries: dict[str, str],
        run_dir: Path,
        log: Callable[[str], None],
    ) -> Path:
        """Every group on a matching node (or, --per-node, on every one); reports written; the run folder."""
        from bench.report.files import write_reports

        self.log = log
        stores = self._stores(run_dir)
        self._schedule(group_tasks(self.config, cells, entries), stores)
        if not self.config.per_node:
            _describe_machines(run_dir)
        for folder in dict.fromkeys(store.run_dir for store in stores.values()):
            if (folder / "results.parquet").is_file():
                write_reports(folder)
        if self.config.per_node:
            log(
                "per node: "
                + ", ".join(str(store.run_dir) for store in stores.values())
                + " (segbench compare --by machine A B)"
            )
        return run_dir

    def _stores(self, run_dir: Path) -> dict[str, RunStore]:
        """Where each node's rows go: the run folder itself, or with --per-node a folder per node."""
        if not self.config.per_node:
            store = RunStore(run_dir)
            return {node.node_id: store for node in self.nodes}
        return {node.node_id: RunStore(run_dir / "nodes" / node.name) for node in self.nodes}

    def _schedule(self, tasks: list[GroupTask], stores: dict[str, RunStore]) -> None:
        todo: dict[Path, list[GroupTask]] = {}  # per store: one for the run, or one per node (--per-node)
        for store in {id(s): s for s in stores.values()}.values():  # --resume: only unfinished groups
            todo[store.run_dir] = [t for t in tasks if not _finished(store, t)]
            for task in todo[store.run_dir]:
                store.forget(task.keys)  # a failed or partial group is measured again, whole
        queues = {node.node_id: todo[stores[node.node_id].run_dir] for node in self.nodes}
        shared = not self.config.per_node
        pending = queues[self.nodes[0].node_id] if shared else []
        free = {node.node_id: node for node in self.nodes}
        running: dict[Any, _Running] = {}
        while True:
            for node_id, node in list(free.items()):
                queue = pending if shared else queues[node_id]
                if queue:
                    self._start(queue.pop(0), node, stores[node_id], running)
                    del free[node_id]
            if not running:
                break
            ready, _ = self.ray.wait(list(running), num_returns=1, timeout=2.0)
            for ref in ready:
                job = running.pop(ref)
                if self._collect(ref, job):
                    free[job.node.node_id] = job.node
                elif not shared:  # the node is gone: its own queue cannot run anywhere else
                    for task in queues[job.node.node_id]:
                        _error_rows(job.store, task, f"node lost ({job.node.name}) before this group started")
                    queues[job.node.node_id] = []
            now = time.monotonic()
            for ref, job in list(running.items()):
                if now > job.deadline:
                    self.ray.cancel(ref, force=True)
                    running.pop(ref)
                    limit = self.config.cell_timeout_s * len(job.task.cells) + SETUP_MARGIN_S
                    _error_rows(job.store, job.task, f"timed out after {limit:.0f} s on node {job.node.name}")
                    self.log(f"{job.task.label}: cancelled on node {job.node.name} (over --timeout)")
                    free[job.node.node_id] = job.node
        for task in pending:  # shared queue with every node lost
            _error_rows(stores[self.nodes[0].node_id], task, "no live node left to run it")

    def _start(self, task: GroupTask, node: Node, store: RunStore, running: dict[Any, _Running]) -> None:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        tmp = Path(tempfile.mkdtemp(prefix="segbench-config-"))
        try:
            save_run_config(task.config, tmp)
            run_json = (tmp / "run.json").read_text()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        payload = {
            "run_json": run_json,
            "checkpoint": task.checkpoint.read_bytes(),
            "suite_text": task.suite_text,
            "onnx": task.onnx.read_bytes() if task.onnx is not None else None,
        }
        ref = self.remote.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node.node_id, soft=False)).remote(
            payload
        )
        deadline = time.monotonic() + self.config.cell_timeout_s * len(task.cells) + SETUP_MARGIN_S
        running[ref] = _Running(task, node, store, deadline)
        self.log(f"{task.label}: started on node {node.name}")

    def _collect(self, ref: Any, job: _Running) -> bool:
        """Write a finished task's rows; False when its node was lost (error rows written instead)."""
        ray = self.ray
        try:
            result = ray.get(ref)
        except (ray.exceptions.NodeDiedError, ray.exceptions.WorkerCrashedError, ray.exceptions.ObjectLostError):
            _error_rows(job.store, job.task, f"node lost ({job.node.name})")
            self.log(f"{job.task.label}: node {job.node.name} lost")
            return not self._node_dead(job.node)
        except ray.exceptions.RayError as exc:
            _error_rows(job.store, job.task, f"ray task failed on {job.node.name}: {str(exc).splitlines()[0]}")
            return not self._node_dead(job.node)
        files = result["files"]
        if "results.parquet" not in files:
            tail = result["stderr"].strip().splitlines()[-1:] or ["no output"]
            _error_rows(job.store, job.task, f"the group's run failed on {job.node.name}: {tail[0]}")
            return True
        with tempfile.TemporaryDirectory(prefix="segbench-rows-") as tmp:
            for name, data in files.items():
                (Path(tmp) / name).parent.mkdir(parents=True, exist_ok=True)
                (Path(tmp) / name).write_bytes(data)
            env = json.loads(files["env.json"]) if "env.json" in files else {}
            columns = {"node": job.node.name, "hostname": env.get("hostname"), "machine": machine_label(env)}
            job.store.absorb(Path(tmp), columns)
            for log in (Path(tmp) / "logs").glob("*.log"):
                (job.store.run_dir / "logs").mkdir(exist_ok=True)
                shutil.copyfile(log, job.store.run_dir / "logs" / log.name)
        _record_node_env(job.store.run_dir, job.node, env, own_folder=self.config.per_node)
        self.log(f"{job.task.label}: done on node {job.node.name}")
        return True

    def _node_dead(self, node: Node) -> bool:
        alive = {n["NodeID"] for n in self.ray.nodes() if n.get("Alive")}
        return node.node_id not in alive


def _finished(store: RunStore, task: GroupTask) -> bool:
    """Every cell of the group has a row that is not an error (an error row is measured again on resume)."""
    rows = {cell_id(r): r for r in store.rows()}
    return all(key in rows and not str(rows[key]["status"]).startswith("error") for key in task.keys)


def _error_rows(store: RunStore, task: GroupTask, reason: str) -> None:
    store.forget(task.keys)
    for spec in task.cells:
        store.append(
            Row(
                suite=spec.suite,
                model=spec.model,
                backend=spec.backend,
                precision=spec.precision,
                device=spec.device,
                status=f"error: {reason}",
                batch_size=spec.batch_size,
                threads=spec.threads,
                checkpoint_digest=spec.checkpoint_digest or None,
            )
        )


def _describe_machines(run_dir: Path) -> None:
    """The run's env.json (written by the driver, about the driver) names the machines that measured: the
    nodes' fingerprint, joined with " | " where they differ (so `compare` and `history` see the nodes)."""
    from bench.cache import atomic_write_bytes

    nodes_file, env_file = run_dir / "nodes.json", run_dir / "env.json"
    if not nodes_file.is_file() or not env_file.is_file():
        return
    nodes = json.loads(nodes_file.read_text())
    env = json.loads(env_file.read_text())
    env.update(combined_fingerprint(list(nodes.values())), driver_hostname=env.get("hostname"), nodes=sorted(nodes))
    atomic_write_bytes(env_file, json.dumps(env, indent=2, default=str).encode())


def _record_node_env(run_dir: Path, node: Node, env: dict[str, Any], own_folder: bool) -> None:
    """A node folder's own env.json (--per-node), or the node's entry in the run's nodes.json."""
    from bench.cache import atomic_write_bytes

    env = {**env, "ray_node_id": node.node_id, "ray_labels": node.labels}
    if own_folder:
        atomic_write_bytes(run_dir / "env.json", json.dumps(env, indent=2, default=str).encode())
        return
    path = run_dir / "nodes.json"
    nodes = json.loads(path.read_text()) if path.is_file() else {}
    nodes[node.name] = env
    atomic_write_bytes(path, json.dumps(nodes, indent=2, default=str).encode())
