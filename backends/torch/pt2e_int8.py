"""PyTorch 2 export (PT2E) post-training static int8 quantization with torchao, lowered by Inductor on x86.

Over 400 lines (637), and kept whole: strict export, the annotation check, float fallback, the
Inductor lowering and the check of the compiled program against the uncompiled one are one runtime's
path, each step reading what the one before wrote; what other modules use of it already lives apart
(pt2e_cut.py, fakequant.py, profile_layers.py, layer_sqnr.py).

The flow torchao documents for x86 CPUs: the model is captured with `torch.export.export(strict=True)`,
annotated by `X86InductorQuantizer` with its default config (per-channel int8 conv/linear weights,
per-tensor uint8 activations), observed while every calibration image runs through it, and converted
(`convert_pt2e` folds the weight quantization, leaving int8 weight constants between quantize /
dequantize pairs; the `linear` option gives nn.Linear that config, a dynamic one or none). The converted
graph is re-exported, minus the float parameters it no longer reads, and saved with `torch.export.save`,
so a fresh process loads it without the float model and the file holds the conv weights in int8
(transposed convs stay fp32: the quantizer does not annotate them). A graph left without any int8 op
(the annotation check) is an error naming the options that took its layers away.

Uncompiled, the program runs float convs on dequantized weights; only `torch.compile` with Inductor
freezing turns dequantize -> conv -> quantize into oneDNN int8 convolutions with prepacked weights.
Compilation happens in `load` and, for each new batch shape, in `to_input` — never inside the timed
`run`. Prepare compiles the saved program once too, to record the compile time and how many int8
kernels Inductor really fused (coverage counts a conv as int8 only if it was). A profile
(`segbench run --profile`) compiles it once more, with Inductor's kernel profiling switched on.
"""

from __future__ import annotations

import copy
import importlib.util
import logging
import time
from collections import Counter
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

MODEL_FILE = "model.int8.pt2"
# Ops with a weight operand: int8 when both the activation and the weight arrive dequantized.
WEIGHTED_OPS = (
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "linear",
    "bmm",
    "matmul",
)
# Not compute: indexing and shape assertions.
META_OPS = (
    "getitem",
    "sym_size",
    "sym_numel",
    "_assert_tensor_metadata",
    "_assert_scalar",
    "sym_constrain_range_for_size",
)
# Eval-mode identities: not compute, and transparent to what an int8 kernel's output fuses with.
IDENTITY_OPS = ("dropout", "alias", "detach")
# Unary ops Inductor fuses into an int8 kernel (torchao's x86 passes: qconv unary relu/hardtanh/hardswish/silu,
# qlinear unary relu/gelu; both fuse a binary add, followed by a relu or nothing).
FUSED_UNARY = {"conv": ("relu", "hardtanh", "hardswish", "silu"), "linear": ("relu", "gelu")}
# Inductor pattern-matcher counters that mean "an int8 kernel with prepacked weights was made".
INT8_FUSION_COUNTERS = ("qconv_weight_prepack_matcher_count", "qlinear_weight_prepack_matcher_count")


def _is_cuda_extension_noise(record: logging.LogRecord) -> bool:
    """torchao warns at import that its compiled CUDA-only kernels (`_C_mxfp8`, `_C_cutlass_90a`) do not
    load with a CPU torch; this backend never uses them, and the lines read like a failure in every log."""
    message = record.getMessage()
    return message.startswith("Failed to load") and "/torchao/_C_" in message


logging.getLogger("torchao").addFilter(lambda record: not _is_cuda_extension_noise(record))


def _register_x86_lowering() -> None:
    """Importing torchao's x86 quantizer registers the quantized_decomposed ops (the .pt2 does not
    deserialize without them) and torchao's Inductor int8 passes, as its x86 tutorial relies on."""
    import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer  # noqa: F401


LinearMode = Literal["static", "dynamic", "float"]


