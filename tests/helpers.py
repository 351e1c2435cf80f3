"""Helpers shared by the backend and Grad-CAM tests."""

from __future__ import annotations

import functools
import platform
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bench.backend import Artifact, Backend, PrepareContext
from bench.run.artifacts import prepare_into

# The real data sets beside the checkout (../shared/data); tests that need them skip cleanly without them.
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# Instructions that multiply u8 x s8 and sum into int32 in one step (VNNI, AMX). Without them (an AVX2-only
# EPYC, say) the int8 kernels of ONNX Runtime, OpenVINO, FBGEMM and oneDNN sum pairs of products in int16
# with saturation (vpmaddubsw), as ONNX Runtime's quantization guide says: the result then depends on the
# kernel's path, so a cut head, another batch size or a compiled program no longer reproduces the deployed
# graph's logits exactly, and segbench says so in the row rather than explain other arithmetic.
INT8_DOT_PRODUCT_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})


@functools.cache
def int8_sums_saturate() -> bool:
    """True on an x86 CPU without VNNI or AMX (its /proc/cpuinfo flags), False elsewhere."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    from bench.environment import machine_identity

    return not (set(machine_identity(1).get("cpu_flags") or []) & INT8_DOT_PRODUCT_FLAGS)


# For tests of int8 arithmetic that is exact only where the CPU sums int8 products without saturating.
needs_exact_int8_sums = pytest.mark.skipif(
    int8_sums_saturate(),
    reason="this x86 CPU has no VNNI or AMX: its runtimes' int8 kernels sum products in saturating int16 "
    "(vpmaddubsw), so int8 results depend on the kernel's path (tests/helpers.py)",
)


class TinyTransformer(nn.Module):
    """The op types a SegFormer block has, on (N, 3, H, W) in a few hundred weights: a dense and a depthwise
    conv, LayerNorm, two Linears, a MatMul between activations (attention scores) and another (scores times
    values), Softmax, the residual Add, GELU, and a 1x1 conv head to 2 classes."""

    def __init__(self, channels: int = 8) -> None:
        super().__init__()
        self.patch = nn.Conv2d(3, channels, 3, padding=1)
        self.depthwise = nn.Conv2d(channels, channels, 3, padding=1, groups=channels)
        self.norm = nn.LayerNorm(channels)
        self.query = nn.Linear(channels, channels)
        self.proj = nn.Linear(channels, channels)
        self.head = nn.Conv2d(channels, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.depthwise(self.patch(x))
        n, c, h, w = y.shape
        tokens = self.norm(y.flatten(2).transpose(1, 2))  # (N, HW, C)
        scores = torch.softmax(torch.matmul(self.query(tokens), tokens.transpose(1, 2)) * c**-0.5, dim=-1)
        tokens = nn.functional.gelu(tokens + self.proj(torch.matmul(scores, tokens)))
        return self.head(tokens.transpose(1, 2).reshape(n, c, h, w))


def tiny_transformer() -> tuple[nn.Module, np.ndarray]:
    """A `TinyTransformer` (seeded random weights, eval mode) and 4 calibration images of 3x8x8."""
    torch.manual_seed(0)
    calibration = np.random.default_rng(0).standard_normal((4, 3, 8, 8)).astype(np.float32)
    return TinyTransformer().eval(), calibration


def prepare(
    backend: Backend,
    folder: Path,
    model: nn.Module,
    calibration: np.ndarray,
    *,
    model_name: str = "unet",
    num_classes: int = 2,
    options: dict[str, str] | None = None,
    precision: str | None = None,
    device: str = "cpu",
    onnx_path: Path | None = None,
) -> Artifact:
    """An artifact prepared as a run prepares it (options parsed, metadata stored as JSON), without the cache."""
    ctx = PrepareContext(
        model_name=model_name,
        model=model,
        calibration=calibration,
        input_shape=tuple(calibration.shape[1:]),
        num_classes=num_classes,
        precision=precision or backend.default_precision,
        device=device,
        options=backend.parse_options(options or {}),
        onnx_path=onnx_path,
    )
    return Artifact(folder, prepare_into(backend, ctx, folder))


@contextmanager
def busy_cores(count: int = 1, seconds: float = 120.0) -> Iterator[None]:
    """`count` processes that each keep one core busy, bounded in time (they stop by themselves after
    `seconds`) and stopped when the block ends: the background load of a shared CI runner."""
    code = f"import time\nend = time.time() + {seconds}\nwhile time.time() < end:\n    pass\n"
    processes = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(count)]
    try:
        time.sleep(0.5)  # let the scheduler see them
        yield
    finally:
        for process in processes:
            process.kill()
            process.wait(timeout=10)


def segbench_process(args: list[str], env: dict[str, str], **kwargs) -> subprocess.Popen:
    """`segbench ARGS` in a session of its own (so a test can kill it and every worker with one signal)."""
    return subprocess.Popen(
        [sys.executable, "-m", "bench.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        **kwargs,
    )


class TokenMix(nn.Module):
    """A Linear over a feature map's tokens: its output is (B, N, C) tokens, or with `spatial` the same values
    put back on the grid (B, C, h, w), the 4-D twin of the token layer; with `pair`, (tokens, None) as a
    transformer block returns its hidden states and attention weights."""

    def __init__(self, linear: nn.Linear, spatial: bool = False, pair: bool = False) -> None:
        super().__init__()
        self.linear, self.spatial, self.pair = linear, spatial, pair

    def forward(self, features: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, None]:
        batch, _, height, width = features.shape
        tokens = self.linear(features.flatten(2).transpose(1, 2))
        if self.spatial:
            return tokens.transpose(1, 2).reshape(batch, -1, height, width)
        return (tokens, None) if self.pair else tokens


class TokenNet(nn.Module):
    """A stride-2 conv embedding, a token layer `mix` (`TokenMix`), a Linear classifier over the tokens, and
    the class tokens back on their grid, bilinearly upsampled: the smallest model with a transformer-style
    token layer whose output an int8 graph quantizes (the classifier reads it). Traceable by FX."""

    def __init__(self, in_channels: int = 1, classes: int = 3, spatial: bool = False, pair: bool = False) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.embed = nn.Conv2d(in_channels, 6, 3, stride=2, padding=1)
        self.mix = TokenMix(nn.Linear(6, 5), spatial, pair)
        self.classifier = nn.Linear(5, classes)
        with torch.no_grad():  # the same weights for every variant
            for parameter in self.parameters():
                parameter.copy_(torch.randn(parameter.shape, generator=generator))
        self.spatial, self.pair = spatial, pair

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.embed(x)
        mixed = self.mix(features)
        if self.pair:
            mixed = mixed[0]
        if self.spatial:
            mixed = mixed.flatten(2).transpose(1, 2)
        logits = self.classifier(mixed)
        grid = logits.transpose(1, 2).reshape(x.shape[0], -1, features.shape[2], features.shape[3])
        return F.interpolate(grid, size=x.shape[-2:], mode="bilinear", align_corners=False)
