"""Bring-your-own models: `--model package.module:factory`, optionally with `--weights FILE`.

Most users benchmark their own trained network, not a zoo model, so a model may be named by the
import path of a factory (a callable returning an `nn.Module`). Every way this can go wrong is checked
up front, before any cell starts, and reported in one line that names what to fix.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.errors import UsageError

if TYPE_CHECKING:  # torch is imported lazily
    from torch import nn

    from bench.data.suite import Suite


def is_external(spec: str) -> bool:
    """A model spec with a colon is `package.module:factory` or `hf:PATH`; registry names have none."""
    return ":" in spec


# --- `hf:PATH`: a local Hugging Face folder (bench.models.huggingface), the one prefix that is not a module ---


def is_huggingface(spec: str) -> bool:
    return spec.startswith("hf:")


def code_module(spec: str) -> str:
    """The module whose source closure builds the model (cache keys): the factory's, or the HF wrapper's."""
    return "bench.models.huggingface" if is_huggingface(spec) else spec.partition(":")[0]


def check_suite(spec: str, suite: Suite) -> None:
    """`hf:PATH` only: its labels and channels against the suite's, one line naming a mismatch."""
    if is_huggingface(spec):
        from bench.models.huggingface import check_suite_fits

        check_suite_fits(spec, suite)


# --- `package.module:factory` ---


def load_factory(spec: str) -> Callable[..., Any]:
    if is_huggingface(spec):
        from bench.models.huggingface import build_hf, load_config

        load_config(spec)  # the folder, its config.json and transformers, checked now
        return lambda in_channels, num_classes: build_hf(spec, in_channels, num_classes)
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise UsageError(f"--model '{spec}' is not of the form package.module:factory")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # any import-time failure of the user's code is a usage error here
        raise UsageError(f"--model '{spec}': cannot import '{module_name}': {type(exc).__name__}: {exc}") from exc
    target: Any = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise UsageError(f"--model '{spec}': module '{module_name}' has no attribute '{attribute}'")
        target = getattr(target, part)
    if not callable(target):
        raise UsageError(
            f"--model '{spec}': '{attribute}' is a {type(target).__name__}, expected a callable returning an nn.Module"
        )
    return target


def source_file(spec: str) -> Path:
    """The factory's module file, so a changed model invalidates cached checkpoints and artifacts."""
    module = importlib.import_module(code_module(spec))
    return Path(module.__file__ or "")


def build_external(spec: str, in_channels: int, num_classes: int) -> nn.Module:
    """Call the factory; `in_channels` / `num_classes` are passed when it accepts them by name."""
    from torch import nn

    if is_huggingface(spec):
        from bench.models.huggingface import build_hf

        return build_hf(spec, in_channels, num_classes)
    factory = load_factory(spec)
    try:
        parameters: Mapping[str, inspect.Parameter] = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        parameters = {}
    kwargs = {k: v for k, v in (("in_channels", in_channels), ("num_classes", num_classes)) if k in parameters}
    try:
        model = factory(**kwargs)
    except Exception as exc:
        raise UsageError(f"--model '{spec}': the factory raised {type(exc).__name__}: {exc}") from exc
    if not isinstance(model, nn.Module):
        raise UsageError(f"--model '{spec}': the factory returned a {type(model).__name__}, expected a torch.nn.Module")
    return model.eval()


def read_state_dict(path: Path) -> dict[str, Any]:
    """A state dict from `path`, loaded with `weights_only=True` (no code runs from the file).

    Accepts a bare state dict or the common wrappers `{"state_dict": ...}` / `{"model": ...}`.
    """
    import torch

    if not path.is_file():
        raise UsageError(f"--weights '{path}' does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise UsageError(
            f"--weights '{path}': cannot load with weights_only=True: {type(exc).__name__}: {str(exc).splitlines()[0]}"
        ) from exc
    for key in ("state_dict", "model"):
        if isinstance(payload, dict) and isinstance(payload.get(key), dict):
            payload = payload[key]
    if not isinstance(payload, dict) or not all(isinstance(k, str) for k in payload):
        raise UsageError(
            f"--weights '{path}': expected a state dict (parameter name -> tensor), found {type(payload).__name__}"
        )
    return payload


def _names(keys: list[str], limit: int = 4) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" (+{len(keys) - limit} more)" if len(keys) > limit else "")


def load_weights(model: nn.Module, state: dict[str, Any], path: Path) -> None:
    """Strict loading, with the missing / unexpected / mis-shaped keys named in the error."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in own
        if k in state and hasattr(state[k], "shape") and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing keys: {_names(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_names(unexpected)}")
    if shapes:
        problems.append(f"shape mismatch (file vs model): {_names(shapes, 2)}")
    if problems:
        raise UsageError(f"--weights '{path}' does not fit the model: {'; '.join(problems)}")
    model.load_state_dict(state)


def check_output_shape(
    model: nn.Module, spec: str, in_channels: int, input_size: tuple[int, int], num_classes: int
) -> None:
    """One forward on zeros: logits must be (1, num_classes or 1, H, W) at the suite's input size."""
    import torch

    try:
        with torch.no_grad():
            out = model(torch.zeros(1, in_channels, *input_size))
    except Exception as exc:
        raise UsageError(
            f"--model '{spec}': forward on a (1, {in_channels}, {input_size[0]}, {input_size[1]}) "
            f"input failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        ) from exc
    if not isinstance(out, torch.Tensor):
        raise UsageError(f"--model '{spec}': forward returned a {type(out).__name__}, expected a logits tensor")
    expected = (
        {(1, num_classes, *input_size), (1, 1, *input_size)} if num_classes == 2 else {(1, num_classes, *input_size)}
    )
    if tuple(out.shape) not in expected:
        want = " or ".join(str(s) for s in sorted(expected))
        raise UsageError(f"--model '{spec}': output shape {tuple(out.shape)} does not fit the suite; expected {want}")