def default_quantizer(float_layers: tuple[str, ...] = (), linear: LinearMode = "static") -> Any:
    """torchao's x86 quantizer with its default config; each module of `float_layers` gets no config
    (`set_module_name_qconfig(name, None)`), so its ops stay unannotated and run in float.

    `linear` is what nn.Linear gets: `static`, the default config like every conv; `float`, no config
    (`set_module_type_qconfig(nn.Linear, None)`); `dynamic`, the default config with `is_dynamic=True`
    (per-batch activation scales computed at run time, int8 weights). X86InductorQuantizer refuses to mix a
    dynamic and a static config in one instance (it warns and skips the second), so `dynamic` composes two:
    the first annotates only the Linears, dynamically; the second, static, annotates the rest and leaves
    the Linears it finds annotated alone. Module names of `float_layers` come first in both."""
    from torchao.quantization.pt2e.quantizer.composable_quantizer import ComposableQuantizer
    from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (
        X86InductorQuantizer,
        get_default_x86_inductor_quantization_config,
    )

    def kept(quantizer: Any) -> Any:
        for name in float_layers:
            quantizer.set_module_name_qconfig(name, None)
        return quantizer

    static = kept(X86InductorQuantizer()).set_global(get_default_x86_inductor_quantization_config())
    if linear == "float":
        static.set_module_type_qconfig(nn.Linear, None)
    if linear != "dynamic":
        return static
    dynamic = kept(X86InductorQuantizer()).set_module_type_qconfig(
        nn.Linear, get_default_x86_inductor_quantization_config(is_dynamic=True)
    )
    return ComposableQuantizer([dynamic, static])


QUANTIZER_NOTES = {
    "static": "X86InductorQuantizer, default config (per-channel int8 weights, uint8 activations)",
    "dynamic": "X86InductorQuantizer, default config; nn.Linear dynamic (activation scales per call), "
    "composed with a static one for the rest",
    "float": "X86InductorQuantizer, default config; nn.Linear kept in float",
}


CompileMode = Literal["default", "max-autotune"]


@dataclass(frozen=True)
class TorchaoPt2eOptions(BackendOptions):
    float_layers: str = ""  # module paths kept in float (comma-separated; `segbench tune` finds them)
    # torch.compile's mode: Inductor's max-autotune benchmarks its C++ GEMM templates against the extern
    # kernels for each shape (a longer compile); which is faster is measured, not assumed (docs/backends.md).
    compile_mode: CompileMode = "default"
    # What nn.Linear gets (default_quantizer): static like the convs, dynamic activation scales, or float. A
    # transformer's linears are most of its weighted ops; its attention (scaled_dot_product_attention) is
    # never quantized by X86InductorQuantizer, whatever this says. float_layers wins over it, module by module.
    linear: LinearMode = "static"


def _nothing_quantized(model: nn.Module, linear: str, float_layers: tuple[str, ...]) -> str:
    """Why a converted graph holds no int8 kernel, in one line: the options that took its layers away."""
    kinds = Counter(type(module).__name__ for module in model.modules() if isinstance(module, (nn.Linear, nn.Conv2d)))
    found = ", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items())) or "no Conv2d or Linear"
    causes = [f"linear={linear} keeps every nn.Linear in float"] if linear == "float" else []
    causes += [f"float_layers keeps {len(float_layers)} layer(s) in float"] if float_layers else []
    return (
        f"X86InductorQuantizer quantized nothing ({found} in the model"
        + (f"; {' and '.join(causes)}" if causes else "")
        + "): the program would silently run in float"
    )


def _batch_dim() -> tuple[dict[int, Any]]:
    """Batch is dynamic in the saved program (the runner's batch size and last partial batch vary)."""
    return ({0: torch.export.Dim("batch", min=1)},)


def _export_example(calibration: torch.Tensor) -> torch.Tensor:
    """Two rows: export specializes a dimension that is 1 in the example, batch must stay symbolic."""
    return calibration[:1].repeat(2, 1, 1, 1)


def capture(model: nn.Module, calibration: torch.Tensor) -> torch.fx.GraphModule:
    """Strict export (a non-strict one leaves the graph unannotated: it would silently run fp32)."""
    example = _export_example(calibration)
    return torch.export.export(
        copy.deepcopy(model).eval(), (example,), dynamic_shapes=_batch_dim(), strict=True
    ).module()


