"""PyTorch FX graph mode post-training static int8 quantization (`prepare_fx` / `convert_fx`).

The model is symbolically traced, observed with the engine's default QConfigMapping while every
calibration image runs through it, and converted to quantized modules (conv + ReLU fuse into one int8
kernel). Conv weights are per-channel on x86 and onednn; transposed convs keep per-tensor weights,
the only kind PyTorch's quantized ConvTranspose accepts (onednn's default mapping asks for per-channel
and then fails its own check, so it is overridden here). The converted GraphModule is saved as
TorchScript so it loads in a fresh process without the float model, its packed int8 weights intact.

FX quantization is deprecated upstream in favour of PT2E; it is kept as the baseline many
deployments still use, with the deprecation warnings silenced and named in the row's notes.

Over 400 lines (560), and kept whole: the FX recipe (qconfig mapping, float fallback, the
transposed-conv check), its operator coverage, its TorchScript export and its session are one runtime's
path that serves this backend and its Grad-CAM rebuild (fx_cut.py) alone; what other modules use of it
already lives apart (profile_layers.py, fx_fakequant.py, layer_sqnr.py).
"""

from __future__ import annotations

import copy
import time
import typing
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from bench.backend import (
    Artifact,
    Backend,
    BackendOptions,
    GradcamMaps,
    GradcamRequest,
    OpCoverage,
    PrepareContext,
    Profile,
    QuantLayer,
    Session,
    check_float_layers,
    grouped_conv_label,
    parse_float_layers,
)
from bench.backend.layers import weighted_modules
from bench.gradcam.records import FeatureSplit

MODEL_FILE = "model.int8.torchscript.pt"
Engine = Literal["x86", "onednn", "qnnpack"]
ENGINES: tuple[str, ...] = typing.get_args(Engine)
PER_CHANNEL_ENGINES = ("x86", "onednn")
TRANSPOSED_CONVS = (
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
    torch.nn.functional.conv_transpose1d,
    torch.nn.functional.conv_transpose2d,
    torch.nn.functional.conv_transpose3d,
)
QUANTIZED_TRANSPOSED_CONVS = (
    torch.ao.nn.quantized.ConvTranspose1d,
    torch.ao.nn.quantized.ConvTranspose2d,
    torch.ao.nn.quantized.ConvTranspose3d,
)
# int8 vs float on the same input and weights: ~0.01-0.03 when the kernel is right, ~1.4 when it is not.
MAX_TRANSPOSED_CONV_ERROR = 0.25
# Entering and leaving the int8 domain: not compute, so counted neither way (as the ORT backends do).
BOUNDARY_OPS = ("quantize_per_tensor", "quantize_per_channel", "quantize_per_tensor_dynamic", "dequantize")
# Warnings torch emits for this deprecated path on every prepare/convert/script/save/load.
QUIET_USER_WARNINGS = (
    r"Please use quant_min and quant_max",
    r"torch\.quantize_per_tensor, torch\.quantize_per_channel",
    r"The TorchScript type system",
)


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
        raise RuntimeError(
            f"quantized engine '{engine}' is not supported by this torch build / CPU "
            f"(supported: {', '.join(e for e in supported if e != 'none')})"
        )
    torch.backends.quantized.engine = engine


def qconfig_mapping(engine: str, float_modules: tuple[str, ...] = (), calibration: str = "histogram") -> Any:
    """The engine's default mapping (per-channel conv weights on x86/onednn), with transposed convs
    pinned to per-tensor weights, which is all PyTorch's quantized ConvTranspose supports, and the
    modules named in `float_modules` left in float. `calibration` "minmax" swaps the default
    activation observer (a histogram, L2-optimal ranges) for the running min and max."""
    from torch.ao.quantization import QConfig, get_default_qconfig_mapping
    from torch.ao.quantization.observer import MinMaxObserver, default_weight_observer

    mapping = get_default_qconfig_mapping(engine)
    if calibration == "minmax":
        default = mapping.global_qconfig
        reduce_range = bool(getattr(default.activation(), "reduce_range", False))
        minmax = QConfig(activation=MinMaxObserver.with_args(reduce_range=reduce_range), weight=default.weight)
        mapping.set_global(minmax)
        for kind, qconfig in list(mapping.object_type_qconfigs.items()):
            if qconfig is default:  # the ops that share the global config; fixed-qparams ops keep theirs
                mapping.set_object_type(kind, minmax)
    per_tensor = QConfig(activation=mapping.global_qconfig.activation, weight=default_weight_observer)
    for op in TRANSPOSED_CONVS:
        mapping.set_object_type(op, per_tensor)
    for name in float_modules:
        mapping.set_module_name(name, None)
    return mapping


