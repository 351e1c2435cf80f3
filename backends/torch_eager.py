"""PyTorch eager execution: the float reference every other backend is compared with."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.backend import Artifact, Backend, PrepareContext, Session
from bench.models import create_model

WEIGHTS_FILE = "weights.pt"


class TorchEagerSession(Session):
    def __init__(self, model: torch.nn.Module, device: str) -> None:
        self.model = model
        self.device = torch.device(device)

    def to_input(self, batch: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(batch).to(self.device)

    def run(self, inputs: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return self.model(inputs)

    def to_numpy(self, outputs: torch.Tensor) -> np.ndarray:
        return outputs.float().cpu().numpy()

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


class TorchEagerBackend(Backend):
    name = "torch-eager"
    precisions = ("fp32",)
    devices = ("cpu", "cuda")

    def unavailable_reason(self, device: str) -> str | None:
        if reason := super().unavailable_reason(device):
            return reason
        if device == "cuda" and not torch.cuda.is_available():
            return "torch reports no CUDA device"
        return None

    def prepare(self, ctx: PrepareContext, out_dir: Path) -> dict[str, Any]:
        torch.save(ctx.model.state_dict(), out_dir / WEIGHTS_FILE)
        return {"model_name": ctx.model_name, "in_channels": ctx.input_shape[0], "num_classes": ctx.num_classes}

    def load(self, artifact: Artifact, device: str, threads: int) -> Session:
        torch.set_num_threads(threads)
        meta = artifact.meta
        model = create_model(meta["model_name"], meta["in_channels"], meta["num_classes"])
        model.load_state_dict(torch.load(artifact.directory / WEIGHTS_FILE, map_location="cpu", weights_only=True))
        return TorchEagerSession(model.eval().to(device), device)