def quantize(
    model: nn.Module, calibration: torch.Tensor, quantizer: Any = None, captured: torch.fx.GraphModule | None = None
) -> torch.fx.GraphModule:
    """Strict export, `prepare_pt2e`, one forward per calibration image, `convert_pt2e`."""
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    captured = capture(model, calibration) if captured is None else captured
    prepared = prepare_pt2e(captured, default_quantizer() if quantizer is None else quantizer)
    with torch.no_grad():
        for i in range(len(calibration)):
            prepared(calibration[i : i + 1])
    return convert_pt2e(prepared)


def _drop_unread_tensors(graph_module: torch.fx.GraphModule) -> None:
    """The converted module still owns the float weights it replaced with int8 constants; a re-export
    would save both, so drop every parameter and buffer no get_attr node reads."""
    read = {node.target for node in graph_module.graph.nodes if node.op == "get_attr"}
    for name, _ in [*graph_module.named_parameters(), *graph_module.named_buffers()]:
        if name not in read:
            owner, _, attr = name.rpartition(".")
            delattr(graph_module.get_submodule(owner) if owner else graph_module, attr)


def save_program(converted: torch.fx.GraphModule, example: torch.Tensor, path: Path) -> torch.export.ExportedProgram:
    _drop_unread_tensors(converted)
    program = torch.export.export(converted, (example,), dynamic_shapes=_batch_dim(), strict=True)
    program.example_inputs = None  # not part of the model; would add an input-sized tensor to the file
    torch.export.save(program, str(path))
    return program


def _op_name(node: torch.fx.Node) -> str:
    target = node.target
    name = getattr(target, "_opname", None) or getattr(target, "__name__", str(target))
    return str(name).rstrip("_")  # relu_ -> relu


def _is_boundary(name: str) -> bool:
    return name.startswith(("quantize", "dequantize", "choose_qparams"))


def _weight_of(graph_module: torch.fx.GraphModule, node: torch.fx.Node) -> torch.Tensor | None:
    """The tensor a conv's weight operand starts from: the get_attr above its dequantize (or itself)."""
    weight = node.args[1] if len(node.args) > 1 else None
    while isinstance(weight, torch.fx.Node) and weight.op == "call_function" and weight.args:
        weight = weight.args[0]
    if not isinstance(weight, torch.fx.Node) or weight.op != "get_attr":
        return None
    found: Any = graph_module
    for part in str(weight.target).split("."):
        found = getattr(found, part, None)
    return found if isinstance(found, torch.Tensor) else None


def _kernel_label(graph_module: torch.fx.GraphModule, node: torch.fx.Node, name: str) -> str:
    """`name`, with ` (depthwise)` (one input channel per group) or ` (grouped)` for a grouped convolution."""
    if not name.startswith("conv") or name.startswith("conv_transpose"):
        return name
    groups = node.args[6] if len(node.args) > 6 else node.kwargs.get("groups", 1)
    if not isinstance(groups, int) or groups <= 1:
        return name
    weight = _weight_of(graph_module, node)
    return grouped_conv_label(name, groups, int(weight.shape[1]) if weight is not None else None)


def _base_op(label: str) -> str:
    """The kernel's op of a coverage label: `conv2d (depthwise)+hardtanh` -> conv2d."""
    return label.split("+")[0].split(" ")[0]


def _fuses(label: str, name: str, others_dequantized: bool) -> bool:
    """Does Inductor fuse op `name` into the int8 kernel labelled `label` (its post-ops so far included)?
    torchao's x86 passes fuse one unary op, or one binary add and then a relu; a conv's add needs its other
    operand dequantized, a linear's takes a float one too (qlinear's `sum` post-op)."""
    kernel, *post_ops = label.split("+")
    family = "linear" if kernel.startswith("linear") else "conv" if kernel.startswith("conv") else ""
    unary = FUSED_UNARY.get(family, ())
    if not family or any(op in unary for op in post_ops):
        return False
    if name == "add":
        return not post_ops and (others_dequantized or family == "linear")
    return (name == "relu" if post_ops else name in unary) and others_dequantized