def inaccurate_transposed_convs(converted: torch.fx.GraphModule, example: torch.Tensor) -> dict[str, float]:
    """Quantized transposed convs whose int8 output is far from the float op on the very same
    (dequantized) input and weights: {module name: relative error}.

    Measured here (torch 2.13, x86 engine): in some graphs the int8 ConvTranspose2d kernel returns an
    output uncorrelated with the float op (relative error ~1.4, e.g. every layer of vgg16-unet's decoder
    whose input and output channels differ), while in others it is exact to the quantization error
    (~0.01). Such a layer is kept in float rather than shipped as a wrong int8 result."""
    import torch.nn.functional as F

    functions = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
    errors: dict[str, float] = {}

    def recorder(name: str) -> Callable[..., None]:
        def record(module: nn.Module, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
            weight = module.weight().dequantize()
            expected = functions[weight.dim() - 2](
                inputs[0].dequantize(),
                weight,
                module.bias(),
                module.stride,
                module.padding,
                module.output_padding,
                module.groups,
                module.dilation,
            )
            error = float((output.dequantize() - expected).norm() / expected.norm().clamp_min(1e-12))
            errors[name] = max(errors.get(name, 0.0), error)

        return record

    handles = [
        module.register_forward_hook(recorder(name))
        for name, module in converted.named_modules()
        if isinstance(module, QUANTIZED_TRANSPOSED_CONVS)
    ]
    try:
        with torch.no_grad(), _quiet():
            converted(example)
    finally:
        for handle in handles:
            handle.remove()
    return {name: error for name, error in errors.items() if error > MAX_TRANSPOSED_CONV_ERROR}


def _trace_site(exc: BaseException) -> str:
    """Where the model's own code was when tracing failed: the innermost frame outside torch and this
    module, as `file.py:line in function: code`; "" when there is none."""
    import traceback

    tracer_side = (str(Path(torch.__file__).parent), str(Path(__file__)))
    own = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith(tracer_side)]
    if not own:
        return ""
    frame = own[-1]
    return f" at {Path(frame.filename).name}:{frame.lineno} in {frame.name}" + (f": {frame.line}" if frame.line else "")


def _check_traceable(model: nn.Module, model_name: str) -> None:
    """FX needs a static graph; fail with the tracer's reason (its first sentence) and the line of the
    model's code it failed on, instead of a deep prepare_fx traceback."""
    try:
        torch.fx.symbolic_trace(model)
    except Exception as exc:
        hint = ""
        if any(type(m).__module__.startswith("transformers.") for m in model.modules()):
            hint = " (a transformers model: its code on tensor shapes does not trace; transformers 5 has no FX tracer)"
        reason = _one_line(exc).split(". ")[0].rstrip(".")
        raise RuntimeError(
            f"FX symbolic tracing failed for model '{model_name}'{hint}: {reason}{_trace_site(exc)}"
        ) from exc


def _op_name(graph_module: torch.fx.GraphModule, node: torch.fx.Node) -> str:
    if node.op == "call_module":
        return graph_module.get_submodule(node.target)._get_name()  # QuantizedConvReLU2d, MaxPool2d, ...
    if node.op == "call_method":
        return str(node.target)
    return getattr(node.target, "__name__", str(node.target)).rstrip("_")


