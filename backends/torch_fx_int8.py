"""PyTorch FX graph mode post-training static int8 quantization (`prepare_fx` / `convert_fx`).

The model is symbolically traced, observed with the engine's default QConfigMapping while every
calibration image runs through it, and converted to quantized modules (conv + ReLU fuse into one int8
kernel). Conv weights are per-channel on x86 and onednn; transposed convs keep per-tensor weights,
the only kind PyTorch's quantized ConvTranspose accepts (onednn's default mapping asks for per-channel
and then fails its own check, so it is overridden here). The converted GraphModule is saved as
TorchScript so it loads in a fresh process without the float model, its packed int8 weights intact.

FX quantization is deprecated upstream in favour of PT2E; it is kept as the baseline many
deployments still use, with the deprecation warnings silenced and named in the row's notes.
"""

from __future__ import annotations

import copy
import warnings
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from bench.backend import Artifact, Backend, OpCoverage, PrepareContext, Session

MODEL_FILE = "model.int8.torchscript.pt"
ENGINES = ("x86", "onednn", "qnnpack")
PER_CHANNEL_ENGINES = ("x86", "onednn")
TRANSPOSED_CONVS = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d, torch.nn.functional.conv_transpose1d,
                    torch.nn.functional.conv_transpose2d, torch.nn.functional.conv_transpose3d)
# Entering and leaving the int8 domain: not compute, so counted neither way (as the ORT backends do).
BOUNDARY_OPS = ("quantize_per_tensor", "quantize_per_channel", "quantize_per_tensor_dynamic", "dequantize")
# Warnings torch emits for this deprecated path on every prepare/convert/script/save/load.
QUIET_USER_WARNINGS = (r"Please use quant_min and quant_max", r"torch\.quantize_per_tensor, torch\.quantize_per_channel",
                       r"The TorchScript type system")


@contextmanager
def _quiet() -> Iterator[None]:
    """Silence FX quantization's and TorchScript's deprecation chatter (the note says it instead)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        for pattern in QUIET_USER_WARNINGS:
            warnings.filterwarnings("ignore", message=pattern, category=UserWarning)
        yield


def _one_line(exc: BaseException) -> str:
    """`Type: first non-empty line` of an exception, for a one-line error row."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0] if lines else 'no message'}"


def _set_engine(engine: str) -> None:
    supported = torch.backends.quantized.supported_engines
    if engine not in supported:
        raise RuntimeError(f"quantized engine '{engine}' is not supported by this torch build / CPU "
                           f"(supported: {', '.join(e for e in supported if e != 'none')})")
    torch.backends.quantized.engine = engine


def qconfig_mapping(engine: str) -> Any:
    """The engine's default mapping (per-channel conv weights on x86/onednn), with transposed convs
    pinned to per-tensor weights, which is all PyTorch's quantized ConvTranspose supports."""
    from torch.ao.quantization import QConfig, get_default_qconfig_mapping
    from torch.ao.quantization.observer import default_weight_observer

    mapping = get_default_qconfig_mapping(engine)
    per_tensor = QConfig(activation=mapping.global_qconfig.activation, weight=default_weight_observer)
    for op in TRANSPOSED_CONVS:
        mapping.set_object_type(op, per_tensor)
    return mapping


def _check_traceable(model: nn.Module, model_name: str) -> None:
    """FX needs a static graph; fail with the tracer's reason instead of a deep prepare_fx traceback."""
    try:
        torch.fx.symbolic_trace(model)
    except Exception as exc:
        raise RuntimeError(f"FX symbolic tracing failed for model '{model_name}': {_one_line(exc)}") from exc


def _op_name(graph_module: torch.fx.GraphModule, node: torch.fx.Node) -> str:
    if node.op == "call_module":
        return graph_module.get_submodule(node.target)._get_name()  # QuantizedConvReLU2d, MaxPool2d, ...
    if node.op == "call_method":
        return str(node.target)
    return getattr(node.target, "__name__", str(node.target)).rstrip("_")


def _tensors(tree: Any) -> list[torch.Tensor]:
    return [leaf for leaf in torch.utils._pytree.tree_leaves(tree) if isinstance(leaf, torch.Tensor)]


def graph_coverage(graph_module: torch.fx.GraphModule, example: torch.Tensor) -> dict[str, dict[str, int]]:
    """Run the converted graph once and classify every compute node by the tensors it really sees:
    int8 when it consumes or produces a quantized tensor, float otherwise. Q/DQ boundaries and nodes
    that return no tensor (shape arithmetic) are not counted."""
    int8: Counter[str] = Counter()
    floating: Counter[str] = Counter()
    boundaries: Counter[str] = Counter()

    class Recorder(torch.fx.Interpreter):
        def run_node(self, node: torch.fx.Node) -> Any:
            result = super().run_node(node)
            if node.op not in ("call_module", "call_function", "call_method"):
                return result
            name = _op_name(graph_module, node)
            args, kwargs = self.fetch_args_kwargs_from_env(node)
            inputs, outputs = _tensors((args, kwargs)), _tensors(result)
            if name in BOUNDARY_OPS:
                boundaries[name] += 1
            elif any(t.is_quantized for t in inputs + outputs):
                int8[name] += 1
            elif outputs:
                floating[name] += 1
            return result

    with torch.no_grad():
        Recorder(graph_module).run(example)
    return {"int8": dict(int8), "float": dict(floating), "boundaries": dict(boundaries)}