def pt2e_coverage(graph_module: torch.fx.GraphModule) -> OpCoverage:
    """Classify each compute node of a converted PT2E graph by what Inductor can make of it.

    int8: conv/linear whose activation and weight both come from dequantize nodes (one int8 kernel,
    named with the elementwise post-ops Inductor fuses into it, e.g. `conv2d+relu`, `linear+gelu`), and
    ops between dequantize and quantize nodes (max-pool, cat: kept in uint8). Everything else is float:
    an op after an int8 kernel that Inductor does not fuse into it (a LayerNorm, a reshape, a GELU after a
    conv) runs on its float output. Q/DQ themselves, indexing and eval-mode dropout (an identity) are not
    counted. A grouped conv is `conv2d (depthwise)` or `conv2d (grouped)`. No quantize node: nothing is int8.
    """
    nodes = [n for n in graph_module.graph.nodes if n.op == "call_function"]
    names = {n: _op_name(n) for n in nodes}
    has_quantize = any(name.startswith("quantize") for name in names.values())
    dequantized = {n for n, name in names.items() if name.startswith("dequantize")}
    kernel_of: dict[torch.fx.Node, torch.fx.Node] = {}  # int8 conv/linear (and its fused post-ops) -> the conv
    labels: dict[torch.fx.Node, str] = {}  # one per int8 kernel or uint8 op
    floating: Counter[str] = Counter()
    boundaries: Counter[str] = Counter()
    for node in nodes:  # graph order: producers are classified before their users
        name = names[node]
        if _is_boundary(name):
            boundaries[name] += 1
            continue
        if name in META_OPS:
            continue
        inputs = [a for a in node.all_input_nodes if a.op != "get_attr"]
        if name in IDENTITY_OPS:  # what it passes on is what it was given
            source = inputs[0] if inputs else None
            if source in kernel_of:
                kernel_of[node] = kernel_of[source]
            if source in dequantized:
                dequantized.add(node)
            continue
        fusable = [a for a in inputs if a in kernel_of and len(a.users) == 1]
        label = _kernel_label(graph_module, node, name)
        if not has_quantize:
            floating[label] += 1
        elif name in WEIGHTED_OPS:
            operands = [a for a in node.args[:2] if isinstance(a, torch.fx.Node)]
            if len(operands) == 2 and all(a in dequantized for a in operands):
                kernel_of[node], labels[node] = node, label
            else:
                floating[label] += 1
        elif fusable and _fuses(
            labels[kernel_of[fusable[0]]], name, all(a in dequantized or a in fusable for a in inputs)
        ):  # post-op of the kernel
            kernel = kernel_of[node] = kernel_of[fusable[0]]
            labels[kernel] += f"+{name}"
        elif (
            inputs
            and all(a in dequantized for a in inputs)
            and node.users
            and all(names.get(u, "").startswith("quantize") for u in node.users)
        ):  # dequantize -> op -> quantize
            labels[node] = name
        else:
            floating[label] += 1
    return OpCoverage(int8=dict(Counter(labels.values())), float=dict(floating), boundaries=dict(boundaries))


def _weight_dtypes(program: torch.export.ExportedProgram) -> dict[str, int]:
    """Bytes per dtype of the tensors the saved program holds."""
    found: Counter[str] = Counter()
    tensors = [*program.state_dict.values(), *program.constants.values()]
    for tensor in tensors:
        if isinstance(tensor, torch.Tensor):
            found[str(tensor.dtype).removeprefix("torch.")] += tensor.numel() * tensor.element_size()
    return dict(found)


def compile_program(
    module: nn.Module, example: torch.Tensor, mode: str = "default"
) -> tuple[Any, float, dict[str, int]]:
    """`torch.compile` with freezing (constants folded, weights prepacked into oneDNN int8 kernels),
    triggered by one call; returns (compiled, seconds, Inductor's int8 fusion counters). Freezing
    bypasses the FX graph cache, so the pattern passes and their counters run on every compile.

    Freezing is switched on process-wide, as torchao documents, so that a recompile for a new shape
    gets it too (`options={"freezing": True}` fails here: no fake kernel for onednn.qconv_prepack)."""
    import torch._inductor.config
    from torch._dynamo.utils import counters

    _register_x86_lowering()
    torch._inductor.config.freezing = True
    compiled = torch.compile(module, dynamic=False, mode=None if mode == "default" else mode)
    counters["inductor"].clear()
    start = time.perf_counter()
    with torch.inference_mode():
        compiled(example)
    seconds = time.perf_counter() - start
    fused = {
        key: int(count)
        for key, count in counters["inductor"].items()
        if key.endswith("_matcher_count") and key != "pattern_matcher_count"
    }
    return compiled, seconds, fused


