"""Reference checkpoints: trained once per (model, suite, recipe) or imported from a user's weights,
and cached under a key that covers everything that changes the weights (model source, suite, recipe,
training code)."""

from __future__ import annotations

import contextlib
import io
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bench.cache import (
    NUMERICAL_LIBRARIES,
    atomic_write_bytes,
    cache_root,
    code_digest,
    file_digest,
    library_versions,
    stable_hash,
)
from bench.data.suite import Suite
from bench.errors import UsageError
from bench.models import create_model, get_model_entry
from bench.output.terminal import terminal
from bench.training.recipes import DEFAULT_RECIPE, Recipe, describe
from bench.training.trainer import evaluate_model, train_model


def checkpoint_key(model_name: str, suite: Suite, recipe: Recipe) -> str:
    """Everything that changes the trained weights: the model's code, the data, the recipe, the training
    code (with everything it imports) and the numerical libraries."""
    return stable_hash(
        {
            "model": model_name,
            "code": code_digest(get_model_entry(model_name).module, "bench.training.trainer"),
            "suite": suite.config(include_tuning=False),
            "recipe": asdict(recipe),
            "libraries": _libraries(model_name),
        }
    )


def _libraries(model_name: str) -> dict[str, str | None]:
    """The numerical libraries' versions, and transformers' for a model it builds (its code is the model's)."""
    hf = get_model_entry(model_name).module in ("bench.models.huggingface", "bench.models.segformer_b0")
    return library_versions((*NUMERICAL_LIBRARIES, "transformers") if hf else NUMERICAL_LIBRARIES)


def _file_label(model_name: str) -> str:
    if model_name.startswith("hf:"):  # the folder's name: a path may be long (the key tells folders apart)
        return "hf_" + Path(model_name[3:]).name
    return model_name.replace(":", "_").replace("/", "_")


def checkpoint_path(model_name: str, suite: Suite, recipe: Recipe = DEFAULT_RECIPE) -> Path:
    return (
        cache_root()
        / "checkpoints"
        / f"{_file_label(model_name)}--{suite.name}--{checkpoint_key(model_name, suite, recipe)}.pt"
    )


def ensure_checkpoint(
    model_name: str,
    suite: Suite,
    recipe: Recipe = DEFAULT_RECIPE,
    progress: bool = True,
    force: bool = False,
    recipe_name: str | None = None,
) -> Path:
    """The cached checkpoint, trained first when it is missing (or when `force`); with `progress`, a line
    says which recipe trains (`recipe_name`: the suite's `recipe`). The key covers the recipe's values
    (`checkpoint_key`), not its name: two names for the same values share a checkpoint."""
    path = checkpoint_path(model_name, suite, recipe)
    if path.exists() and not force:
        return path
    suite.load("train")  # the data first: a missing data folder stays the one line a failing command prints
    if progress:
        named = f" with recipe {recipe_name}" if recipe_name else ""
        print(f"training {model_name} on {suite.name}{named}: {describe(recipe)}", file=terminal(), flush=True)
    # the training bar is segbench's own: on the terminal also while a run captures the libraries' output
    # (trainer.py's tqdm writes to sys.stderr; left untouched, since it is in every checkpoint's key)
    with contextlib.redirect_stderr(terminal()):
        model, meta = train_model(model_name, suite, recipe, progress)
    if recipe_name:
        meta["recipe_name"] = recipe_name
    buffer = io.BytesIO()
    torch.save({"state_dict": model.state_dict(), "meta": meta}, buffer)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def imported_checkpoint(model_name: str, suite: Suite, weights: Path | None, progress: bool = True) -> Path:
    """A checkpoint from a user's own weights (--weights), or from the weights an `hf:PATH` folder brings
    (`weights` None): loaded strictly with `weights_only=True` (a folder: by `from_pretrained`), scored on
    the evaluation split so the reference's quality is on record, cached by content."""
    from bench.models.external import check_output_shape, is_huggingface, load_weights, read_state_dict

    if weights is None and not is_huggingface(model_name):
        raise ValueError(f"model '{model_name}' brings no weights of its own; name a weights file")
    if weights is None:
        from bench.models.huggingface import weight_files

        source: Any = {p.name: file_digest(p) for p in weight_files(model_name)}
    else:
        source = file_digest(weights)
    key = stable_hash(
        {
            "model": model_name,
            "code": code_digest(get_model_entry(model_name).module, "bench.training.trainer"),
            "libraries": _libraries(model_name),
            "weights": source,
            "suite": suite.config(include_tuning=False),
        }
    )
    path = cache_root() / "checkpoints" / f"{_file_label(model_name)}--{suite.name}--weights-{key}.pt"
    if path.exists():
        return path
    model = create_model(model_name, suite.in_channels, suite.num_classes)
    if weights is not None:
        load_weights(model, read_state_dict(weights), weights)
    check_output_shape(model, model_name, suite.in_channels, suite.input_size, suite.num_classes)
    scores = evaluate_model(model, suite)
    meta: dict[str, Any] = {
        "model": model_name,
        "suite": suite.name,
        "recipe": None,
        "weights_file": str(weights if weights is not None else model_name),
        "loss_curve": [],
        "train_seconds": 0.0,
        "evaluation_dice": scores.dice,
        "evaluation_miou": scores.miou,
        "evaluation_scores": scores.as_dict(list(suite.classes)),
        "torch_version": str(torch.__version__),
    }
    buffer = io.BytesIO()
    torch.save({"state_dict": model.state_dict(), "meta": meta}, buffer)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def load_checkpoint(model_name: str, suite: Suite, path: Path) -> tuple[nn.Module, dict[str, Any]]:
    payload = torch.load(path, map_location="cpu", weights_only=True)
    model = create_model(model_name, suite.in_channels, suite.num_classes)
    model.load_state_dict(payload["state_dict"])
    return model.eval(), payload["meta"]


def export_checkpoint(path: Path, target: Path) -> str:
    """Copy a reference checkpoint to `target` (for another machine: `segbench run --checkpoint`); its digest."""
    if target.exists() and target.is_dir():
        raise UsageError(f"--export {target}: is a folder; expected a file name")
    atomic_write_bytes(target, path.read_bytes())
    return file_digest(target)


def check_travelling_checkpoint(path: Path, model_name: str, suite: Suite) -> None:
    """A checkpoint from `segbench train --export` must be one, for this model and suite, or the run stops
    with one line before anything is written."""
    if not path.is_file():
        raise UsageError(f"--checkpoint '{path}' does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        meta, state = payload["meta"], payload["state_dict"]
    except Exception as exc:
        raise UsageError(
            f"--checkpoint '{path}': not a segbench checkpoint ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else 'no message'}); make one with segbench train --export"
        ) from exc
    if meta.get("model") != model_name or meta.get("suite") != suite.name:
        raise UsageError(
            f"--checkpoint '{path}' holds model '{meta.get('model')}' trained on suite '{meta.get('suite')}'; "
            f"this run is model '{model_name}' on suite '{suite.name}'"
        )
    model = create_model(model_name, suite.in_channels, suite.num_classes)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise UsageError(
            f"--checkpoint '{path}': its weights do not fit model '{model_name}' ({str(exc).splitlines()[0]})"
        ) from exc