def _label(graph_module: torch.fx.GraphModule, node: torch.fx.Node, name: str) -> str:
    """`name`, with ` (depthwise)` (a group per input channel) or ` (grouped)` for a grouped conv module."""
    if node.op != "call_module":
        return name
    module = graph_module.get_submodule(str(node.target))
    groups, channels = getattr(module, "groups", 1), getattr(module, "in_channels", None)
    if not isinstance(groups, int):
        return name
    return grouped_conv_label(name, groups, channels // groups if isinstance(channels, int) else None)


def _tensors(tree: Any) -> list[torch.Tensor]:
    return [leaf for leaf in torch.utils._pytree.tree_leaves(tree) if isinstance(leaf, torch.Tensor)]


def fx_coverage(graph_module: torch.fx.GraphModule, example: torch.Tensor) -> OpCoverage:
    """Run the converted graph once and classify every compute node by the tensors it really sees:
    int8 when it consumes or produces a quantized tensor, float otherwise. Q/DQ boundaries and nodes
    that return no tensor (shape arithmetic) are not counted. A grouped conv module is counted as
    `<module> (depthwise)` or `<module> (grouped)`."""
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
                int8[_label(graph_module, node, name)] += 1
            elif outputs:
                floating[_label(graph_module, node, name)] += 1
            return result

    with torch.no_grad():
        Recorder(graph_module).run(example)
    return OpCoverage(int8=dict(int8), float=dict(floating), boundaries=dict(boundaries))


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
            raise RuntimeError(
                f"TorchScript export of the int8 model failed: script: {_one_line(script_exc)}; trace: {_one_line(exc)}"
            ) from exc
    torch.jit.save(scripted, str(path))
    with torch.no_grad():
        expected = converted(example)
        reloaded = torch.jit.load(str(path), map_location="cpu")(example)
    if not torch.equal(expected, reloaded):
        raise RuntimeError(f"the saved TorchScript int8 model ({how}) does not reproduce the converted model's output")
    return how


def observe_fx_model(
    model: nn.Module,
    calibration: np.ndarray,
    engine: str,
    model_name: str = "model",
    float_modules: tuple[str, ...] = (),
    calibration_method: str = "histogram",
) -> torch.fx.GraphModule:
    """Trace with observers (`prepare_fx`) and run every calibration image through, one at a time."""
    from torch.ao.quantization.quantize_fx import prepare_fx

    _set_engine(engine)
    model = copy.deepcopy(model).eval()  # prepare_fx writes qconfig attributes into the modules
    _check_traceable(model, model_name)
    images = torch.from_numpy(np.ascontiguousarray(calibration, np.float32))
    with _quiet():
        try:
            prepared = prepare_fx(
                model, qconfig_mapping(engine, float_modules, calibration_method), example_inputs=(images[:1],)
            )
            with torch.no_grad():
                for i in range(len(images)):
                    prepared(images[i : i + 1])
        except Exception as exc:
            raise RuntimeError(f"FX int8 quantization failed for model '{model_name}': {_one_line(exc)}") from exc
    return prepared


def convert_fx_model(prepared: torch.fx.GraphModule, model_name: str = "model") -> torch.fx.GraphModule:
    """`convert_fx` of an observed model (which it rewrites in place) into the int8 GraphModule."""
    from torch.ao.quantization.quantize_fx import convert_fx

    with _quiet():
        try:
            return convert_fx(prepared)
        except Exception as exc:
            raise RuntimeError(f"FX int8 quantization failed for model '{model_name}': {_one_line(exc)}") from exc


def quantize_fx_model(
    model: nn.Module,
    calibration: np.ndarray,
    engine: str,
    model_name: str = "model",
    float_modules: tuple[str, ...] = (),
    calibration_method: str = "histogram",
) -> torch.fx.GraphModule:
    """Trace, observe every calibration image one at a time, convert: the converted int8 GraphModule.

    Deterministic for the same model, images and engine, so Grad-CAM can rebuild the very graph that
    was scripted into the artifact (and checks it did)."""
    observed = observe_fx_model(model, calibration, engine, model_name, float_modules, calibration_method)
    return convert_fx_model(observed, model_name)


class TorchFxInt8Session(Session):
    """A loaded TorchScript int8 module; numpy in, float torch tensor out, CPU only."""

    concurrent_runs = False  # torch: throughput comes from the batch (one caller, all the threads)

    def __init__(self, module: torch.jit.ScriptModule) -> None:
        self.module = module

    def to_input(self, batch: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(batch, np.float32))

    def run(self, inputs: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return self.module(inputs)

    def to_numpy(self, outputs: torch.Tensor) -> np.ndarray:
        return outputs.float().numpy()

    def profile(self, inputs: torch.Tensor, calls: int, work_dir: Path) -> Profile:
        """torch.profiler; hooks do not fire in TorchScript and the profiler sees no submodule call, so
        layers come from the scripted graph: its ops in program order, each with the path of the module
        that calls it, aligned with each call's profiled ops by name."""
        from backends.torch.profile import profile_calls
        from backends.torch.profile_layers import layers_in_graph_order, script_op_sequence

        sequence = script_op_sequence(self.module)
        passed = profile_calls(lambda: self.run(inputs), self.synchronize, calls, work_dir)
        layers, unmatched = layers_in_graph_order(passed.events, sequence)
        notes = "quantize_per_tensor, dequantize and the functional ops of the top-level graph (cat, add) have no layer"
        if unmatched:
            notes += f"; {unmatched} op events matched no node of the TorchScript graph (no layer)"
        return passed.to_profile(layers, attribution="TorchScript graph order", notes=notes)


@dataclass(frozen=True)
class TorchFxOptions(BackendOptions):
    engine: Engine = "x86"
    calibration: Literal["histogram", "minmax"] = "histogram"  # the activation observer
    float_layers: str = ""  # module paths kept in float (comma-separated; `segbench tune` finds them)


class TorchFxInt8Backend(Backend):
    name = "torch-fx-int8"
    precisions = ("int8",)
    devices = ("cpu",)
    Options = TorchFxOptions
    libraries = ("torch",)  # no float runtime of its own: judged against torch-eager fp32

    def _engine(self, artifact: Artifact) -> str:
        return TorchFxOptions.of(self.artifact_options(artifact)).engine

    def quantizable_layers(self, ctx: PrepareContext) -> list[QuantLayer]:
        return weighted_modules(ctx.model)

    def layer_sqnr(self, ctx: PrepareContext, images: np.ndarray) -> dict[str, float]:
        """torch.ao's FX numeric suite: loggers on the observed (fused) float model and the converted one,
        matched subgraph by subgraph, SQNR of each output (`compute_sqnr`), keyed by module path."""
        from backends.torch.layer_sqnr import fx_layer_sqnr

        options = TorchFxOptions.of(ctx.options)
        observed = observe_fx_model(ctx.model, ctx.calibration, options.engine, ctx.model_name, (), options.calibration)
        with _quiet():
            return fx_layer_sqnr(observed, convert_fx_model(copy.deepcopy(observed), ctx.model_name), images)

    def prepare(self, ctx: PrepareContext, out_dir: Path) -> dict[str, Any]:
        options = TorchFxOptions.of(ctx.options)
        engine = options.engine
        chosen = parse_float_layers(options.float_layers)
        check_float_layers(self.name, chosen, weighted_modules(ctx.model))
        calibration = torch.from_numpy(np.ascontiguousarray(ctx.calibration, np.float32))
        example = calibration[:1]

        def quantized(extra: tuple[str, ...] = ()) -> torch.fx.GraphModule:
            return quantize_fx_model(
                ctx.model,
                ctx.calibration,
                engine,
                ctx.model_name,
                tuple(sorted({*chosen, *extra})),
                options.calibration,
            )

        converted = quantized()
        inaccurate = inaccurate_transposed_convs(converted, calibration[:2])
        if inaccurate:  # quantize again with those layers in float
            converted = quantized(tuple(inaccurate))
        with _quiet():
            coverage = fx_coverage(converted, example)
            schemes = _weight_schemes(converted)
            serialization = _to_torchscript(converted, example, out_dir / MODEL_FILE)
        float_modules = {name: round(error, 3) for name, error in sorted(inaccurate.items())}
        notes = f"FX quantization (deprecated upstream, PT2E replaces it), {engine} engine"
        if options.calibration != "histogram":
            notes += f", {options.calibration} activation ranges"
        if chosen:
            notes += f"; {len(chosen)} layer(s) kept in float as asked (float_layers)"
        if float_modules:
            notes += (
                f"; {len(float_modules)} transposed conv(s) kept in float, the int8 kernel was off by "
                f"{max(float_modules.values()):.2f} (relative) on the calibration images: {', '.join(float_modules)}"
            )
        return {
            "engine": engine,
            "file": MODEL_FILE,
            "serialization": serialization,
            "saved": "converted FX GraphModule as TorchScript (packed int8 weights, no float model needed)",
            "weight_qschemes": schemes,
            "activation_observer": "HistogramObserver" if options.calibration == "histogram" else "MinMaxObserver",
            "calibration_images": int(len(calibration)),
            "coverage": coverage,
            "float_modules": float_modules,
            "float_layers": list(chosen),
            "notes": notes,
        }

    def gradcam(self, artifact: Artifact, request: GradcamRequest) -> list[GradcamMaps]:
        """Finite differences on the int8 graph itself, cut at each layer's quantized output (the primary
        method), and autograd through its fake-quant simulation (the second), as `request.methods` asks.

        The saved TorchScript cannot be cut, so the converted GraphModule is rebuilt from the float model
        and the calibration images with the same code and engine; it must reproduce the artifact's
        logits on the images exactly, or this raises rather than explain a different graph."""
        from backends.torch.fakequant import add_taps, gradcam_simulation
        from backends.torch.fx_cut import fx_feature_split, output_mark, quiet_cat_warning
        from backends.torch.fx_fakequant import fx_fake_quant_module, tap_locator
        from bench.gradcam.method import GradcamUnsupported
        from bench.gradcam.split import split_gradcam

        torch.set_num_threads(request.threads)
        options = TorchFxOptions.of(self.artifact_options(artifact))
        start = time.perf_counter()
        kept = {*artifact.meta.get("float_modules", {}), *artifact.meta.get("float_layers", [])}
        prepared = observe_fx_model(
            request.model, request.calibration, options.engine, "model", tuple(sorted(kept)), options.calibration
        )
        marks = {layer: output_mark(prepared, layer) for layer in request.layers}  # before convert rewrites it
        observed = copy.deepcopy(prepared) if "fake-quant" in request.methods else None
        converted = convert_fx_model(prepared)
        module = self.load(artifact, "cpu", request.threads).module  # type: ignore[attr-defined]
        images = torch.from_numpy(np.ascontiguousarray(request.images, np.float32))
        with torch.no_grad(), quiet_cat_warning():
            for i in range(len(images)):
                rebuilt, saved = converted(images[i : i + 1]), module(images[i : i + 1])
                if not torch.equal(rebuilt, saved):
                    diff = float((rebuilt - saved).abs().max())
                    raise RuntimeError(
                        f"the rebuilt FX int8 graph does not reproduce the saved artifact on Grad-CAM "
                        f"image {i} (max |logit diff| {diff:.3g}); cannot cut the deployed graph"
                    )
        rebuild_s = (time.perf_counter() - start) / max(len(request.images), 1)
        found: list[GradcamMaps] = []
        if "finite-difference" in request.methods:

            def splitter_for(layer: str) -> Callable[[np.ndarray, int], FeatureSplit]:
                return lambda image, step: fx_feature_split(converted, image, layer, step, marks[layer])

            splits = split_gradcam(
                request.images,
                request.layers,
                request.classes,
                splitter_for,
                prefix=f"FX int8 graph rebuilt (matches the artifact exactly), {options.engine} engine",
                steps=(request.steps, *request.floor_steps),
                cut="fx",
            )
            found += [
                replace(
                    maps,
                    seconds_per_image=maps.seconds_per_image + (rebuild_s if i == 0 else 0.0),
                    vs_deployed_max_abs=0.0,
                )
                for i, maps in enumerate(splits)
            ]
        tapped = [layer for layer in request.layers if marks[layer] is not None]  # the others: not in the graph
        if observed is not None and tapped:
            began = time.perf_counter()
            try:
                simulated = add_taps(fx_fake_quant_module(observed, converted), tapped, tap_locator(marks)).eval()
                with quiet_cat_warning():
                    maps, info = gradcam_simulation(converted, simulated, request.images, tapped, request.classes)
            except GradcamUnsupported as exc:  # a graph the simulation does not cover: the row says so
                return [*found, GradcamMaps.without_maps("fake-quant", f"fake-quant not possible: {exc}")]
            except Exception as exc:  # the second method never takes the finite-difference maps down
                return [*found, GradcamMaps.failed("fake-quant", exc)]
            found.append(
                GradcamMaps(
                    maps=maps,
                    method="fake-quant",
                    seconds_per_image=(time.perf_counter() - began) / max(len(request.images), 1)
                    + (0.0 if found else rebuild_s),  # the rebuild is counted once, with the first maps
                    notes=f"fake-quant simulation of the FX int8 graph (observer parameters, int8 weights); "
                    f"max |logit diff| from the deployed graph {info['max_abs_vs_program']:.3g}",
                    vs_deployed_max_abs=info["max_abs_vs_program"],
                    vs_deployed_scale=info["program_max_abs"],
                )
            )
        return found

    def load(self, artifact: Artifact, device: str, threads: int) -> Session:
        torch.set_num_threads(threads)
        _set_engine(self._engine(artifact))
        with _quiet():  # packed weights are re-prepacked for the engine set above
            module = torch.jit.load(str(artifact.directory / MODEL_FILE), map_location="cpu")
        return TorchFxInt8Session(module.eval())