def reconcile(coverage: OpCoverage, fused: dict[str, int]) -> OpCoverage:
    """Int8 convs of the graph that Inductor did not fuse into an int8 kernel run as float convs on
    dequantized weights: move that many to float."""
    int8, floating = dict(coverage.int8), dict(coverage.float)
    kernels = [label for label in int8 if _base_op(label) in WEIGHTED_OPS]
    missing = sum(int8[label] for label in kernels) - sum(fused.get(key, 0) for key in INT8_FUSION_COUNTERS)
    for label in kernels:
        moved = min(max(missing, 0), int8[label])
        int8[label] -= moved
        floating[label] = floating.get(label, 0) + moved
        missing -= moved
    return OpCoverage(
        int8={k: v for k, v in int8.items() if v},
        float={k: v for k, v in floating.items() if v},
        boundaries=coverage.boundaries,
    )


def _located(program: Any, layers: tuple[str, ...]) -> tuple[str, ...]:
    """The layers the program still has (a folded BatchNorm or an Identity is gone from it); the fake-quant
    simulation explains those, and raises only when none is left."""
    from backends.torch.fakequant import layer_output
    from bench.errors import UsageError

    found = []
    for layer in layers:
        try:
            layer_output(program.graph, layer)
            found.append(layer)
        except UsageError:
            continue
    return tuple(found) or layers


COMPARED_IMAGES = 4  # calibration images on which the compiled program is compared with the uncompiled one


def compiled_vs_converted(compiled: Any, converted: Any, images: torch.Tensor) -> tuple[float, float]:
    """(largest |logit| difference between the compiled and the uncompiled program, the compiled
    program's largest |logit|), one image at a time (the compiled program is specialized to batch 1)."""
    drift, scale = 0.0, 0.0
    with torch.inference_mode():
        for i in range(len(images)):
            deployed = compiled(images[i : i + 1])
            drift = max(drift, float((deployed - converted(images[i : i + 1])).abs().max()))
            scale = max(scale, float(deployed.abs().max()))
    return drift, scale


