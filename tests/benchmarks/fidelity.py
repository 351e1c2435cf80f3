"""Measurement fidelity: does segbench's p50 equal a bare timing loop around the same callable?

For every CPU backend, in one process: load the artifact once, then alternate rounds of segbench's
`measure_latency(session.time_call)` and a bare `perf_counter_ns` loop around `session.run`, and
compare the median of the round p50s. Alternating rounds (and which side goes first) spreads machine
noise and order effects over both sides.

    python -m tests.benchmarks.fidelity [--backends a,b] [--rounds 5] [--tolerance 0.05]

Exit 1 when any backend's p50 differs from the bare loop's by more than the tolerance.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from tabulate import tabulate

from bench.backend import PrepareContext, get_backend, list_backends
from bench.data.suite import get_suite
from bench.measure.timing import LatencyStats, TimingConfig, measure_latency
from bench.run.artifacts import ensure_artifact
from bench.training.checkpoints import ensure_checkpoint, load_checkpoint


def bare_loop_p50_ms(run, iterations: int) -> float:
    samples = []
    for _ in range(iterations):
        start = time.perf_counter_ns()
        run()
        samples.append(time.perf_counter_ns() - start)
    return float(np.median(samples)) / 1e6


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backends", default="")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tolerance", type=float, default=0.05)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    suite = get_suite("synthetic-nuclei")
    checkpoint = ensure_checkpoint("unet", suite)
    model, _ = load_checkpoint("unet", suite, checkpoint)
    calibration = suite.normalize(suite.load("calibration").images)
    image = calibration[:1]
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
        session = backend.load(artifact, "cpu", args.threads)
        inputs = session.to_input(image)
        config = TimingConfig(warmup_s=0.5, min_time_s=1.0, min_iters=30)
        ours, bare = [], []
        for round_index in range(args.rounds):  # alternate which side goes first, so order effects cancel
            if round_index % 2:
                bare.append(bare_loop_p50_ms(lambda s=session, x=inputs: s.run(x), config.min_iters * 4))
            samples = measure_latency(lambda s=session, x=inputs: s.time_call(x), config)
            ours.append(LatencyStats.from_samples(samples).p50_ms)
            if not round_index % 2:
                bare.append(bare_loop_p50_ms(lambda s=session, x=inputs: s.run(x), len(samples)))
        p50, reference = float(np.median(ours)), float(np.median(bare))
        deviation = p50 / reference - 1
        failed |= abs(deviation) > args.tolerance
        rows.append(
            (
                name,
                f"{p50:.3f}",
                f"{reference:.3f}",
                f"{deviation:+.1%}",
                "ok" if abs(deviation) <= args.tolerance else "FAIL",
            )
        )
    print(
        tabulate(
            rows, headers=["backend", "segbench p50 ms", "bare loop p50 ms", "deviation", "verdict"], tablefmt="github"
        )
    )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
