"""Hugging Face semantic-segmentation models: the wrapper of the zoo's `segformer-b0` and a user's `hf:PATH` folder.

`transformers` is optional (`pip install 'segbench[transformers]'`): nothing here imports it until a model
is built, so `list_models()` works without it and building a model without it is one `UsageError`.

A transformers segmentation model returns a `SemanticSegmenterOutput` whose logits are at a fraction of
the input size (SegFormer: H/4 x W/4). `HuggingFaceSegmenter` returns plain (N, num_labels, H, W)
logits, upsampled as the models' own post-processing does (`post_process_semantic_segmentation`:
bilinear, `align_corners=False`), so every backend and metric sees what the zoo models give.

`--models hf:PATH` names a local folder written by `save_pretrained` (config.json + model.safetensors or
pytorch_model.bin); it is loaded with `AutoModelForSemanticSegmentation.from_pretrained(PATH,
local_files_only=True)` (nothing is downloaded) and brings its own trained weights: a run scores them as
the reference checkpoint instead of training (bench.training.checkpoints.imported_checkpoint). Its
labels and channels are checked against the suite's before any work starts (`check_suite_fits`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from bench.errors import UsageError

if TYPE_CHECKING:
    from bench.data.suite import Suite

HF_PREFIX = "hf:"
INSTALL = "pip install 'segbench[transformers]'"
WEIGHT_FILES = (  # the weights, or the index of a sharded save
    "model.safetensors",
    "pytorch_model.bin",
    "model.safetensors.index.json",
    "pytorch_model.bin.index.json",
)
# the default Grad-CAM layer per transformers model type: a spatial (N, C, h, w) feature map before the classifier
GRADCAM_LAYERS = {"segformer": "model.decode_head.activation"}  # the fused MLP features after BN + ReLU


def require_transformers(what: str) -> Any:
    """The `transformers` module, or one line saying how to install it."""
    try:
        import transformers
    except ImportError as exc:
        raise UsageError(f"{what} needs Hugging Face transformers: {INSTALL}") from exc
    return transformers


def _install_output_hooks(model: nn.Module) -> None:
    """transformers 5 installs a model's output-capturing hooks (SegFormer's head reads every stage's hidden
    states through them) at the first forward that asks, under a `threading.Lock` that Dynamo cannot enter:
    `torch.export.export(strict=True)` (the PT2E backend) then fails with "Unsupported context manager".
    Installed now, outside any trace, they are what that first forward would have installed."""
    try:
        from transformers.utils.output_capturing import maybe_install_capturing_hooks
    except ImportError:  # a transformers without them has no lock to avoid
        return
    maybe_install_capturing_hooks(model)


class HuggingFaceSegmenter(nn.Module):
    """A transformers semantic-segmentation model as (N, C, H, W) -> (N, num_labels, H, W) logits."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        _install_output_hooks(model)
        self.model = model
        layer = GRADCAM_LAYERS.get(getattr(model.config, "model_type", ""))
        if layer is not None:  # else none: Grad-CAM then asks for --gradcam-layer model.<module path>
            self.gradcam_layer = layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.model(pixel_values=x, return_dict=False)[0]
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)


def folder(spec: str) -> Path:
    return Path(spec[len(HF_PREFIX) :]).expanduser()


def _check_folder(spec: str) -> Path:
    path = folder(spec)
    if not path.is_dir():
        raise UsageError(f"--models {spec}: '{path}' is not a folder; expected a Hugging Face model folder")
    if not (path / "config.json").is_file():
        raise UsageError(f"--models {spec}: '{path}' has no config.json; expected a folder written by save_pretrained")
    if not any((path / name).is_file() for name in WEIGHT_FILES):
        raise UsageError(f"--models {spec}: '{path}' has no weights ({' or '.join(WEIGHT_FILES[:2])})")
    return path


def weight_files(spec: str) -> list[Path]:
    """The files the model is built from (config and weights): their digests key its cached checkpoint."""
    path = _check_folder(spec)
    return sorted(p for p in path.iterdir() if p.is_file() and p.suffix in (".json", ".safetensors", ".bin"))


def load_config(spec: str) -> Any:
    transformers = require_transformers(f"--models {spec}")
    path = _check_folder(spec)
    try:
        return transformers.AutoConfig.from_pretrained(path, local_files_only=True)
    except Exception as exc:
        raise UsageError(f"--models {spec}: cannot read {path / 'config.json'}: {_one_line(exc)}") from exc


def _one_line(exc: BaseException) -> str:
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__


def _labels(config: Any) -> list[str]:
    id2label = getattr(config, "id2label", None) or {}
    return [str(id2label.get(i, id2label.get(str(i), f"LABEL_{i}"))) for i in range(config.num_labels)]


def _default_labels(labels: list[str]) -> bool:
    return labels == [f"LABEL_{i}" for i in range(len(labels))]


def _shown(names: list[str] | tuple[str, ...], limit: int = 4) -> str:
    return ", ".join(names[:limit]) + (", ..." if len(names) > limit else "")


def _key(name: str) -> str:
    return re.sub(r"[\s_-]+", "", name.lower())


def check_fits(spec: str, config: Any, in_channels: int, num_classes: int, suite: Suite | None = None) -> None:
    """The model's labels and input channels against the suite's: one line naming the mismatch."""
    labels = _labels(config)
    where = f"suite '{suite.name}'" if suite is not None else "the suite"
    if config.num_labels != num_classes:
        classes = f" ({_shown(suite.classes)})" if suite is not None else ""
        raise UsageError(
            f"--models {spec}: the model has {config.num_labels} labels ({_shown(labels)}); "
            f"{where} has {num_classes} classes{classes}"
        )
    if suite is not None and not _default_labels(labels):
        differ = [(i, a, b) for i, (a, b) in enumerate(zip(labels, suite.classes)) if _key(a) != _key(b)]
        if differ:
            shown = ", ".join(f"label {i} {a!r} vs {b!r}" for i, a, b in differ[:3])
            raise UsageError(
                f"--models {spec}: the model's labels ({_shown(labels)}) differ from the classes of {where} "
                f"({_shown(suite.classes)}): {shown}{', ...' if len(differ) > 3 else ''}"
            )
    channels = getattr(config, "num_channels", None)
    if channels is not None and channels != in_channels:
        raise UsageError(
            f"--models {spec}: the model takes {channels}-channel images (num_channels); "
            f"{where} has {in_channels}-channel images"
        )


def check_suite_fits(spec: str, suite: Suite) -> None:
    """Before any work: the folder, its config, and its labels and channels against `suite`."""
    check_fits(spec, load_config(spec), suite.in_channels, suite.num_classes, suite)


def build_hf(spec: str, in_channels: int, num_classes: int) -> HuggingFaceSegmenter:
    """The folder's model with its own weights, wrapped; its labels and channels checked against the counts."""
    transformers = require_transformers(f"--models {spec}")
    config = load_config(spec)
    check_fits(spec, config, in_channels, num_classes)
    try:
        model = transformers.AutoModelForSemanticSegmentation.from_pretrained(folder(spec), local_files_only=True)
    except Exception as exc:
        raise UsageError(f"--models {spec}: AutoModelForSemanticSegmentation cannot load it: {_one_line(exc)}") from exc
    return HuggingFaceSegmenter(model).eval()
