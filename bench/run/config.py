"""A run's configuration: what the command line asked for, checked in full before any work starts,
and saved as run.json so `--resume` finishes the run exactly as it was started."""

from __future__ import annotations

import importlib.util
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.backend import list_backends
from bench.cache import atomic_write_bytes
from bench.data.suite import Suite, get_suite
from bench.decide.decision import OBJECTIVES
from bench.errors import UsageError, unknown_name
from bench.measure.scenarios import SCENARIOS, SERVER, ScenarioConfig
from bench.measure.timing import TimingConfig
from bench.results.files import read_json
from bench.run.matrix import (
    REFERENCE_BACKEND,
    REFERENCE_PRECISION,
    BackendPlan,
    parse_backend_spec,
    plan_backends,
    size_text,
)
from bench.run.shard import Shard

DEVICES = ("cpu", "cuda")
EXECUTORS = ("local", "ray")  # bench.run.ray_executor for the second
DEFAULT_SUITE = "synthetic-nuclei"
DEFAULT_MODELS = ("unet",)
DEFAULT_BACKENDS: tuple[str, ...] = ()  # empty: every registered backend at its default precision
RUN_FILE = "run.json"


@dataclass(frozen=True)
class RunConfig:
    # threads, batch_size, timing, results_root, cell_timeout_s, progress, data_dir, weights, checkpoint and
    # splits are the settings tune takes too (bench/run/settings.py: SharedSettings, spread in by `fields()`);
    # they stay fields of their own here, in this order, because run.json is written from these fields
    suites: tuple[str, ...] = (DEFAULT_SUITE,)
    models: tuple[str, ...] = DEFAULT_MODELS
    backends: tuple[str, ...] = DEFAULT_BACKENDS
    device: str = "cpu"
    threads: int = 1
    batch_size: int = 1
    timing: TimingConfig = field(default_factory=TimingConfig)
    results_root: Path = Path("results")
    cell_timeout_s: float = 1800.0
    progress: bool = True
    backend_options: dict[str, dict[str, str]] = field(default_factory=dict)  # backend -> {option: value}
    data_dir: Path | None = None  # the suite's data folder (--data-dir); default: the suite's own search
    weights: Path | None = None  # a user's state dict for the one (external) model (--weights)
    checkpoint: Path | None = None  # a reference checkpoint from `segbench train --export` (--checkpoint)
    onnx: Path | None = None  # a user's fp32 ONNX file for the ONNX-based backends (--onnx)
    gradcam: bool = True
    gradcam_layers: tuple[str, ...] = ()  # module paths; empty: each model's default layer
    gradcam_method: str = "both"  # fd | fakequant | both (bench.backend.GRADCAM_CHOICES)
    threshold: float = 0.5  # foreground threshold of a single-channel (sigmoid) binary model
    splits: dict[str, int | float | str] = field(default_factory=dict)  # --split: counts replacing every suite's
    shard: Shard | None = None  # --shard K/N: this run measures part K of N of the matrix (bench/run/shard.py)
    executor: str = "local"  # local | ray (bench.run.ray_executor)
    ray_address: str | None = None  # --address: a Ray cluster ("auto" when None; "local" starts one here)
    where: dict[str, str] = field(default_factory=dict)  # --where KEY=VALUE: which Ray nodes run cells
    per_node: bool = False  # --per-node: the whole matrix once on every matching node
    profile: bool = False  # --profile: a profiled pass of every cell after its timing (profile.parquet)
    profile_calls: int = 20  # --profile-calls: calls in that pass
    budgets: tuple[str, ...] = ()  # --budget COLUMN>=X: what the decision holds every cell to (none: defaults)
    objective: str = "latency"  # --objective: what the decision ranks cells on (bench.decide.decision)
    # --scenario, --latency-bound, --scenario-time, --offline-batch-sizes (bench.measure.scenarios); run.json
    # keeps it only where it is not single-stream, so a run that asks for none writes what it always wrote
    scenario: ScenarioConfig = field(default_factory=ScenarioConfig)
    # --input-sizes and --batch-sizes (docs/sweeps.md): each (height, width) and batch size its own comparison
    # group; empty: the suite's own size, `batch_size`. run.json keeps them only where given
    input_sizes: tuple[tuple[int, int], ...] = ()
    batch_sizes: tuple[int, ...] = ()

    def shapes(self, suite: Suite) -> list[tuple[tuple[int, int] | None, int]]:
        """The (swept input size, batch size) of every comparison group of `suite`, in run order: the suite's
        own size first (None: it is the one whose quality and Grad-CAM are measured), then the sweep's
        other sizes as given; within each, the batch sizes as given."""
        sizes: list[tuple[int, int] | None] = [None]
        sizes += [size for size in dict.fromkeys(self.input_sizes) if size != tuple(suite.input_size)]
        return [(size, batch) for size in sizes for batch in dict.fromkeys(self.batch_sizes or (self.batch_size,))]

    def backend_specs(self) -> tuple[str, ...]:
        """The fp32 reference first (not merely the reference backend: `torch-eager:bf16` is not the
        reference), so its row heads the table and its p50 is known when the others' speedups are."""

        def is_reference(spec: str) -> bool:
            name, precision = parse_backend_spec(spec)
            return name == REFERENCE_BACKEND and precision in (None, REFERENCE_PRECISION)

        names = self.backends or tuple(list_backends())
        return tuple(sorted(names, key=lambda spec: not is_reference(spec)))

    def validate(self) -> list[BackendPlan]:
        """Check every name, file and value before any work starts, so a typo costs nothing; returns the
        backends, each loaded, checked and asked whether it can run here exactly once."""
        from bench.models import external

        if self.device not in DEVICES:
            raise UsageError(f"--device '{self.device}' is not valid; expected {' or '.join(DEVICES)}")
        if self.threads < 1:
            raise UsageError(f"--threads {self.threads} is not valid; expected at least 1")
        if self.timing.min_iters < 1:
            raise UsageError(f"--min-iters {self.timing.min_iters} is not valid; expected at least 1")
        if self.timing.warmup_s < 0:
            raise UsageError(f"--warmup {self.timing.warmup_s:g} is not valid; expected 0 or more seconds")
        if self.profile_calls < 1:
            raise UsageError(f"--profile-calls {self.profile_calls} is not valid; expected at least 1")
        if self.batch_size < 1:
            raise UsageError(f"--batch-size {self.batch_size} is not valid; expected at least 1")
        if self.objective not in OBJECTIVES:
            raise UsageError(f"--objective '{self.objective}' is not valid; expected one of {', '.join(OBJECTIVES)}")
        self._validate_scenario()
        if self.batch_sizes and self.batch_size != 1:
            raise UsageError("--batch-size and --batch-sizes both set the timed batch; give one")
        if any(size < 1 for size in self.batch_sizes):
            raise UsageError("--batch-sizes: expected one or more sizes of at least 1")
        if self.executor not in EXECUTORS:
            raise UsageError(f"--executor '{self.executor}' is not valid; expected {' or '.join(EXECUTORS)}")
        if self.executor == "ray" and importlib.util.find_spec("ray") is None:
            raise UsageError("--executor ray needs Ray: pip install 'segbench[ray]'")
        if self.executor == "ray" and self.input_sizes:  # a task is a sub-run, and a run always has the own size
            raise UsageError("--input-sizes does not run on --executor ray yet; run the sweep locally")
        if self.executor != "ray" and (self.ray_address or self.where or self.per_node):
            used = "--address" if self.ray_address else "--where" if self.where else "--per-node"
            raise UsageError(f"{used} needs --executor ray")
        if not 0.0 < self.threshold < 1.0:
            raise UsageError(f"--threshold {self.threshold} is not valid; expected a probability between 0 and 1")
        suites = [suite for _, suite in self.named_suites().values()]
        from bench.training.recipes import suite_recipe

        for suite in suites:  # a recipe name no recipe has fails now, not after another suite's training
            suite_recipe(self.models[0] if self.models else "", suite)
        if self.input_sizes:
            self._validate_input_sizes(suites)
        from bench.models import list_models  # torch: only when a configuration is checked

        valid_models = list_models()
        for name in self.models:
            if external.is_external(name):
                for suite in suites:
                    external.check_suite(name, suite)  # hf:PATH: its labels and channels against the suite's
                    model = external.build_external(name, suite.in_channels, suite.num_classes)
                    external.check_output_shape(model, name, suite.in_channels, suite.input_size, suite.num_classes)
            elif name not in valid_models:
                raise unknown_name("model", name, valid_models)
        from bench.backend import GRADCAM_CHOICES

        if self.gradcam_method not in GRADCAM_CHOICES:
            raise UsageError(f"--gradcam-method '{self.gradcam_method}' is not one of {', '.join(GRADCAM_CHOICES)}")
        if self.gradcam and self.gradcam_layers:
            self._validate_gradcam_layers(suites)
        if self.weights is not None and self.checkpoint is not None:
            raise UsageError("--weights and --checkpoint both name the reference weights; give one")
        for option, path in (("--weights", self.weights), ("--onnx", self.onnx), ("--checkpoint", self.checkpoint)):
            if path is not None and len(self.models) != 1:
                raise UsageError(f"{option} needs exactly one model in --models (got {len(self.models)})")
        if self.weights is not None and external.is_huggingface(self.models[0]):
            raise UsageError(f"--weights: --models {self.models[0]} brings its own weights (its folder's); drop it")
        if self.weights is not None and not self.weights.is_file():
            raise UsageError(f"--weights '{self.weights}' does not exist")
        if self.checkpoint is not None:
            from bench.training.checkpoints import check_travelling_checkpoint

            for suite in suites:
                check_travelling_checkpoint(self.checkpoint, self.models[0], suite)
        if self.onnx is not None:
            from bench.onnx.user_model import check_onnx_fits

            for suite in suites:
                check_onnx_fits(self.onnx, suite.in_channels, suite.input_size, suite.num_classes)
        plans = plan_backends(self.backend_specs(), self.backend_options, self.device)
        self._validate_float_layers(plans, suites)
        return plans

    def _validate_scenario(self) -> None:
        scenario = self.scenario
        if scenario.name not in SCENARIOS:
            raise UsageError(f"--scenario '{scenario.name}' is not valid; expected one of {', '.join(SCENARIOS)}")
        bound = scenario.latency_bound_ms
        if scenario.name == SERVER and bound is None:
            raise UsageError("--scenario server needs --latency-bound MS: the p99 the highest rate must keep under")
        if bound is not None and scenario.name != SERVER:
            raise UsageError("--latency-bound needs --scenario server")
        if bound is not None and not (0 < bound < float("inf")):
            raise UsageError(f"--latency-bound {bound:g} is not valid; expected milliseconds above 0")
        if not 0 < scenario.duration_s < float("inf"):
            raise UsageError(f"--scenario-time {scenario.duration_s:g} is not valid; expected seconds above 0")
        if not scenario.batch_sizes or any(size < 1 for size in scenario.batch_sizes):
            raise UsageError("--offline-batch-sizes: expected one or more sizes of at least 1")

    def named_suites(self) -> dict[str, tuple[str, Suite]]:
        """Each --suite entry loaded, by the suite's own `name` (what rows, labels, figure and cache file
        names say; a path given to --suite only says where the file is): name -> (the entry, to load it
        again in a worker; the suite). Two files with one name would merge their rows: a usage error."""
        cached = self.__dict__.get("_named_suites")  # read once: a fraction or "all" lists the data folder
        if cached is not None:
            return cached
        named: dict[str, tuple[str, Suite]] = {}
        for entry in self.suites:
            suite = get_suite(entry, data_dir=self.data_dir, splits=self.splits)
            if suite.name in named:
                first, other = named[suite.name]
                if other.path is None or suite.path is None or other.path.resolve() != suite.path.resolve():
                    raise UsageError(
                        f"--suite '{first}' and '{entry}' are both suite '{suite.name}' (the files' name key); "
                        "rename one, their rows would be merged"
                    )
                continue  # the same file twice (by name and by path): one suite
            named[suite.name] = (entry, suite)
        object.__setattr__(self, "_named_suites", named)  # frozen: the same configuration, the same suites
        return named

    def _validate_input_sizes(self, suites: list[Suite]) -> None:
        """Every model must map each swept size to logits of that size (a size a model's strides do not
        divide would be measured on a different output, or fail in every backend): checked on the meta
        device, which propagates shapes without computing anything."""
        from bench.models import create_model, external

        if self.onnx is not None:
            raise UsageError("--input-sizes needs models segbench exports: a user's --onnx file has a fixed size")
        for size in self.input_sizes:
            if not all(MIN_INPUT_SIDE <= side <= MAX_INPUT_SIDE for side in size):
                raise UsageError(
                    f"--input-sizes {size_text(size)}: each side must be {MIN_INPUT_SIDE} to {MAX_INPUT_SIDE} pixels"
                )
        for suite in suites:
            for name in self.models:
                build = external.build_external if external.is_external(name) else create_model
                model = build(name, suite.in_channels, suite.num_classes)
                for size in self.input_sizes:
                    got = output_size(model, suite.in_channels, size)
                    if got != size:
                        what = f"gives {size_text(got)} logits" if isinstance(got, tuple) else f"fails ({got})"
                        raise UsageError(
                            f"--input-sizes {size_text(size)}: model '{name}' {what} at this size; expected logits "
                            "of the input's size (try sizes its strides divide, e.g. multiples of 32)"
                        )

    def _validate_float_layers(self, plans: list[BackendPlan], suites: list[Suite]) -> None:
        """`float_layers` must name conv/linear layers of every model (module paths); with --onnx the ONNX
        backends may also name nodes of the user's graph, which only their prepare can check."""
        from bench.backend import FLOAT_LAYERS_OPTION, check_float_layers, parse_float_layers
        from bench.backend.layers import weighted_modules
        from bench.models import create_model, external

        wanted = {
            plan.name: names
            for plan in plans
            if (names := parse_float_layers(plan.options.as_strings().get(FLOAT_LAYERS_OPTION, "")))
            and not (self.onnx is not None and plan.backend.takes_onnx)
        }
        if not wanted:
            return
        suite = suites[0]
        for name in self.models:
            build = external.build_external if external.is_external(name) else create_model
            layers = weighted_modules(build(name, suite.in_channels, suite.num_classes))
            for backend, names in wanted.items():
                check_float_layers(backend, names, layers)

    def _validate_gradcam_layers(self, suites: list[Suite]) -> None:
        """Every --gradcam-layer must name a layer of every model (an alias or a module path)."""
        from bench.gradcam.method import layer_path, resolve_layer
        from bench.models import create_model, external

        suite = suites[0]
        for name in self.models:
            build = external.build_external if external.is_external(name) else create_model
            model = build(name, suite.in_channels, suite.num_classes)
            for layer in self.gradcam_layers:
                try:
                    resolve_layer(model, layer_path(model, layer))
                except UsageError as exc:
                    aliases = ", ".join(getattr(model, "gradcam_layers", {}) or {}) or "none"
                    raise UsageError(
                        f"--gradcam-layer '{layer}' is not a layer of model '{name}' "
                        f"(aliases: {aliases}; or a module path)"
                    ) from exc


