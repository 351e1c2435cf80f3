"""PyTorch eager execution: the float reference every other backend is compared with.

fp16 and bf16 cast weights and inputs (the saved weights too, so the size is the deployed one);
`channels_last` stores activations NHWC, which oneDNN and cuDNN often prefer. On CUDA each call is
timed with CUDA events recorded on the session's own stream, and device memory with the caching
allocator's peak counter.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.backend import (
    Artifact,
    Backend,
    BackendOptions,
    GradcamMaps,
    GradcamRequest,
    PrepareContext,
    Profile,
    Session,
)
from bench.measure.device_timing import CudaEventTimer
from bench.models import create_model

WEIGHTS_FILE = "weights.pt"
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


class TorchEagerSession(Session):
    concurrent_runs = False  # torch: throughput comes from the batch (one caller, all the threads)

    def __init__(self, model: torch.nn.Module, device: str, dtype: torch.dtype, channels_last: bool) -> None:
        self.model = model
        self.device = torch.device(device)
        self.dtype = dtype
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        if self.device.type == "cuda":
            self.timer = "cuda_event"
            self.stream = torch.cuda.Stream(self.device)
            self.event_timer = CudaEventTimer(self.stream)

    def to_input(self, batch: np.ndarray) -> torch.Tensor:
        tensor = torch.from_numpy(batch).to(self.device, self.dtype).contiguous(memory_format=self.memory_format)
        self.synchronize()
        return tensor

    def run(self, inputs: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            if self.device.type == "cuda":
                with torch.cuda.stream(self.stream):
                    return self.model(inputs)
            return self.model(inputs)

    def to_numpy(self, outputs: torch.Tensor) -> np.ndarray:
        self.synchronize()
        return outputs.float().cpu().numpy()

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            self.stream.synchronize()

    def time_call(self, inputs: torch.Tensor) -> int:
        if self.device.type != "cuda":
            return super().time_call(inputs)
        return self.event_timer.time_ns(lambda: self.run(inputs))

    def profile(self, inputs: torch.Tensor, calls: int, work_dir: Path) -> Profile:
        """torch.profiler with a `layer::<path>` range around every leaf module (forward hooks, removed
        afterwards), so each outermost op is attributed to the module that ran it."""
        from backends.torch.profile import layer_ranges, profile_calls

        with layer_ranges(self.model):
            passed = profile_calls(
                lambda: self.run(inputs), self.synchronize, calls, work_dir, cuda=self.device.type == "cuda"
            )
        return passed.to_profile(
            [event.range_layer for event in passed.events],
            attribution="module hooks",
            notes="ops a forward calls outside its leaf modules (torch.cat, functional calls) have no layer",
        )

    def reset_device_memory(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)

    def device_memory_peak(self) -> tuple[float, str] | None:
        if self.device.type != "cuda":
            return None
        return torch.cuda.max_memory_allocated(self.device) / 2**20, "torch.cuda.max_memory_allocated"


@dataclass(frozen=True)
class TorchEagerOptions(BackendOptions):
    channels_last: bool = False  # NHWC activations, which oneDNN and cuDNN often prefer


class TorchEagerBackend(Backend):
    name = "torch-eager"
    precisions = ("fp32", "fp16", "bf16")
    devices = ("cpu", "cuda")
    Options = TorchEagerOptions
    libraries = ("torch",)

    def unavailable_reason(self, device: str) -> str | None:
        if reason := super().unavailable_reason(device):
            return reason
        if device == "cuda" and not torch.cuda.is_available():
            return "torch reports no CUDA device"
        return None

    def prepare(self, ctx: PrepareContext, out_dir: Path) -> dict[str, Any]:
        state = {
            k: v.to(DTYPES[ctx.precision]) if v.is_floating_point() else v for k, v in ctx.model.state_dict().items()
        }
        torch.save(state, out_dir / WEIGHTS_FILE)
        channels_last = TorchEagerOptions.of(ctx.options).channels_last
        return {
            "model_name": ctx.model_name,
            "in_channels": ctx.input_shape[0],
            "num_classes": ctx.num_classes,
            "precision": ctx.precision,
            "notes": "channels_last" if channels_last else "",
        }

    def _model(self, artifact: Artifact, device: str) -> tuple[torch.nn.Module, torch.dtype, bool]:
        """The artifact's model in its own precision and memory format: (model, dtype, channels_last)."""
        meta = artifact.meta
        dtype = DTYPES[meta.get("precision", "fp32")]
        channels_last = TorchEagerOptions.of(self.artifact_options(artifact)).channels_last
        model = create_model(meta["model_name"], meta["in_channels"], meta["num_classes"])
        model.load_state_dict(torch.load(artifact.directory / WEIGHTS_FILE, map_location="cpu", weights_only=True))
        model = model.eval().to(device=device, dtype=dtype)
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        return model, dtype, channels_last

    def load(self, artifact: Artifact, device: str, threads: int) -> Session:
        torch.set_num_threads(threads)
        model, dtype, channels_last = self._model(artifact, device)
        return TorchEagerSession(model, device, dtype, channels_last)

    def gradcam(self, artifact: Artifact, request: GradcamRequest) -> GradcamMaps:
        """Autograd in the artifact's own precision (the saved fp16/bf16 weights, not the fp32 model).
        A precision whose backward kernels are missing on the device raises `GradcamUnsupported`."""
        from bench.gradcam.method import gradcam_autograd

        torch.set_num_threads(request.threads)
        start = time.perf_counter()
        model, dtype, channels_last = self._model(artifact, request.device)
        maps = gradcam_autograd(
            model,
            request.images,
            request.layers,
            request.classes,
            dtype=dtype,
            device=request.device,
            channels_last=channels_last,
        )
        seconds = (time.perf_counter() - start) / max(len(request.images), 1)
        precision = artifact.meta.get("precision", "fp32")
        return GradcamMaps(
            maps=maps,
            method="autograd",
            seconds_per_image=seconds,
            notes=f"autograd in {precision}" + (", channels_last" if channels_last else ""),
        )
