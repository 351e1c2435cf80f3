"""Measurement fidelity: does segbench's p50 equal a bare timing loop around the same callable?

For every CPU backend, in a worker process of its own (as a run measures it): load the artifact once,
warm up as segbench does, then alternate short rounds of segbench's own `time_round(session.time_call)`
and a bare `perf_counter_ns` loop around `session.run`, the same number of calls each, which one goes
first alternating too. Each round of segbench's timing is compared with the bare round next to it
(the ratio of their medians), and the median of those ratios is the deviation.

Why rounds: this machine has phases of seconds in which multi-threaded inference runs 20-60% slower
(`bench.measure.contention`); comparing a block of segbench's timing with a later block of the bare
loop measured the phase, not the harness (torch-eager +11.4%, PT2E -6.4% in an earlier version of this
benchmark that alternated blocks of several seconds). Rounds of 0.2 s put both sides in every phase.

    python -m tests.benchmarks.fidelity [--backends a,b] [--rounds 30] [--tolerance 0.02]

Exit 1 when any backend's p50 differs from the bare loop's by more than the tolerance.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from tabulate import tabulate

from bench.backend import PrepareContext, get_backend, list_backends
from bench.data.suite import get_suite
from bench.measure.timing import TimingConfig, time_round, warm_up
from bench.run.artifacts import ensure_artifact
from bench.run.isolation import call_in_worker
from bench.training.checkpoints import ensure_checkpoint, load_checkpoint

ROUND_S = 0.2
WARMUP_CALLS = 2


def bare_loop_ns(run, calls: int) -> np.ndarray:
    for _ in range(WARMUP_CALLS):
        run()
    samples = []
    for _ in range(calls):
        start = time.perf_counter_ns()
        run()
        samples.append(time.perf_counter_ns() - start)
    return np.asarray(samples, np.int64)


def measure_both(name: str, directory: str, meta: dict, image: np.ndarray, threads: int, rounds: int):
    """(segbench samples, bare-loop samples) of one backend, in this (worker) process."""
    from bench.backend import Artifact

    session = get_backend(name).load(Artifact(Path(directory), meta), "cpu", threads)
    inputs = session.to_input(image)
    warm_up(lambda: session.time_call(inputs), TimingConfig())
    ours, bare = [], []
    for index in range(rounds):
        if index % 2:
            bare.append(bare_loop_ns(lambda: session.run(inputs), len(ours[-1]) if ours else 10))
        ours.append(time_round(lambda: session.time_call(inputs), ROUND_S, 1, WARMUP_CALLS))
        if not index % 2:
            bare.append(bare_loop_ns(lambda: session.run(inputs), len(ours[-1])))
    return ours, bare


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backends", default="")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--tolerance", type=float, default=0.02)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    suite = get_suite("synthetic-nuclei")
    checkpoint = ensure_checkpoint("unet", suite)
    model, _ = load_checkpoint("unet", suite, checkpoint)
    calibration = suite.normalize(suite.load("calibration").images)
    names = args.backends.split(",") if args.backends else list_backends()
    rows, failed = [], False
    for name in names:
        backend = get_backend(name)
        if "cpu" not in backend.devices or backend.unavailable_reason("cpu"):
            rows.append((name, "", "", "", backend.unavailable_reason("cpu") or "not a CPU backend"))
            continue
        ctx = PrepareContext(
            "unet",
            model,
            calibration,
            (suite.in_channels, *suite.input_size),
            suite.num_classes,
            backend.default_precision,
            "cpu",
            backend.parse_options({}),
        )
        artifact = ensure_artifact(backend, ctx, checkpoint, "unet--synthetic-nuclei").artifact
        status, found = call_in_worker(
            measure_both,
            (name, str(artifact.directory), artifact.meta, calibration[:1], args.threads, args.rounds),
            timeout_s=600,
        )
        if status != "ok":
            rows.append((name, "", "", "", f"error: {found}"))
            failed = True
            continue
        ours_rounds, bare_rounds = found
        ours, bare = (float(np.median(np.concatenate(side))) / 1e6 for side in found)
        deviation = float(np.median([np.median(a) / np.median(b) for a, b in zip(ours_rounds, bare_rounds)])) - 1
        failed |= abs(deviation) > args.tolerance
        verdict = "ok" if abs(deviation) <= args.tolerance else "FAIL"
        rows.append((name, f"{ours:.3f}", f"{bare:.3f}", f"{deviation:+.1%}", verdict))
    headers = ["backend", "segbench p50 ms", "bare loop p50 ms", "deviation", "verdict"]
    print(tabulate(rows, headers=headers, tablefmt="github"))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
