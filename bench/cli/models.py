"""`segbench list` (suites, models, backends) and `segbench train` (the cached reference checkpoint)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bench.cli.options import _add_split, examples
from bench.errors import UsageError


def add_models_parsers(sub: Any) -> None:
    """list and train, in the order the top-level help lists them."""
    from bench.run.config import DEFAULT_SUITE

    lister = sub.add_parser(
        "list",
        help="list suites, models or backends",
        epilog=examples("segbench list backends", "segbench list suites --data-dir data/"),
    )
    lister.add_argument("what", choices=("suites", "models", "backends"), help="what to list")

    lister.add_argument("--data-dir", type=Path, metavar="DIR", help="where to look for a suite's data")

    train = sub.add_parser(
        "train",
        help="train (or find) the cached reference checkpoint",
        epilog=examples(
            "segbench train --model unet",
            "segbench train --model unet --export unet.pt  # then: segbench run --checkpoint unet.pt elsewhere",
        ),
    )
    train.add_argument("--suite", default=DEFAULT_SUITE, help="the suite whose training split it learns")
    train.add_argument("--model", default="unet", help="the model (a zoo name or package.module:factory)")
    train.add_argument("--data-dir", type=Path, metavar="DIR", help="the suite's data folder")
    _add_split(train)
    train.add_argument("--force", action="store_true", help="retrain even when a checkpoint is cached")
    train.add_argument(
        "--export",
        type=Path,
        metavar="FILE",
        help="also write the checkpoint to FILE, for runs on other machines (segbench run --checkpoint)",
    )


def _cmd_list(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    rows: list[tuple[Any, ...]]
    if args.what == "suites":
        from bench.data.suite import get_suite, list_suites

        rows = [
            (
                n,
                (s := get_suite(n, data_dir=args.data_dir)).source,
                len(s.classes),
                "x".join(map(str, s.input_size)),
                s.data_status(),
                s.description,
            )
            for n in list_suites()
        ]
        print(tabulate(rows, headers=["suite", "source", "classes", "input (HxW)", "data", "description"]))
    elif args.what == "models":
        from bench.models import create_model, list_models
        from bench.output.capture import captured_command

        rows = []
        with captured_command():  # building segformer-b0 imports transformers, and torchao prints what it lacks
            for name in list_models():
                try:
                    model = create_model(name, 3, 2)
                except UsageError as exc:  # an optional library missing (segformer-b0: transformers)
                    rows.append((name, "", "", f"unavailable: {exc}"))
                    continue
                layers = getattr(model, "gradcam_layers", {})
                rows.append(
                    (
                        name,
                        f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f}M",
                        getattr(model, "gradcam_layer", ""),
                        ", ".join(f"{k}={v}" for k, v in layers.items()),
                    )
                )
        print(tabulate(rows, headers=["model", "parameters (3 in, 2 classes)", "grad-cam layer", "other layers"]))
    else:
        from bench.backend import get_backend, list_backends

        rows = []
        for name in list_backends():
            try:
                backend = get_backend(name)
                status = backend.unavailable_reason("cpu")
                rows.append(
                    (
                        name,
                        ",".join(backend.precisions),
                        ",".join(backend.devices),
                        "available" if status is None else f"unavailable: {status}",
                    )
                )
            except UsageError as exc:
                rows.append((name, "", "", f"unavailable: {exc}"))
        print(tabulate(rows, headers=["backend", "precisions", "devices", "on this machine (cpu)"]))
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from bench.data.suite import get_suite, split_overrides
    from bench.models import get_model_entry
    from bench.training.checkpoints import ensure_checkpoint, export_checkpoint, load_checkpoint
    from bench.training.recipes import suite_recipe

    suite = get_suite(args.suite, data_dir=args.data_dir, splits=split_overrides(args.splits))
    get_model_entry(args.model)
    recipe_name, recipe = suite_recipe(args.model, suite)
    path = ensure_checkpoint(args.model, suite, recipe, force=args.force, recipe_name=recipe_name)
    _, meta = load_checkpoint(args.model, suite, path)
    print(f"checkpoint: {path}")
    if args.export is not None:
        digest = export_checkpoint(path, args.export)
        print(
            f"exported to {args.export} (digest {digest}); on another machine: segbench run --model {args.model} "
            f"--suite {args.suite} --checkpoint {args.export}"
        )
    print(
        f"evaluation dice {meta['evaluation_dice']:.4f}, mIoU {meta['evaluation_miou']:.4f}, "
        f"trained in {meta['train_seconds']} s"
    )
    return 0
