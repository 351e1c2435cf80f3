"""The decision's rules on planted rows: a fast cell failing a budget by a hair, a tie within noise broken
on quality, an int8 cell slower than fp32, a noisy winner, an uncertain budget, errors and unavailable
cells; and the objective changing the winner."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bench.decide.budgets import FAILED, MET, UNCERTAIN, Budget, check, default_budgets
from bench.decide.decision import (
    BUDGET_FAILED,
    BUDGET_UNCERTAIN,
    BUDGET_UNJUDGED,
    ERROR,
    NOISY,
    NOT_PAYING,
    RECOMMENDED,
    SLOWER,
    TIED,
    UNAVAILABLE,
    decide,
)
from bench.decide.render import decision_json, terminal_lines
from bench.decide.speed import CycleTimes
from bench.results.bounds import Bound
from bench.results.row import cell_id

CLASSES = ("background", "road", "car")
REF_P50 = 10.0


def _row(backend: str, precision: str = "int8", **values: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "suite": "camvid",
        "model": "unet",
        "backend": backend,
        "precision": precision,
        "device": "cpu",
        "batch_size": 1,
        "status": "ok",
        "timing_quality": "ok",
        "miou": 0.70,
        "dice": 0.75,
        "model_size_bytes": 4e6,
        "backend_rss_mib": 100.0,
        **{f"iou_vs_reference_{c}": 1.0 for c in CLASSES},
    }
    row.update(values)
    speedup = row.get("speedup_vs_fp32")
    if isinstance(speedup, float):
        row.setdefault("latency_p50_ms", REF_P50 / speedup)
    return row


def _cycles(rows: list[dict[str, Any]], spread: dict[str, float]) -> CycleTimes:
    """Ten cycles per row around its p50; `spread` (backend -> relative spread) makes its ratios noisy."""
    times: CycleTimes = {}
    for row in rows:
        p50 = row.get("latency_p50_ms")
        if p50 is None:
            continue
        s, shift = spread.get(row["backend"], 0.002), len(row["backend"])  # each row its own pattern
        times[cell_id(row)] = {c: p50 * (1 + s * (((c + shift) * 3 % 5) - 2) / 2) for c in range(10)}
    return times


def _planted() -> list[dict[str, Any]]:
    return [
        _row("torch-eager", "fp32", speedup_vs_fp32=1.0, miou_drift=0.0, latency_p50_ms=REF_P50),
        # the fastest: misses the default budget (-0.007) by a hair, its whole interval below it
        _row("fast", speedup_vs_fp32=3.0, miou_drift=-0.0075, miou_drift_ci_low=-0.008, miou_drift_ci_high=-0.0071),
        # the best point value on latency, tied within noise with `steady`, which has the better quality
        _row("quick", speedup_vs_fp32=2.04, miou_drift=-0.004, miou_drift_ci_low=-0.005, miou_drift_ci_high=-0.003),
        _row("steady", speedup_vs_fp32=2.0, miou_drift=-0.001, miou_drift_ci_low=-0.002, miou_drift_ci_high=0.0),
        # clearly slower than the winner
        _row("plain", speedup_vs_fp32=1.5, miou_drift=-0.001, miou_drift_ci_low=-0.002, miou_drift_ci_high=0.0),
        # int8 slower than fp32
        _row(
            "slow-int8",
            speedup_vs_fp32=0.7,
            speedup_vs_fp32_ci_low=0.68,
            speedup_vs_fp32_ci_high=0.72,
            miou_drift=-0.001,
            miou_drift_ci_low=-0.002,
            miou_drift_ci_high=0.0,
        ),
        # the fastest of all, but its timing is noisy
        _row("rushed", speedup_vs_fp32=4.0, timing_quality="noisy: slow host phase", miou_drift=0.0),
        # its interval straddles the budget
        _row("unsure", speedup_vs_fp32=2.5, miou_drift=-0.005, miou_drift_ci_low=-0.009, miou_drift_ci_high=-0.001),
        _row("broken", status="error: prepare: Range 'stop' input is not a scalar"),
        _row("tensorrt-int8", status="unavailable: tensorrt is not importable"),
    ]


def test_every_rule_on_planted_rows() -> None:
    rows = _planted()
    cycles = _cycles(rows, {"quick": 0.06, "steady": 0.06})
    [group] = decide(rows, cycles).groups
    verdicts = {e.backend: e.verdict for e in group.entries}
    assert verdicts == {
        "steady": RECOMMENDED,
        "quick": TIED,
        "plain": SLOWER,
        "torch-eager": SLOWER,
        "slow-int8": NOT_PAYING,
        "unsure": BUDGET_UNCERTAIN,
        "fast": BUDGET_FAILED,
        "rushed": NOISY,
        "broken": ERROR,
        "tensorrt-int8": UNAVAILABLE,
    }
    ranked = [e.backend for e in group.entries]
    assert ranked[:2] == ["steady", "quick"] and ranked[-2:] == ["broken", "tensorrt-int8"]
    assert ranked.index("plain") < ranked.index("torch-eager") < ranked.index("unsure") < ranked.index("fast")
    reasons = {e.backend: e.reason for e in group.entries}
    assert "tied on latency within noise with quick" in group.tie and "chosen on quality" in group.tie
    assert "misses by 0.0005" in reasons["fast"] and "[-0.0080, -0.0071]" in reasons["fast"]
    assert "straddles" in reasons["unsure"]
    assert "quantizing does not pay here" in reasons["slow-int8"] and "[0.68, 0.72]" in reasons["slow-int8"]
    assert "slow host phase" in reasons["rushed"]
    assert reasons["plain"].startswith("steady int8 is 1.3") and reasons["plain"].endswith("faster")
    assert group.headline.startswith("ship steady int8, 2.00x fp32 eager")
    assert "keep >= 99% of fp32 mIoU 0.7000" in group.budgets[0].source and str(group.budgets[0].bound) == (
        "miou_drift>=-0.007"
    )


def test_without_the_tie_the_best_point_wins_and_no_tie_is_stated() -> None:
    rows = _planted()
    [group] = decide(rows, _cycles(rows, {})).groups
    assert group.recommended is not None and group.recommended.backend == "quick" and group.tie == ""
    assert {e.backend: e.verdict for e in group.entries}["steady"] == SLOWER


def test_given_budgets_replace_the_default_and_memory_budgets_judge_by_value() -> None:
    rows = _planted()
    rows[3]["backend_rss_mib"] = 300.0  # steady
    budgets = (Budget(Bound("miou_drift", ">=", -0.01), "given"), Budget(Bound("backend_rss_mib", "<=", 200), "given"))
    [group] = decide(rows, _cycles(rows, {"quick": 0.06, "steady": 0.06}), budgets).groups
    verdicts = {e.backend: e.verdict for e in group.entries}
    assert verdicts["fast"] == RECOMMENDED  # within -0.01 now
    assert (
        verdicts["steady"] == BUDGET_FAILED
        and "backend_rss_mib<=200: 300, misses by 100" in [e.reason for e in group.entries if e.backend == "steady"][0]
    )
    assert verdicts["unsure"] == SLOWER  # its interval -0.009 .. -0.001 holds -0.01


@pytest.mark.parametrize(
    ("quality", "ranked"),
    [
        ("noisy: rounds disagreed (their medians spread 13%)", True),  # the level moved; the paired ratio stands
        ("noisy: other processes used 40% of the CPU", False),  # each runtime lost its own share
        ("noisy: too few quiet rounds (8 of 10 cycles left out), rounds disagreed (their medians spread 13%)", False),
    ],
)
def test_a_cell_noisy_only_because_its_rounds_disagreed_is_ranked_by_its_paired_ratio(quality, ranked) -> None:
    """Measured on a host whose rounds' medians spread 10-15% whatever the load: the fastest cell, flagged for
    that alone, was refused in 2 of 6 quiet runs and another shipped; its paired speedup repeated in all six."""
    rows = _planted()
    rows[6]["timing_quality"] = quality  # rushed: the fastest, 4.0x
    [group] = decide(rows, _cycles(rows, {})).groups
    verdicts = {e.backend: e.verdict for e in group.entries}
    assert (verdicts["rushed"] == RECOMMENDED) is ranked and (verdicts["rushed"] == NOISY) is not ranked


def test_size_objective_ranks_by_model_size_and_ignores_noisy_timing() -> None:
    rows = _planted()
    rows[6]["model_size_bytes"] = 1e6  # rushed: noisy timing, smallest model
    rows[6]["miou_drift_ci_low"], rows[6]["miou_drift_ci_high"] = -0.001, 0.001
    [group] = decide(rows, _cycles(rows, {}), objective="size").groups
    assert group.recommended is not None and group.recommended.backend == "rushed"
    assert "smaller" in [e.reason for e in group.entries if e.backend == "plain"][0]


def test_no_candidate_says_why_and_names_the_closest() -> None:
    rows = [r for r in _planted() if r["backend"] in ("fast", "broken")]
    [group] = decide(rows, {}, (Budget(Bound("miou_drift", ">=", -0.007), "given"),)).groups
    assert group.recommended is None
    assert group.headline.startswith("no cell meets every budget") and "closest: fast int8" in group.headline
    [alone] = decide(rows, {}).groups
    assert alone.budgets == ()  # no fp32 reference: no default budget to keep a share of


def test_budget_check_reads_the_interval_ends() -> None:
    budget = Budget(Bound("miou_drift", ">=", -0.01), "given")
    assert check(budget, _row("a", miou_drift=-0.005, miou_drift_ci_low=-0.009, miou_drift_ci_high=0.0)).outcome == MET
    assert (
        check(budget, _row("a", miou_drift=-0.005, miou_drift_ci_low=-0.011, miou_drift_ci_high=0.0)).outcome
        == UNCERTAIN
    )
    assert (
        check(budget, _row("a", miou_drift=-0.02, miou_drift_ci_low=-0.03, miou_drift_ci_high=-0.011)).outcome == FAILED
    )
    assert check(budget, _row("a", miou_drift=-0.005)).outcome == MET  # no interval: the value
    speed = Budget(Bound("speedup_vs_fp32", ">=", 1.0), "given")
    noisy = check(speed, _row("a", speedup_vs_fp32=2.0, timing_quality="noisy: x"))
    assert noisy.outcome == "not judged" and "noisy" in noisy.phrase()
    # rounds that only disagreed leave a paired speedup judged (by its interval); a latency bound is not
    disagreed = "noisy: rounds disagreed (their medians spread 13%)"
    row = _row(
        "a", speedup_vs_fp32=2.0, speedup_vs_fp32_ci_low=1.8, speedup_vs_fp32_ci_high=2.2, timing_quality=disagreed
    )
    assert check(speed, row).outcome == MET
    assert check(Budget(Bound("latency_p50_ms", "<=", 100.0), "given"), row).outcome == "not judged"


def test_the_default_budget_keeps_dice_for_two_classes() -> None:
    reference = _row("torch-eager", "fp32", dice=0.8)
    del reference["iou_vs_reference_car"]
    [budget] = default_budgets(reference)
    assert str(budget.bound) == "dice_drift>=-0.008" and "Dice" in budget.source


def test_the_json_and_the_terminal_say_the_same() -> None:
    rows = _planted()
    decision = decide(rows, _cycles(rows, {"quick": 0.06, "steady": 0.06}))
    record = json.loads(json.dumps(decision_json(decision)))
    assert record["schema_version"] == 1 and record["objective"] == "latency"
    [group] = record["groups"]
    assert group["recommended"] == "camvid/unet/steady/int8/cpu/1"
    assert [c["verdict"] for c in group["cells"]][0] == RECOMMENDED and group["cells"][0]["rank"] == 1
    lines = terminal_lines(decision)
    assert lines[1].strip() == decision.groups[0].headline
    assert any("quantizing does not pay" in line for line in lines)


@pytest.mark.parametrize("objective", ["latency", "throughput"])
def test_every_ok_cell_has_one_verdict_under_each_timing_objective(objective: str) -> None:
    rows = _planted()
    for row in rows:
        if row.get("latency_p50_ms"):
            row["throughput_ips"] = 1000 / row["latency_p50_ms"]
    [group] = decide(rows, _cycles(rows, {}), objective=objective).groups
    assert len(group.entries) == len(rows) and sum(e.verdict == RECOMMENDED for e in group.entries) == 1


def test_a_budget_without_a_value_is_not_judged_and_says_so() -> None:
    rows = _planted()
    rows[3].pop("miou_drift")  # steady: its evaluation failed
    [group] = decide(rows, _cycles(rows, {"quick": 0.06, "steady": 0.06})).groups
    entry = next(e for e in group.entries if e.backend == "steady")
    assert entry.verdict == BUDGET_UNJUDGED and "not judged (no value)" in entry.reason
    assert group.recommended is not None and group.recommended.backend == "quick"


def test_a_merged_folder_decides_each_machine_apart() -> None:
    """`segbench merge` of two machines' folders: each row says who measured it, and each machine gets its
    own answer (their speeds never meet in one ranking)."""
    epyc = [dict(row, machine="AMD EPYC") for row in _planted()[:6]]
    xeon = [dict(row, machine="Intel Xeon (AMX)") for row in _planted()[:6]]
    xeon[5] = dict(xeon[5], speedup_vs_fp32=5.0, speedup_vs_fp32_ci_low=4.8, speedup_vs_fp32_ci_high=5.2)
    xeon[5]["latency_p50_ms"] = 2.0
    rows = epyc + xeon
    groups = decide(rows, {}).groups
    assert [g.machine for g in groups] == ["AMD EPYC", "Intel Xeon (AMX)"]
    assert [len(g.entries) for g in groups] == [6, 6]
    assert groups[1].recommended is not None and groups[1].recommended.backend == "slow-int8"
    assert groups[0].recommended is not None and groups[0].recommended.backend != "slow-int8"
    assert "on Intel Xeon (AMX)" in groups[1].group


def test_throughput_ranks_on_offline_images_per_second_where_the_run_measured_them() -> None:
    """--scenario offline: `offline_ips` (each backend's best sustained rate) decides throughput, judged by
    the offline scenario's own noise flag; a cell whose offline scenario failed is not ranked; two rates
    without an interval are never a tie. Without offline numbers throughput stays batch / p50."""
    rows = [
        _row("torch-eager", "fp32", speedup_vs_fp32=1.0, miou_drift=0.0, latency_p50_ms=REF_P50),
        _row("quick", speedup_vs_fp32=3.0, miou_drift=-0.001),  # fastest single-stream, slower offline
        _row("wide", speedup_vs_fp32=2.0, miou_drift=-0.001),  # gains most from batches and requests
        _row("noisy-offline", speedup_vs_fp32=2.0, miou_drift=-0.001, offline_timing_quality="noisy: other processes"),
        _row("failed-offline", speedup_vs_fp32=2.0, miou_drift=-0.001, offline_status="error: worker died"),
    ]
    offline = {"torch-eager": 150.0, "quick": 400.0, "wide": 900.0, "noisy-offline": 5000.0}
    for row in rows:
        row["throughput_ips"] = 1000 / row["latency_p50_ms"]
        if row["backend"] in offline:
            row.update(offline_ips=offline[row["backend"]], offline_setting="batch 8, 2 callers")
            row.setdefault("offline_timing_quality", "ok")
    cycles = _cycles(rows, {})
    [group] = decide(rows, cycles, objective="throughput").groups
    verdicts = {e.backend: (e.verdict, e.reason) for e in group.entries}
    assert verdicts["wide"][0] == RECOMMENDED and verdicts["quick"] == (
        SLOWER,
        "wide int8 is 2.25x (offline images/s, no interval) higher in throughput",
    )
    assert verdicts["noisy-offline"][0] == NOISY and "other processes" in verdicts["noisy-offline"][1]
    assert verdicts["failed-offline"] == (NOISY, "no offline throughput (offline_status: error: worker died)")
    assert "900 images/s offline (batch 8, 2 callers)" in group.headline and not group.tie
    for row in rows:
        row.pop("offline_ips", None)
    [single] = decide(rows, cycles, objective="throughput").groups
    assert single.recommended is not None and single.recommended.backend == "quick"  # batch / p50 again