MIN_INPUT_SIDE, MAX_INPUT_SIDE = 8, 8192


def parse_input_size(text: str) -> tuple[int, int]:
    """`512x1024` as (height, width); a ValueError says what was expected."""
    height, sep, width = text.strip().lower().partition("x")
    if not sep or not height.isdigit() or not width.isdigit() or int(height) < 1 or int(width) < 1:
        raise ValueError(f"'{text}' is not a size HxW (height x width in pixels, e.g. 512x512)")
    return int(height), int(width)


def output_size(model: Any, in_channels: int, size: tuple[int, int]) -> tuple[int, int] | str:
    """The (height, width) of the model's logits for one image of `size`, or why the model cannot run at
    it: on the meta device where every operation has a meta kernel (shapes without arithmetic), else (a
    model that needs real numbers, or fails there) computed for real."""
    import copy

    import torch

    with torch.no_grad():
        try:
            meta = copy.deepcopy(model).to("meta").eval()
            out = meta(torch.empty(1, in_channels, *size, device="meta"))
        except Exception:
            try:
                out = model.eval()(torch.zeros(1, in_channels, *size))
            except Exception as exc:
                return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'no message'}"
    return int(out.shape[-2]), int(out.shape[-1])


def save_run_config(config: RunConfig, run_dir: Path) -> None:
    """The matrix and settings of a run, so `--resume` can finish it exactly as it was started."""
    paths = {  # absolute: a resume may start from another folder
        k: str(Path(getattr(config, k)).resolve()) if getattr(config, k) is not None else None
        for k in ("data_dir", "weights", "onnx", "checkpoint")
    }
    data = {
        **asdict(config),
        "suites": [str(Path(s).resolve()) if s.endswith(".toml") else s for s in config.suites],  # as paths are
        "results_root": str(config.results_root),
        "backends": list(config.backend_specs()),
        **paths,
    }
    if not config.scenario.active:
        data.pop("scenario")
    for key in ("input_sizes", "batch_sizes"):  # a run without a sweep writes what it always wrote
        if not data[key]:
            data.pop(key)
    atomic_write_bytes(run_dir / RUN_FILE, json.dumps(data, indent=2).encode())


