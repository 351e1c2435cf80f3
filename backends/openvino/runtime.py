"""OpenVINO models and compiled sessions shared by the OpenVINO backends and the Grad-CAM cut.

Every compile uses the configuration OpenVINO's documentation recommends for latency on CPU:
`PERFORMANCE_HINT=LATENCY` (one stream), `INFERENCE_NUM_THREADS` = the run's `--threads`, and the
input reshaped to a static shape (the IR is saved at batch 1; a session compiles once more, in
`to_input`, outside the timed region, when a batch of another size comes).

`INFERENCE_PRECISION_HINT` is always set: on a CPU with AVX-512 BF16 or AMX, OpenVINO's default for
float layers is bf16, not f32 (measured here: every Convolution of an "fp32" U-Net ran as bf16 without
the hint), so a row named fp32 would silently be a bf16 row.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.backend import Profile, Session, ThroughputSetting

DEVICE = "CPU"
# segbench precision -> OpenVINO's INFERENCE_PRECISION_HINT for the layers that run in float.
INFERENCE_PRECISIONS = {"fp32": "f32", "bf16": "bf16", "f32": "f32"}
LATENCY, THROUGHPUT = "LATENCY", "THROUGHPUT"  # PERFORMANCE_HINT: one stream; streams and requests for throughput
XML_FILE = "model.xml"  # with model.bin beside it: the IR is both files
BIN_FILE = "model.bin"


def openvino_unavailable_reason(device: str) -> str | None:
    """Why OpenVINO cannot run here, or None. Cheap enough for the measuring worker's baseline."""
    try:
        import openvino as ov
    except ImportError:
        return "openvino is not installed (pip install 'segbench[openvino]')"
    if device != "cpu":
        return f"segbench's OpenVINO backends run on the CPU plugin only, not on '{device}'"
    if DEVICE not in ov.Core().available_devices:
        return "OpenVINO's CPU plugin is not available on this machine"
    return None


def nncf_unavailable_reason() -> str | None:
    try:
        import nncf  # noqa: F401
    except ImportError:
        return "nncf is not installed (pip install 'segbench[openvino]')"
    return None


def read_onnx(path: Path, input_shape: tuple[int, int, int]) -> Any:
    """The ONNX graph as an OpenVINO model with a static (1, C, H, W) input."""
    import openvino as ov

    model = ov.convert_model(str(path))
    model.reshape({model.inputs[0]: ov.PartialShape([1, *input_shape])})
    return model


def save_ir(model: Any, out_dir: Path) -> Path:
    """Save as IR (`model.xml` + `model.bin`) with the weights as they are: OpenVINO's `save_model`
    compresses float weights to fp16 by default, which would make an fp32 row's artifact another model."""
    import openvino as ov

    path = out_dir / XML_FILE
    ov.save_model(model, str(path), compress_to_fp16=False)
    return path


def compile_config(threads: int, precision: str) -> dict[str, Any]:
    return {
        "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_NUM_THREADS": int(threads),
        "INFERENCE_PRECISION_HINT": INFERENCE_PRECISIONS[precision],
    }


def compile_model(model: Any, threads: int, precision: str, hint: str = LATENCY) -> Any:
    import openvino as ov

    return ov.Core().compile_model(model, DEVICE, {**compile_config(threads, precision), "PERFORMANCE_HINT": hint})


def with_batch(model: Any, batch: int) -> Any:
    """A copy of `model` whose every input has batch size `batch` (the other dimensions kept)."""
    import openvino as ov

    copy = model.clone()
    copy.reshape({port: ov.PartialShape([batch, *list(port.get_partial_shape())[1:]]) for port in copy.inputs})
    return copy


