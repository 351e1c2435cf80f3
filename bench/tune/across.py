"""`segbench tune --backend a,b,c` (or `all`): the float fallback per backend, then one decision over the
tuned configurations.

Each backend is tuned on its own (`run_tune`: its own folder, its own tuning-split timing against fp32).
Speeds measured in different tunes are never compared: the tuned configurations (each backend with the
float layers its tune chose) are then run together, interleaved with fp32 eager, on the evaluation
split, as one `segbench run` group under the same budgets; that run's decision (bench.decide) names the
one to ship, with intervals, and the `segbench run` line that reproduces it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from bench.backend import FLOAT_LAYERS_OPTION
from bench.decide.decision import Decision
from bench.errors import UsageError
from bench.report.decision import run_decision
from bench.results.files import read_results
from bench.run.config import RunConfig
from bench.run.matrix import REFERENCE
from bench.tune.config import TuneConfig
from bench.tune.records import TuneOutcome
from bench.tune.runner import run_tune

Log = Callable[[str], None]
ALL = "all"


@dataclass(frozen=True)
class AcrossOutcome:
    tunes: tuple[tuple[str, TuneOutcome], ...]  # (backend, its tune) in the order given
    run_dir: Path | None  # the decision run of the tuned configurations (None: no tune met its budgets)
    decision: Decision | None
    reproduce: str  # the `segbench run` line of the recommendation ("" without one)
    winner_is_int8: bool


def tuned_backends(text: str, config: TuneConfig) -> tuple[str, ...]:
    """`a,b,c`, or every int8 backend that can keep layers in float and runs here (`all`)."""
    if text != ALL:
        names = tuple(name.strip() for name in text.split(",") if name.strip())
        if len(set(names)) != len(names):
            raise UsageError(f"--backend {text}: a backend is named twice")
        return names
    plans = RunConfig(
        suites=(config.suite,), models=(config.model,), backends=(), data_dir=config.shared.data_dir
    ).validate()
    found = tuple(
        plan.name
        for plan in plans
        if plan.precision == "int8" and plan.unavailable is None and FLOAT_LAYERS_OPTION in plan.options.as_strings()
    )
    if not found:
        raise UsageError("--backend all: no int8 backend that can keep layers in float runs here")
    return found


def tune_across(
    config: TuneConfig,
    backends: tuple[str, ...],
    options: dict[str, dict[str, str]],
    log: Log,
    on_folder: Callable[[Path], None],
) -> AcrossOutcome:
    """Tune each backend (with its own `--option`s; every configuration checked before any work), then
    decide over the tuned ones."""
    if config.studies_calibration:
        raise UsageError("--calibration-sizes / --calibration-methods study one backend; give one --backend")
    if not config.budgets:
        raise UsageError("tuning several backends needs --budget (the decision holds every configuration to it)")
    if other := sorted(set(options) - {name.partition(":")[0] for name in backends}):
        raise UsageError(f"--option names backend '{other[0]}', which is not in --backend")
    configs = [
        replace(config, backend=name, backend_options=options.get(name.partition(":")[0], {})) for name in backends
    ]
    for each in configs:
        each.plans()  # a usage error for any backend before the first tune starts
    tunes: list[tuple[str, TuneOutcome]] = []
    for each in configs:
        log(f"tune {len(tunes) + 1}/{len(configs)}: {each.backend}")
        tunes.append((each.backend, run_tune(each, log=log, on_folder=on_folder)))
    met = [(name, outcome) for name, outcome in tunes if outcome.met and outcome.chosen is not None]
    if not met:
        return AcrossOutcome(tuple(tunes), None, None, "", False)
    chosen = {}
    for name, outcome in met:
        base = name.partition(":")[0]
        layers = str(outcome.chosen["float_layers"]) if outcome.chosen else ""
        chosen[base] = {**options.get(base, {}), **({FLOAT_LAYERS_OPTION: layers} if layers else {})}
    chosen = {name: value for name, value in chosen.items() if value}
    run_config = replace(
        config.run_config(backends=(":".join(REFERENCE), *(name for name, _ in met))),
        backend_options=chosen,
        budgets=config.budgets,
        objective="latency",
    )
    from bench.run.runner import run_benchmark

    log(f"the tuned configurations together with fp32 eager, on the evaluation split: {len(met)} backend(s)")
    run_dir = run_benchmark(run_config, log=log)
    decision = run_decision(run_dir, read_results(run_dir))
    winner = decision.groups[0].recommended if decision.groups else None
    reproduce = ""
    if winner is not None:
        files = "".join(
            f" --{flag} {value}"
            for flag, value in (
                ("data-dir", config.shared.data_dir),
                ("weights", config.shared.weights),
                ("checkpoint", config.shared.checkpoint),
            )
            if value is not None
        )
        shipped = ":".join(REFERENCE) + ("" if winner.precision == REFERENCE[1] else f",{winner.backend}")
        reproduce = f"segbench run --suite {config.suite} --model {config.model}{files} --backends {shipped}" + "".join(
            f" --option {winner.backend}.{k}={v}" for k, v in chosen.get(winner.backend, {}).items()
        )
    return AcrossOutcome(tuple(tunes), run_dir, decision, reproduce, winner is not None and winner.precision == "int8")


def print_outcome(outcome: AcrossOutcome, allow_slower: bool) -> int:
    """What the command prints (stdout: the answer) and its exit code."""
    from bench.decide.render import terminal_lines

    for name, tune in outcome.tunes:
        print(f"{name}: {tune.folder}/: {tune.message}")
    if outcome.decision is None or outcome.run_dir is None:
        print("segbench tune: no backend met the budgets on the tuning split (exit 1)", file=sys.stderr)
        return 1
    print(f"decision run: {outcome.run_dir}/ (decision.json, report.md)")
    print("\n".join(terminal_lines(outcome.decision)))
    if outcome.reproduce:
        print(f"reproduce: {outcome.reproduce}")
    errors = [line for _, tune in outcome.tunes for line in tune.errors]
    if errors:
        print(f"segbench tune: {len(errors)} cell(s) ended in error (exit 1)", file=sys.stderr)
        return 1
    if not outcome.reproduce:
        return 1
    if not outcome.winner_is_int8 and not allow_slower:
        print(
            "segbench tune: no tuned configuration meets the budgets and beats fp32 eager (exit 1; --allow-slower "
            "accepts it)",
            file=sys.stderr,
        )
        return 1
    return 0