def load_run_config(run_dir: Path) -> RunConfig:
    """The configuration a run was started with. A run folder from before interleaved timing existed has
    no timing mode: it was timed sequentially, and a resume must finish it the same way."""
    path = run_dir / RUN_FILE
    if not path.is_file():
        raise UsageError(f"--resume {run_dir}: no {RUN_FILE} there; expected a segbench run folder")
    data = read_json(path)
    try:
        return RunConfig(
            suites=tuple(data["suites"]),
            models=tuple(data["models"]),
            backends=tuple(data["backends"]),
            device=data["device"],
            threads=data["threads"],
            batch_size=data["batch_size"],
            timing=TimingConfig(**{"mode": "sequential", **data["timing"]}),
            results_root=run_dir.parent,
            cell_timeout_s=data["cell_timeout_s"],
            progress=data.get("progress", True),
            backend_options=data.get("backend_options", {}),
            **{k: Path(data[k]) if data.get(k) else None for k in ("data_dir", "weights", "onnx", "checkpoint")},
            gradcam=data.get("gradcam", True),
            gradcam_layers=tuple(data.get("gradcam_layers", ())),
            gradcam_method=data.get("gradcam_method", "both"),
            threshold=data.get("threshold", 0.5),
            splits=dict(data.get("splits", {})),
            shard=Shard(**data["shard"]) if data.get("shard") else None,
            executor=data.get("executor", "local"),
            ray_address=data.get("ray_address"),
            where=dict(data.get("where", {})),
            per_node=data.get("per_node", False),
            profile=data.get("profile", False),
            profile_calls=data.get("profile_calls", 20),
            budgets=tuple(data.get("budgets", ())),
            objective=data.get("objective", "latency"),
            scenario=ScenarioConfig.from_json(data.get("scenario")),
            input_sizes=tuple((int(h), int(w)) for h, w in data.get("input_sizes", ())),
            batch_sizes=tuple(int(n) for n in data.get("batch_sizes", ())),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"--resume {run_dir}: {path.name} is unreadable ({type(exc).__name__}: {exc})") from None