class TorchaoPt2eInt8Session(Session):
    """The compiled program; numpy in, float torch tensor out, CPU only."""

    concurrent_runs = False  # torch: throughput comes from the batch (one caller, all the threads)

    def __init__(
        self, compiled: Any, compile_s: dict[tuple[int, ...], float], program_file: Path, mode: str = "default"
    ) -> None:
        self.compiled = compiled
        self.mode = mode  # torch.compile's mode (the compile_mode option), for the profiled compile too
        self.compile_s = compile_s  # seconds per input shape compiled so far
        self.program_file = program_file  # the saved program, compiled again for a profile

    def to_input(self, batch: np.ndarray) -> torch.Tensor:
        tensor = torch.from_numpy(np.ascontiguousarray(batch, np.float32))
        if tuple(tensor.shape) not in self.compile_s:  # a new shape recompiles: do it here, untimed
            start = time.perf_counter()
            self.run(tensor)
            self.compile_s[tuple(tensor.shape)] = time.perf_counter() - start
        return tensor

    def run(self, inputs: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return self.compiled(inputs)

    def to_numpy(self, outputs: torch.Tensor) -> np.ndarray:
        return outputs.float().numpy()

    def profile(self, inputs: torch.Tensor, calls: int, work_dir: Path) -> Profile:
        """torch.profiler on a second compile of the same program with Inductor's kernel profiling on:
        the timed program's fused C++ kernels record no profiler event (only its extern oneDNN ops do),
        and the switch is a code generation option. No module survives compilation, so the extern conv,
        linear and pool ops are matched to the uncompiled program's layers by shapes, in graph order."""
        import torch._inductor.config as inductor_config

        from backends.torch.profile import profile_calls
        from backends.torch.profile_layers import layers_by_shapes, program_layers

        module = torch.export.load(str(self.program_file)).module()
        candidates = program_layers(module.graph)
        with inductor_config.patch({"cpp.enable_kernel_profile": True, "compile_threads": 1}):
            profiled, seconds, _ = compile_program(module, inputs, self.mode)

        def run() -> None:
            with torch.inference_mode():
                profiled(inputs)

        passed = profile_calls(run, self.synchronize, calls, work_dir)
        layers, unmatched = layers_by_shapes(passed.events, candidates)
        notes = (
            f"profiled a second compile of the saved program with Inductor's cpp.enable_kernel_profile "
            f"({seconds:.1f} s), same code otherwise; Inductor's fused kernels (quantize, cat, elementwise) "
            f"have no layer and no precision"
        )
        if unmatched:
            notes += f"; {unmatched} conv/linear/pool op events matched no op of the uncompiled program"
        return passed.to_profile(
            layers, attribution="extern ops by weight and input shapes, in graph order (nn_module_stack)", notes=notes
        )

    def notes(self) -> str:
        compiled = ", ".join(f"{'x'.join(map(str, shape))} in {s:.1f} s" for shape, s in self.compile_s.items())
        return f"compiled at load in this run: {compiled}"


class TorchaoPt2eInt8Backend(Backend):
    name = "torchao-pt2e-int8"
    precisions = ("int8",)
    devices = ("cpu",)
    Options = TorchaoPt2eOptions
    libraries = ("torch", "torchao")  # no float runtime of its own: judged against torch-eager fp32

    def unavailable_reason(self, device: str) -> str | None:
        if reason := super().unavailable_reason(device):
            return reason
        if importlib.util.find_spec("torchao") is None:  # not imported here: it would register passes
            return "torchao is not installed (pip install torchao)"
        return None

    def quantizable_layers(self, ctx: PrepareContext) -> list[QuantLayer]:
        return weighted_modules(ctx.model)

    def layer_sqnr(self, ctx: PrepareContext, images: np.ndarray) -> dict[str, float]:
        from backends.torch.layer_sqnr import pt2e_layer_sqnr

        _register_x86_lowering()
        calibration = torch.from_numpy(np.ascontiguousarray(ctx.calibration, np.float32))
        captured = capture(ctx.model, calibration)
        converted = quantize(ctx.model, calibration, captured=copy.deepcopy(captured))
        return pt2e_layer_sqnr(captured, converted, images, {layer.name for layer in weighted_modules(ctx.model)})

    def prepare(self, ctx: PrepareContext, out_dir: Path) -> dict[str, Any]:
        import torchao

        _register_x86_lowering()
        options = TorchaoPt2eOptions.of(ctx.options)
        chosen = parse_float_layers(options.float_layers)
        check_float_layers(self.name, chosen, weighted_modules(ctx.model))
        calibration = torch.from_numpy(np.ascontiguousarray(ctx.calibration, np.float32))
        converted = quantize(ctx.model, calibration, default_quantizer(chosen, options.linear))
        found = pt2e_coverage(converted)
        if not found.int8:  # the runner refuses such an artifact too; here the cause can be named
            raise RuntimeError(_nothing_quantized(ctx.model, options.linear, chosen))
        program = save_program(converted, _export_example(calibration), out_dir / MODEL_FILE)
        reloaded = torch.export.load(str(out_dir / MODEL_FILE)).module()
        compiled, compile_s, fused = compile_program(reloaded, calibration[:1], options.compile_mode)
        drift, scale = compiled_vs_converted(compiled, converted, calibration[:COMPARED_IMAGES])
        return {
            "file": MODEL_FILE,
            "input_shape": list(ctx.input_shape),
            "export": "torch.export.export(strict=True), dynamic batch",
            "quantizer": QUANTIZER_NOTES[options.linear],
            "linear": options.linear,
            "calibration_images": int(len(calibration)),
            "saved_bytes_by_dtype": _weight_dtypes(program),
            "compile_s": round(compile_s, 2),
            "inductor_fusions": fused,
            # the deployed (compiled) program against the uncompiled one Grad-CAM explains
            "compiled_vs_converted_max_abs": drift,
            "compiled_max_abs_logit": scale,
            "compiled_vs_converted_images": int(min(len(calibration), COMPARED_IMAGES)),
            # coverage: the converted graph, less any int8 conv Inductor did not fuse
            "converted_coverage": found.to_meta(),
            "coverage": reconcile(found, fused),
            "torch": torch.__version__,
            "torchao": torchao.__version__,
            "float_layers": list(chosen),
            "notes": "PT2E X86InductorQuantizer"
            + (f", nn.Linear {options.linear}" if options.linear != "static" else "")
            + ", torch.compile freezing"
            + (f" mode={options.compile_mode}" if options.compile_mode != "default" else "")
            + ", "
            f"{sum(fused.get(k, 0) for k in INT8_FUSION_COUNTERS)} int8 kernels fused"
            + (f", {len(chosen)} layer(s) kept in float as asked (float_layers)" if chosen else ""),
        }

    def gradcam(self, artifact: Artifact, request: GradcamRequest) -> list[GradcamMaps]:
        """Finite differences on the saved program's own head, cut at each layer's 8-bit codes (the
        primary method, as for FX and ONNX Runtime), and autograd through its fake-quant simulation
        (same scales, zero points, int8 weights; the second), as `request.methods` asks.

        Both run the uncompiled program: Inductor's fused int8 kernels cannot be cut or differentiated.
        How far the compiled program's logits are from it was measured when the artifact was made."""
        from backends.torch.fakequant import gradcam_fakequant
        from backends.torch.pt2e_cut import pt2e_feature_split
        from bench.gradcam.method import GradcamUnsupported
        from bench.gradcam.split import split_gradcam

        torch.set_num_threads(request.threads)
        _register_x86_lowering()
        start = time.perf_counter()
        program = torch.export.load(str(artifact.directory / MODEL_FILE)).module()
        load_s = (time.perf_counter() - start) / max(len(request.images), 1)
        drift = artifact.meta.get("compiled_vs_converted_max_abs")
        scale = artifact.meta.get("compiled_max_abs_logit")
        deployed = (
            f"; the compiled program differs from the uncompiled one by up to {drift:.3g} "
            f"(max |logit| {scale:.3g}, on {artifact.meta.get('compiled_vs_converted_images', 1)} calibration images)"
            if drift is not None and scale is not None
            else ""
        )
        found: list[GradcamMaps] = []
        if "finite-difference" in request.methods:
            splits = split_gradcam(
                request.images,
                request.layers,
                request.classes,
                lambda layer: lambda image, step: pt2e_feature_split(program, image, layer, step),
                prefix="uncompiled PT2E program cut at the feature tensor's codes" + deployed,
                steps=(request.steps, *request.floor_steps),
                cut="pt2e",
            )
            found += [
                replace(
                    maps,
                    seconds_per_image=maps.seconds_per_image + (load_s if i == 0 else 0.0),  # loading counted once
                    vs_deployed_max_abs=drift,
                    vs_deployed_scale=scale,
                )
                for i, maps in enumerate(splits)
            ]
        if "fake-quant" in request.methods:
            try:
                maps, info = gradcam_fakequant(
                    program, request.images, _located(program, request.layers), request.classes
                )
            except GradcamUnsupported as exc:  # a program the simulation does not cover: the row says so
                return [*found, GradcamMaps.without_maps("fake-quant", f"fake-quant not possible: {exc}")]
            except Exception as exc:  # the second method never takes the finite-difference maps down
                return [*found, GradcamMaps.failed("fake-quant", exc)]
            found.append(
                GradcamMaps(
                    maps=maps,
                    method="fake-quant",
                    seconds_per_image=info["seconds"] / max(len(request.images), 1) + (0.0 if found else load_s),
                    notes=f"fake-quant simulation of the uncompiled program (max |logit diff| "
                    f"{info['max_abs_vs_program']:.2g})" + deployed,
                    vs_deployed_max_abs=None if drift is None else drift + info["max_abs_vs_program"],
                    vs_deployed_scale=scale,
                )
            )
        return found

    def load(self, artifact: Artifact, device: str, threads: int) -> Session:
        torch.set_num_threads(threads)
        _register_x86_lowering()
        module = torch.export.load(str(artifact.directory / MODEL_FILE)).module()
        channels, height, width = artifact.meta["input_shape"]
        example = torch.zeros(1, channels, height, width)
        mode = TorchaoPt2eOptions.of(self.artifact_options(artifact)).compile_mode
        compiled, seconds, _ = compile_program(module, example, mode)
        return TorchaoPt2eInt8Session(compiled, {tuple(example.shape): seconds}, artifact.directory / MODEL_FILE, mode)
