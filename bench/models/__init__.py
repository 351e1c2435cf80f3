"""Model registry: a decorator fills a dict; `list_models` and `create_model` are the whole API.

Every factory takes `(in_channels, num_classes)` and returns an `nn.Module` that maps
(N, in_channels, H, W) float images to (N, num_classes, H, W) logits. Each model class names its
default Grad-CAM feature layer in `gradcam_layer`. A name with a colon (`package.module:factory`) is a
user's own model, resolved by `bench.models.external` instead of the registry; so is `hf:PATH`, a local
Hugging Face folder (`bench.models.huggingface`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from bench.errors import unknown_name


@dataclass(frozen=True)
class ModelEntry:
    name: str
    factory: Callable[[int, int], nn.Module]
    source_file: Path
    module: str = ""  # the module that defines the model: its source closure is part of cache keys


_REGISTRY: dict[str, ModelEntry] = {}
_BUILTIN_MODULES = (
    "bench.models.unet",
    "bench.models.deeplabv3plus_resnet18",
    "bench.models.hrnet_w18_small",
    "bench.models.vgg16_unet",
    "bench.models.deeplabv3plus_mobilenetv2",
    "bench.models.lraspp_mobilenetv3",
    "bench.models.segformer_b0",
)


def register_model(name: str) -> Callable:
    def wrap(factory: Callable[[int, int], nn.Module]) -> Callable[[int, int], nn.Module]:
        module = importlib.import_module(factory.__module__)
        _REGISTRY[name] = ModelEntry(name, factory, Path(module.__file__ or ""), factory.__module__)
        return factory

    return wrap


def _load_builtins() -> None:
    for module in _BUILTIN_MODULES:
        importlib.import_module(module)


def list_models() -> list[str]:
    _load_builtins()
    return sorted(_REGISTRY)


def get_model_entry(name: str) -> ModelEntry:
    """A registered model, or an external `package.module:factory` (see bench.models.external)."""
    from bench.models import external

    if external.is_external(name):
        external.load_factory(name)
        return ModelEntry(
            name,
            lambda c, n: external.build_external(name, c, n),
            external.source_file(name),
            external.code_module(name),
        )
    _load_builtins()
    if name not in _REGISTRY:
        raise unknown_name("model", name, list(_REGISTRY))
    return _REGISTRY[name]


def create_model(name: str, in_channels: int, num_classes: int) -> nn.Module:
    return get_model_entry(name).factory(in_channels, num_classes)


def model_code_modules(name: str, model: nn.Module) -> tuple[str, ...]:
    """The modules whose source builds `model`: the factory's and the class's (a user's factory may live
    apart from its class). Cache keys hash their source closures, since a forward can change while
    the weights stay the same."""
    return tuple(dict.fromkeys((get_model_entry(name).module, type(model).__module__)))