def _weight_schemes(graph_module: torch.fx.GraphModule) -> dict[str, str]:
    """Quantization scheme of each quantized weight, by module type (e.g. per_channel_affine)."""
    schemes: dict[str, set[str]] = {}
    for module in graph_module.modules():
        weight = getattr(module, "weight", None)
        if callable(weight) and type(module).__module__.startswith("torch.ao.nn"):
            qscheme = str(weight().qscheme()).removeprefix("torch.")
            schemes.setdefault(module._get_name(), set()).add(qscheme)
    return {name: ",".join(sorted(found)) for name, found in sorted(schemes.items())}


def _strip_annotations(graph_module: torch.fx.GraphModule) -> None:
    """Placeholder types from `from __future__ import annotations` models render as names like
    `_torch_Tensor_` that TorchScript cannot resolve; the graph does not need them."""
    for node in graph_module.graph.nodes:
        node.type = None
    graph_module.recompile()


def _to_torchscript(converted: torch.fx.GraphModule, example: torch.Tensor, path: Path) -> str:
    """Script the converted graph (trace if scripting fails), save it, and check the reloaded module
    reproduces the in-memory output exactly; returns how it was made."""
    _strip_annotations(converted)
    try:
        scripted, how = torch.jit.script(converted), "torch.jit.script"
    except Exception as script_exc:
        try:
            scripted, how = torch.jit.trace(converted, example), "torch.jit.trace"
        except Exception as exc:
            raise RuntimeError(f"TorchScript export of the int8 model failed: script: {_one_line(script_exc)}; "
                               f"trace: {_one_line(exc)}") from exc
    torch.jit.save(scripted, str(path))
    with torch.no_grad():
        expected = converted(example)
        reloaded = torch.jit.load(str(path), map_location="cpu")(example)
    if not torch.equal(expected, reloaded):
        raise RuntimeError(f"the saved TorchScript int8 model ({how}) does not reproduce the converted model's output")
    return how


class TorchFxInt8Session(Session):
    """A loaded TorchScript int8 module; numpy in, float torch tensor out, CPU only."""

    def __init__(self, module: torch.jit.ScriptModule) -> None:
        self.module = module

    def to_input(self, batch: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(batch, np.float32))

    def run(self, inputs: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return self.module(inputs)

    def to_numpy(self, outputs: torch.Tensor) -> np.ndarray:
        return outputs.float().numpy()


class TorchFxInt8Backend(Backend):
    name = "torch-fx-int8"
    precisions = ("int8",)
    devices = ("cpu",)
    options = {"engine": "x86"}
    option_choices = {"engine": ENGINES}

    def prepare(self, ctx: PrepareContext, out_dir: Path) -> dict[str, Any]:
        from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

        engine = self.resolve_options(ctx.options)["engine"]
        _set_engine(engine)
        model = copy.deepcopy(ctx.model).eval()  # prepare_fx writes qconfig attributes into the modules
        _check_traceable(model, ctx.model_name)
        calibration = torch.from_numpy(np.ascontiguousarray(ctx.calibration, np.float32))
        example = calibration[:1]
        with _quiet():
            try:
                prepared = prepare_fx(model, qconfig_mapping(engine), example_inputs=(example,))
                with torch.no_grad():
                    for i in range(len(calibration)):
                        prepared(calibration[i : i + 1])
                converted = convert_fx(prepared)
            except Exception as exc:
                raise RuntimeError(f"FX int8 quantization failed for model '{ctx.model_name}': {_one_line(exc)}") from exc
            coverage = graph_coverage(converted, example)
            schemes = _weight_schemes(converted)
            serialization = _to_torchscript(converted, example, out_dir / MODEL_FILE)
        return {"engine": engine, "file": MODEL_FILE, "serialization": serialization,
                "saved": "converted FX GraphModule as TorchScript (packed int8 weights, no float model needed)",
                "weight_qschemes": schemes, "activation_observer": "HistogramObserver",
                "calibration_images": int(len(calibration)), "coverage": coverage}

    def coverage(self, artifact: Artifact) -> OpCoverage | None:
        """Recorded at prepare time by running the very graph that was scripted and saved."""
        found = artifact.meta.get("coverage")
        return OpCoverage(int8=dict(found["int8"]), float=dict(found["float"])) if found else None

    def notes(self, artifact: Artifact) -> str:
        engine = artifact.meta.get("engine", artifact.options.get("engine", self.options["engine"]))
        return f"FX quantization (deprecated upstream, PT2E replaces it), {engine} engine"

    def load(self, artifact: Artifact, device: str, threads: int) -> Session:
        torch.set_num_threads(threads)
        _set_engine(artifact.meta.get("engine", artifact.options.get("engine", self.options["engine"])))
        with _quiet():  # packed weights are re-prepacked for the engine set above
            module = torch.jit.load(str(artifact.directory / MODEL_FILE), map_location="cpu")
        return TorchFxInt8Session(module.eval())
