"""Rank the cells of one (suite, model, device, batch) group: the one to ship, then every other with the
one reason it is not first.

The rules, in the order they apply:

1. A cell that ended in error, or is unavailable here, is not a candidate.
2. A budget is judged with the number's 95% interval (bench.decide.budgets): a cell that fails one is
   out; one whose interval straddles a budget is out too, as "uncertain", and says which.
3. On a timing objective (latency, throughput), a cell whose timing is noisy is not ranked: its speed is
   no evidence (`timing_quality`), unless it is noisy only because its rounds disagreed: cells are ranked
   by ratios paired by cycle, with intervals, which that leaves honest (`ratios_trusted`). Throughput is
   the offline scenario's `offline_ips` where the group has
   it (`--scenario offline`; judged by `offline_timing_quality`, a cell without one not ranked), else the
   single-stream `throughput_ips` (batch / p50).
4. Of the cells left, the best on the objective is found; every other cell whose speed ratio to it has an
   interval containing 1 is **tied within noise** with it. Among the tied cells the winner is the one
   with the better quality (primary drift: mIoU, or Dice for two classes; equal within its declared
   threshold), then the smaller model, then the smaller backend memory, and the tie is stated.
5. Every other cell is ranked by the objective with its reason: slower than the winner (by how much,
   with the interval), or, for an int8 cell slower than fp32 eager, "quantizing does not pay here".

An int8 cell slower than fp32 eager, or than its own runtime's float cell (bench.results.counterparts),
is flagged whatever its reason; the report names where its time goes from its profile.

Over 400 lines (431), kept whole: it is these five rules, in this order, and nothing else (the budgets'
checks, the speed ratios and an entry's words already live in budgets.py, speed.py and entry.py); split,
a reader would follow one ranking across files to learn why a cell came second.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from bench.decide.budgets import (
    FAILED,
    NOT_JUDGED,
    UNCERTAIN,
    Budget,
    BudgetCheck,
    check,
    default_budgets,
    primary_quality,
)
from bench.decide.entry import Entry, bracket, drift_text, speed_text, winner_name
from bench.decide.speed import CycleTimes, SpeedRatio, speed_ratio
from bench.results.bounds import number
from bench.results.columns import judged_threshold
from bench.results.counterparts import float_counterpart
from bench.results.row import cell_id
from bench.results.speedup import GROUP_COLUMNS, REFERENCE, ratios_trusted
from bench.results.verdict import is_reference

OBJECTIVES = ("latency", "throughput", "size")
OFFLINE_IPS = "offline_ips"  # --scenario offline's images/s: what throughput ranks on where the group has it
RECOMMENDED, TIED, SLOWER, NOT_PAYING = "recommended", "tied within noise", "slower", "quantizing does not pay"
BUDGET_FAILED, BUDGET_UNCERTAIN, BUDGET_UNJUDGED, NOISY, ERROR, UNAVAILABLE = (
    "fails a budget",
    "budget uncertain",
    "budget not judged",
    "timing not judged",
    "error",
    "unavailable",
)
ORDER = (
    RECOMMENDED,
    TIED,
    SLOWER,
    NOT_PAYING,
    BUDGET_UNCERTAIN,
    BUDGET_FAILED,
    BUDGET_UNJUDGED,
    NOISY,
    ERROR,
    UNAVAILABLE,
)


@dataclass(frozen=True)
class GroupDecision:
    suite: str
    model: str
    device: str
    batch_size: int
    objective: str
    budgets: tuple[Budget, ...]
    entries: tuple[Entry, ...]  # ranked: the recommendation (if any) first
    headline: str
    tie: str = ""  # the tie the recommendation was chosen from, and on what
    machine: str = ""  # set by compare --by machine

    @property
    def recommended(self) -> Entry | None:
        return self.entries[0] if self.entries and self.entries[0].verdict == RECOMMENDED else None

    @property
    def group(self) -> str:
        where = f", on {self.machine}" if self.machine else ""
        return f"{self.suite} / {self.model} ({self.device}, batch {self.batch_size}{where})"


@dataclass(frozen=True)
class Decision:
    objective: str
    given: tuple[str, ...]  # the budgets as the user wrote them; empty: the defaults
    groups: tuple[GroupDecision, ...] = field(default_factory=tuple)


def decide(
    rows: Iterable[Mapping[str, Any]], cycles: CycleTimes, budgets: Sequence[Budget] = (), objective: str = "latency"
) -> Decision:
    """The decision for every group of `rows` (results.parquet records) under `budgets` (none: the
    default budget per group) and `objective`; groups in the order their first row appears. Rows of a shape
    sweep at another input size than the suite's are not decided on: their quality was not measured there
    (docs/sweeps.md; the sweep's own report says where an int8 backend stops paying)."""
    groups: dict[tuple[Any, ...], list[Mapping[str, Any]]] = {}
    for row in rows:  # a merged folder's rows say which machine measured them: each machine decides apart
        if row.get("input_size"):
            continue
        groups.setdefault((*(row.get(c) for c in GROUP_COLUMNS), _machine(row)), []).append(row)
    decided = tuple(
        replace(decide_group(members, cycles, budgets, objective), machine=machine)
        for (*_, machine), members in groups.items()
    )
    return Decision(objective, tuple(str(b.bound) for b in budgets), decided)


def decide_group(
    rows: Sequence[Mapping[str, Any]], cycles: CycleTimes, given: Sequence[Budget], objective: str
) -> GroupDecision:
    if objective not in OBJECTIVES:
        raise ValueError(f"objective {objective!r}; expected one of {', '.join(OBJECTIVES)}")
    ok = [row for row in rows if row.get("status") == "ok"]
    reference = next((row for row in ok if is_reference(row)), None)
    budgets = tuple(given) or default_budgets(reference)
    metric = primary_quality(reference or (ok[0] if ok else {}))
    timing = objective != "size"
    offline = objective == "throughput" and any(_num(row, OFFLINE_IPS) is not None for row in ok)
    quality_column = "offline_timing_quality" if offline else "timing_quality"  # the objective's own timing
    entries: dict[str, Entry] = {}
    eligible: list[Mapping[str, Any]] = []
    for row in rows:
        status = str(row.get("status", ""))
        if status != "ok":
            verdict = ERROR if status.startswith("error") else UNAVAILABLE
            entries[cell_id(row)] = _entry(row, verdict, status.removeprefix(f"{verdict}:").strip(), metric)
            continue
        checks = tuple(check(budget, row) for budget in budgets)
        flags = _int8_flags(row, ok, reference, cycles)
        failed = [c for c in checks if c.outcome == FAILED]
        unsure = [c for c in checks if c.outcome == UNCERTAIN]
        unjudged = [c for c in checks if c.outcome == NOT_JUDGED]
        noisy = timing and not _ranked_by_ratio(row, quality_column)
        if failed:
            more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
            entries[cell_id(row)] = _entry(row, BUDGET_FAILED, failed[0].phrase() + more, metric, checks, flags)
        elif unsure:
            entries[cell_id(row)] = _entry(row, BUDGET_UNCERTAIN, unsure[0].phrase(), metric, checks, flags)
        elif noisy:
            why = f"noisy timing ({str(row.get(quality_column))[len('noisy') :].lstrip(': ')})"
            entries[cell_id(row)] = _entry(row, NOISY, why.replace(" ()", ""), metric, checks, flags)
        elif offline and _num(row, OFFLINE_IPS) is None:
            why = f"no offline throughput (offline_status: {row.get('offline_status') or 'not measured'})"
            entries[cell_id(row)] = _entry(row, NOISY, why, metric, checks, flags)
        elif unjudged:
            entries[cell_id(row)] = _entry(row, BUDGET_UNJUDGED, unjudged[0].phrase(), metric, checks, flags)
        else:
            eligible.append(row)
            entries[cell_id(row)] = _entry(row, SLOWER, "", metric, checks, flags)
    tie, winner = "", None
    if eligible:
        winner, tied, why = _winner(eligible, entries, cycles, objective, metric)
        if tied:
            names = ", ".join(_name(row) for row in [winner, *tied] if row is not winner)
            tie = f"tied on {objective} within noise with {names}; {why}"
        for row in eligible:
            entry = entries[cell_id(row)]
            if row is winner:
                entries[cell_id(row)] = _with(entry, RECOMMENDED, _recommended_reason(row, objective, tie))
            elif any(row is t for t in tied):
                ratio = _compare(winner, row, cycles, objective)
                text = f"tied with {_name(winner)} on {objective} within noise ({_name(winner)} is {ratio} as fast)"
                entries[cell_id(row)] = _with(entry, TIED, f"{text}; {why}")
            elif entry.flags and row.get("precision") == "int8" and _slower_than_fp32(row):
                entries[cell_id(row)] = _with(entry, NOT_PAYING, entry.flags[0])
            else:
                ratio = _compare(winner, row, cycles, objective)
                entries[cell_id(row)] = _with(entry, SLOWER, f"{_name(winner)} is {ratio} {_better_word(objective)}")
    ranked = sorted(entries.values(), key=lambda e: (ORDER.index(e.verdict), -_objective_value(e, objective)))
    first = rows[0] if rows else {}
    decision = GroupDecision(
        str(first.get("suite")),
        str(first.get("model")),
        str(first.get("device")),
        int(first.get("batch_size") or 0),
        objective,
        budgets,
        tuple(ranked),
        "",
        tie,
    )
    return _with_headline(decision)


# ---------------------------------------------------------------- the winner and its ties


def _winner(
    eligible: list[Mapping[str, Any]],
    entries: Mapping[str, Entry],
    cycles: CycleTimes,
    objective: str,
    metric: str,
) -> tuple[Mapping[str, Any], list[Mapping[str, Any]], str]:
    """(winner, the other cells of its tie, on what the tie was broken); no tie: (best, [], "")."""
    best = max(eligible, key=lambda row: _objective_value(entries[cell_id(row)], objective))
    tied = [row for row in eligible if row is not best and _tied(best, row, cycles, objective)]
    if not tied:
        return best, [], ""
    pool = [best, *tied]
    winner, basis = pool[0], "objective"
    for row in pool[1:]:
        better, on = _better_tiebreak(row, winner, metric)
        if better:
            winner, basis = row, on
        elif basis == "objective" and on:
            basis = on
    others = [row for row in pool if row is not winner]
    why = {
        "quality": f"chosen on quality ({metric}_drift {_drift_text(winner, metric)} "
        f"vs {_drift_text(others[0], metric)})",
        "size": "chosen on model size (quality equal within its threshold)",
        "memory": "chosen on backend memory (quality and size equal)",
        "objective": "quality, size and memory equal; the faster point value kept",
    }[basis]
    return winner, others, why


def _better_tiebreak(row: Mapping[str, Any], than: Mapping[str, Any], metric: str) -> tuple[bool, str]:
    """Is `row` better than `than` on quality, then size, then memory; and on which it was decided."""
    column = f"{metric}_drift"
    mine, theirs = _num(row, column), _num(than, column)
    if mine is not None and theirs is not None and abs(mine - theirs) >= judged_threshold(column):
        return mine > theirs, "quality"
    for name, basis in (("model_size_bytes", "size"), ("backend_rss_mib", "memory")):
        a, b = _num(row, name), _num(than, name)
        if a is not None and b is not None and not math.isclose(a, b, rel_tol=0.01):
            return a < b, basis
    return False, ""


def _tied(best: Mapping[str, Any], row: Mapping[str, Any], cycles: CycleTimes, objective: str) -> bool:
    if _offline_pair(best, row, objective) is not None:
        return False  # one confirmed offline rate each: no interval, so never called a tie
    if objective == "size":
        a, b = _num(best, "model_size_bytes"), _num(row, "model_size_bytes")
        return a is not None and b is not None and math.isclose(a, b, rel_tol=0.01)
    ratio = speed_ratio(best, row, cycles)
    return ratio is not None and ratio.tied


def _compare(winner: Mapping[str, Any], row: Mapping[str, Any], cycles: CycleTimes, objective: str) -> str:
    """How much better the winner is than `row` on the objective, in words with its interval."""
    if objective == "size":
        a, b = _num(winner, "model_size_bytes"), _num(row, "model_size_bytes")
        return f"{b / a:.2f}x" if a and b else "?"
    pair = _offline_pair(winner, row, objective)
    if pair is not None:
        return f"{pair[0] / pair[1]:.2f}x (offline images/s, no interval)" if pair[1] else "?"
    ratio: SpeedRatio | None = speed_ratio(winner, row, cycles)
    return ratio.text() if ratio is not None else "? (no timing)"


def _offline_pair(a: Mapping[str, Any], b: Mapping[str, Any], objective: str) -> tuple[float, float] | None:
    """Both rows' offline images/s, where throughput is ranked on them."""
    mine, theirs = _num(a, OFFLINE_IPS), _num(b, OFFLINE_IPS)
    return (mine, theirs) if objective == "throughput" and mine is not None and theirs is not None else None


def _better_word(objective: str) -> str:
    return {"latency": "faster", "throughput": "higher in throughput", "size": "smaller"}[objective]


# ---------------------------------------------------------------- int8 that does not pay


def _int8_flags(
    row: Mapping[str, Any], ok: list[Mapping[str, Any]], reference: Mapping[str, Any] | None, cycles: CycleTimes
) -> tuple[str, ...]:
    """For an int8 cell with trustworthy timing: slower than fp32 eager, or than its runtime's float cell."""
    if row.get("precision") != "int8" or not ratios_trusted(row.get("timing_quality")):
        return ()
    flags = []
    speedup = _num(row, "speedup_vs_fp32")
    if reference is not None and speedup is not None:
        low, high = _num(row, "speedup_vs_fp32_ci_low"), _num(row, "speedup_vs_fp32_ci_high")
        interval = bracket(low, high)
        if (high if high is not None else speedup) < 1:
            flags.append(f"slower than fp32 eager ({speedup:.2f}x{interval}): quantizing does not pay here")
        elif speedup < 1 or (low is not None and low < 1):
            flags.append(f"not faster than fp32 eager within noise ({speedup:.2f}x{interval})")
    ran = {(str(r.get("backend")), str(r.get("precision"))) for r in ok}
    counterpart = float_counterpart(str(row.get("backend")), "int8", ran)
    if counterpart is not None and counterpart != REFERENCE:
        other = next(r for r in ok if (r.get("backend"), r.get("precision")) == counterpart)
        if ratios_trusted(other.get("timing_quality")):
            ratio = speed_ratio(row, other, cycles)
            if ratio is not None and ratio.b_faster:
                flags.append(f"slower than its runtime's {counterpart[0]} {counterpart[1]} ({ratio.text()})")
    return tuple(flags)


def _ranked_by_ratio(row: Mapping[str, Any], quality_column: str) -> bool:
    """Single-stream timing: `ratios_trusted`; a scenario's throughput (not paired by cycle) only when
    its own flag is not noisy."""
    quality = row.get(quality_column)
    if quality_column == "timing_quality":
        return ratios_trusted(quality)
    return not str(quality or "").startswith("noisy")


def _slower_than_fp32(row: Mapping[str, Any]) -> bool:
    speedup = _num(row, "speedup_vs_fp32")
    return speedup is not None and speedup < 1


# ---------------------------------------------------------------- entries and words


def _entry(
    row: Mapping[str, Any],
    verdict: str,
    reason: str,
    metric: str,
    checks: tuple[BudgetCheck, ...] = (),
    flags: tuple[str, ...] = (),
) -> Entry:
    return Entry(
        cell=cell_id(row),
        backend=str(row.get("backend")),
        precision=str(row.get("precision")),
        options=str(row.get("options") or ""),
        verdict=verdict,
        reason=reason,
        checks=checks,
        flags=flags,
        speedup=_num(row, "speedup_vs_fp32"),
        speedup_low=_num(row, "speedup_vs_fp32_ci_low"),
        speedup_high=_num(row, "speedup_vs_fp32_ci_high"),
        latency_p50_ms=_num(row, "latency_p50_ms"),
        throughput_ips=_num(row, "throughput_ips"),
        offline_ips=_num(row, OFFLINE_IPS),
        offline_setting=str(row["offline_setting"]) if isinstance(row.get("offline_setting"), str) else None,
        quality_metric=metric,
        quality_drift=_num(row, f"{metric}_drift"),
        quality_drift_low=_num(row, f"{metric}_drift_ci_low"),
        quality_drift_high=_num(row, f"{metric}_drift_ci_high"),
        model_size_bytes=_num(row, "model_size_bytes"),
        backend_rss_mib=_num(row, "backend_rss_mib"),
    )


def _with(entry: Entry, verdict: str, reason: str) -> Entry:
    return replace(entry, verdict=verdict, reason=reason)


def _recommended_reason(row: Mapping[str, Any], objective: str, tie: str) -> str:
    text = f"meets every budget and is best on {objective}"
    if is_reference(row):
        text += ": no quantized cell beats fp32 eager within the budgets"
    return f"{text}; {tie}" if tie else text


def _with_headline(decision: GroupDecision) -> GroupDecision:
    winner = decision.recommended
    if winner is None:
        closest = next(
            (e for e in decision.entries if e.verdict in (BUDGET_UNCERTAIN, BUDGET_FAILED, BUDGET_UNJUDGED, NOISY)),
            None,
        )
        tail = f"; closest: {winner_name(closest)}, {closest.verdict}: {closest.reason}" if closest else ""
        return replace(decision, headline=f"no cell meets every budget with trustworthy numbers{tail}")
    parts = [f"ship {winner_name(winner)}", speed_text(winner)]
    if decision.objective == "throughput" and winner.offline_ips is not None:
        parts.append(f"{winner.offline_ips:.0f} images/s offline ({winner.offline_setting})")
    drift = drift_text(winner)
    if drift:
        parts.append(drift)
    if winner.model_size_bytes:
        parts.append(f"{winner.model_size_bytes / 2**20:.1f} MiB")
    return replace(decision, headline=", ".join(parts))


def _drift_text(row: Mapping[str, Any], metric: str) -> str:
    value = _num(row, f"{metric}_drift")
    return "?" if value is None else number(value)


def _name(row: Mapping[str, Any]) -> str:
    return f"{row.get('backend')} {row.get('precision')}"


def _objective_value(entry: Entry, objective: str) -> float:
    """Higher is better: what picks the best cell and orders the ranking; -inf without a value. Latency
    without a speedup (no fp32 eager row) falls back on 1 / p50; throughput is the offline rate where the
    cell has one (`decide_group` ranks a group with offline rates on them alone)."""
    if objective == "size":
        return -entry.model_size_bytes if entry.model_size_bytes is not None else -math.inf
    throughput = entry.offline_ips if entry.offline_ips is not None else entry.throughput_ips
    value = throughput if objective == "throughput" else entry.speedup
    if value is None and objective == "latency" and entry.latency_p50_ms:
        return 1 / entry.latency_p50_ms
    return value if value is not None else -math.inf


def _machine(row: Mapping[str, Any]) -> str:
    """The machine (merged folders) or Ray node that measured the row; "" for a run of one machine."""
    for column in ("machine", "node"):
        value = row.get(column)
        if isinstance(value, str) and value:
            return value
    return ""


def _num(row: Mapping[str, Any], column: str) -> float | None:
    value = row.get(column)
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None