class OpenVinoSession(Session):
    """A compiled IR and one infer request; recompiled in `to_input` for a new batch size.

    `layer_tensors` (module path -> the ONNX tensor the layer wrote, as the artifact stores it) names the
    layers of a profile where the IR's weights kept no name (NNCF's int8 weights)."""

    def __init__(
        self,
        xml_path: Path,
        threads: int,
        precision: str,
        layer_tensors: Mapping[str, str] | None = None,
        node_layers: Mapping[str, str] | None = None,
    ) -> None:
        import openvino as ov

        self.model = ov.Core().read_model(str(xml_path))
        self.threads, self.precision = threads, precision
        self.layer_tensors = dict(layer_tensors or {})
        self.node_layers = dict(node_layers or {})
        self.batch = int(self.model.inputs[0].get_partial_shape()[0].get_length())
        self._compile(self.model)

    def _compile(self, model: Any) -> None:
        self.compiled_model = model  # the model at this batch size, compiled again by `profile`
        self.compiled = compile_model(model, self.threads, self.precision)
        self.request = self.compiled.create_infer_request()

    def to_input(self, batch: np.ndarray) -> np.ndarray:
        if batch.shape[0] != self.batch:  # compiled here, outside the timed region
            self.batch = int(batch.shape[0])
            self._compile(with_batch(self.model, self.batch))
        return np.ascontiguousarray(batch, np.float32)

    def run(self, inputs: np.ndarray) -> Any:
        self.request.infer({0: inputs})
        return self.request.get_output_tensor(0)

    def to_numpy(self, outputs: Any) -> np.ndarray:
        return np.array(outputs.data, copy=True)  # the request's buffer is reused by the next call

    def throughput_settings(self, batch_sizes: Sequence[int], threads: int) -> list[ThroughputSetting]:
        """Per batch size: the LATENCY hint's one infer request (what single-stream times), and the
        THROUGHPUT hint with as many infer requests as the compiled model calls optimal
        (OPTIMAL_NUMBER_OF_INFER_REQUESTS; OpenVINO's benchmark_app -hint throughput), its streams sharing
        the same `threads` threads. The streams and requests are read from one THROUGHPUT compile here."""
        compiled = compile_model(self.model, threads, self.precision, THROUGHPUT)
        requests = int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        streams = compiled.get_property("NUM_STREAMS")
        del compiled
        settings = []
        for size in batch_sizes:
            settings.append(ThroughputSetting(size, 1, "LATENCY hint"))
            settings.append(ThroughputSetting(size, requests, f"THROUGHPUT hint, {streams} streams"))
        return settings

    def callers(self, setting: ThroughputSetting, batch: np.ndarray) -> list[Callable[[], object]]:
        """The model compiled at the setting's batch size with its hint (this session's own compile is left as
        it is), and one infer request per caller, each run synchronously from its own thread (`infer`
        releases the GIL, as benchmark_app's asynchronous queue keeps its requests busy)."""
        hint = THROUGHPUT if setting.mode.startswith(THROUGHPUT) else LATENCY
        model = self.model if len(batch) == self._ir_batch() else with_batch(self.model, len(batch))
        compiled = compile_model(model, self.threads, self.precision, hint)
        inputs = np.ascontiguousarray(batch, np.float32)
        requests = [compiled.create_infer_request() for _ in range(setting.callers)]
        self._throughput_compiled = compiled  # kept while its requests are called (until the next setting)
        return [functools.partial(request.infer, {0: inputs}) for request in requests]

    def _ir_batch(self) -> int:
        return int(self.model.inputs[0].get_partial_shape()[0].get_length())

    def profile(self, inputs: np.ndarray, calls: int, work_dir: Path) -> Profile:
        """PERF_COUNT is a compile property: the same model compiled again with this session's configuration
        and the counters on (backends/openvino/profile.py). OpenVINO writes no file; `work_dir` stays empty."""
        from backends.openvino.profile import openvino_profile

        config = compile_config(self.threads, self.precision)
        return openvino_profile(self.compiled_model, config, inputs, calls, self.layer_tensors, self.node_layers)

    def notes(self) -> str:
        hint = self.compiled.get_property("INFERENCE_PRECISION_HINT")
        got = hint.get_type_name() if hasattr(hint, "get_type_name") else str(hint)
        return f"LATENCY hint, {self.compiled.get_property('INFERENCE_NUM_THREADS')} threads, float layers in {got}"
