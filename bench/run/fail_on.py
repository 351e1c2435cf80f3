"""`segbench run --fail-on "COLUMN>=X"` (and `--budget`): the bounds a finished run is held to (and the
decision judges cells by), checked before any work.

The grammar and the declaration checks are the budgets' (bench/results/bounds.py); this adds what only
the run's configuration can tell: a per-class column names a class of one of the run's suites, a
Grad-CAM bound needs the Grad-CAM stage (and `@fakequant` the second method), a device-memory bound a
GPU. A bound no row could ever have a value for is a typo or a mistake, refused like one. The verdict
itself (bench/results/verdict.py) is an after-the-run judgement: the bounds are not saved in run.json,
and `--resume DIR --fail-on ...` judges the finished run by the bounds given to the resume.
"""

from __future__ import annotations

from collections.abc import Iterable

from bench.errors import UsageError
from bench.measure.quality import quality_columns
from bench.results.bounds import Bound, parse_bounds
from bench.run.config import RunConfig

OPTION = "--fail-on"
SCORED_KINDS = ("quality", "boundary", "drift", "agreement", "per-class", "sqnr")  # columns evaluation fills


def check_fail_on(texts: Iterable[str], config: RunConfig) -> tuple[Bound, ...]:
    """The parsed bounds; a one-line usage error for bad grammar, an undeclared or informational column,
    or one this run's configuration can never fill."""
    return check_bounds(texts, config, OPTION)


def check_budgets(config: RunConfig) -> tuple[Bound, ...]:
    """The run's `--budget`s (the decision's), checked as `--fail-on` bounds are."""
    return check_bounds(config.budgets, config, "--budget")


def check_bounds(texts: Iterable[str], config: RunConfig, option: str) -> tuple[Bound, ...]:
    """Bounds for `option` (--fail-on, --budget), each one this run's configuration can fill."""
    bounds = parse_bounds(texts, option)
    if not bounds:
        return bounds
    scored: set[str] = set()
    for _, suite in config.named_suites().values():
        scored.update(quality_columns(suite.classes, suite.foreground_classes, suite.ignore_label))
    for bound in bounds:
        declared = bound.declared
        assert declared is not None  # parse_bounds refuses undeclared columns
        if declared.kind in SCORED_KINDS and bound.column not in scored:
            close = sorted(c for c in scored if bound.column.split("_")[0] in c)[:6]
            raise UsageError(
                f"{option} '{bound}': no suite of this run has a column '{bound.column}'"
                + (f"; e.g. {', '.join(close)}" if close else "")
            )
        if declared.kind == "gradcam":
            if not config.gradcam:
                raise UsageError(f"{option} '{bound}': a Grad-CAM column, but the run has --no-gradcam")
            if bound.column.endswith("@fakequant") and config.gradcam_method != "both":
                raise UsageError(
                    f"{option} '{bound}': @fakequant columns come with --gradcam-method both "
                    f"(this run: {config.gradcam_method})"
                )
        if bound.column == "peak_device_mib" and config.device != "cuda":
            raise UsageError(f"{option} '{bound}': device memory is measured with --device cuda only")
    return bounds
