"""Every row column, declared once: which way is better, its unit, and the smallest change that counts.

`segbench compare`, `segbench history`, `segbench tune --budget`, `segbench run --fail-on` and the report
all read these declarations instead of keeping lists of their own, so a metric is judged the same way
everywhere and a new one cannot go unjudged by accident: tests/bench/results/test_columns.py walks the
columns a real run writes and fails on any numeric column declared nowhere. A column either has a
direction (higher or lower is better: it can be judged) or is informational (ids, counts, timing
diagnostics, notes: shown, never judged).

Thresholds (`threshold`, in the column's unit) are the smallest change between two runs that is not
noise; compare and history share them (`--quality-threshold` overrides every score column's):

- aggregate scores (quality, drift, agreement with the reference, boundary F1): 0.002. On one machine
  these are deterministic for one artifact, so any change is real; 0.002 (a fifth of a point of mIoU) is
  the smallest one worth a look. compare used 0.005 and history 0.002, for no stated reason.
- per-class scores and the worst class's drift: 0.01. A class's score rests on far fewer pixels than
  the mean (CamVid's pole: IoU 0.02 from a few hundred pixels an image), so a handful of flipped
  boundary pixels moves it by more than 0.002 without anything having changed that matters.
- Grad-CAM Pearson and Spearman: 0.001, the divergence (1 - Pearson) the Grad-CAM table calls
  `negligible` as well: below it the maps agree to three places and the table's four cannot tell a
  finding; top-10% IoU: 0.01 (a count of pixels: each one of a 128x128 map's top region moves it ~0.001);
  Jensen-Shannon divergence (base 2): 0.001.
- sqnr_db: 1 dB (26% more quantization noise power; int8 rows sit at 22-44 dB), and values above 60 dB
  count as 60 (`ceiling`): fp32 rows sit at 120-150 dB, where the number is float rounding that moves
  with the kernels' choices from run to run, and noise a millionth of the signal's power is no loss.
- latency: 10% (relative), compare's `--latency-threshold`, which also asks a Mann-Whitney test of the
  raw samples; history uses 3x the spread its own runs show instead, a threshold the data gives.
- the scenarios' speed and latency (`offline_ips`, `server_max_rate_ips`, `server_p50_ms`, `server_p99_ms`:
  docs/scenarios.md) have none either, and a row's noise flag for them is their scenario's own
  (`offline_timing_quality`, `server_timing_quality`, `Column.quality_column`), not the single-stream one.
- speed, size and memory have no between-runs threshold: they are declared so that `--fail-on` and
  budgets can bound them, and compare judges speed by the latency test above.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from bench.results.speedup import ratios_trusted

Better = Literal["higher", "lower"]
SCORE = "score"  # unitless, 0..1 (fractions of pixels, IoU, correlations): what --quality-threshold is in
SCORE_THRESHOLD = 0.002
PER_CLASS_THRESHOLD = 0.01
GRADCAM_CORRELATION_THRESHOLD = 0.001
LATENCY_THRESHOLD = 0.10  # relative
SQNR_CEILING_DB = 60.0  # above it, SQNR is float rounding (fp32 rows: 120-150 dB), not quantization
# kinds whose columns move only with timing: never judged from a row timed on a busy machine
TIMING_KINDS = ("latency", "speed")


@dataclass(frozen=True)
class Column:
    """One declared column, or a family of them (`iou_<class>`, `gradcam_pearson[@<method or layer>]`)."""

    name: str  # as the docs write it (docs/columns.md)
    kind: str  # quality boundary drift agreement per-class sqnr gradcam latency speed size memory informational
    better: Better | None  # None: informational, never judged
    unit: str
    threshold: float | None = None  # smallest change between runs that is not noise (None: not judged between runs)
    relative: bool = False  # threshold is a ratio (latency), not a difference in `unit`
    against_reference: bool = False  # measured against the run's fp32 reference (that row is the yardstick)
    pattern: re.Pattern[str] = field(default=re.compile(""), compare=False, repr=False)
    ceiling: float | None = None  # values beyond it are all equally good (between runs they count as it)
    quality_column: str = "timing_quality"  # a timing column's noise flag: its scenario's `<...>_timing_quality`
    paired: bool = False  # a ratio paired by cycle with the reference: noisy only where noise biases ratios

    @property
    def judged(self) -> bool:
        return self.better is not None

    @property
    def timing(self) -> bool:
        """Latency and speed columns: a row timed on a busy machine is no evidence for them."""
        return self.kind in TIMING_KINDS

    def noisy(self, row: Mapping[str, Any]) -> bool:
        """A timing column of a row whose timing (of this column's scenario) was noisy: no evidence. A ratio
        paired by cycle stands where the rounds only disagreed (`ratios_trusted`): its interval carries that."""
        quality = row.get(self.quality_column)
        if self.paired:
            return self.timing and not ratios_trusted(quality)
        return self.timing and str(quality or "").startswith("noisy")

    @property
    def between_runs(self) -> bool:
        """Judged by an absolute change between two runs (compare's quality verdicts, history's change points)."""
        return self.judged and self.threshold is not None and not self.relative

    def noise(self, score_threshold: float | None = None) -> float | None:
        """The threshold, or `score_threshold` (`--quality-threshold`) for a score column."""
        if score_threshold is not None and self.unit == SCORE and self.between_runs:
            return score_threshold
        return self.threshold

    def level(self, value: float) -> float:
        """The value as runs are compared on it: at most the ceiling, where there is one."""
        return min(value, self.ceiling) if self.ceiling is not None else value

    def worse_by(self, before: float, after: float) -> float:
        """How much worse `after` is than `before` in this column's direction (negative: better)."""
        before, after = self.level(before), self.level(after)
        change = after - before if self.better == "lower" else before - after
        return change / abs(before) if self.relative and before else change


def _declare(
    name: str,
    kind: str,
    better: Better | None,
    unit: str,
    threshold: float | None = None,
    *,
    regex: str | None = None,
    relative: bool = False,
    against_reference: bool = False,
    ceiling: float | None = None,
    quality_column: str = "timing_quality",
    paired: bool = False,
) -> Column:
    """One column (`regex` None: exactly `name`) or a family of them (`regex` matches the whole name)."""
    pattern = re.compile(regex if regex is not None else re.escape(name))
    return Column(
        name, kind, better, unit, threshold, relative, against_reference, pattern, ceiling, quality_column, paired
    )


def _informational(*names: str, unit: str = "") -> list[Column]:
    return [_declare(name, "informational", None, unit) for name in names]


def _score(name: str, kind: str, threshold: float = SCORE_THRESHOLD, regex: str | None = None) -> Column:
    """A higher-is-better score (0..1) against the truth."""
    return _declare(name, kind, "higher", SCORE, threshold, regex=regex)


def _drift(name: str, kind: str, threshold: float = SCORE_THRESHOLD, regex: str | None = None) -> Column:
    """A higher-is-better score measured against the fp32 reference (its own row is the yardstick)."""
    return _declare(name, kind, "higher", SCORE, threshold, regex=regex, against_reference=True)


_SCALARS = ("dice", "miou", "global_accuracy", "mean_accuracy", "weighted_iou")
_GRADCAM_SUFFIX = r"(@.+)?"  # @fakequant (the second method) or @<layer> (further layers)
_GRADCAM: tuple[tuple[str, Better, float], ...] = (  # metric, better, threshold
    ("pearson", "higher", GRADCAM_CORRELATION_THRESHOLD),
    ("spearman", "higher", GRADCAM_CORRELATION_THRESHOLD),
    ("top10_iou", "higher", PER_CLASS_THRESHOLD),
    ("jsd", "lower", 0.001),
)
_MEMORY = ("backend_rss_mib", "peak_rss_mib", "evaluation_peak_rss_mib", "peak_device_mib")

COLUMNS: tuple[Column, ...] = (
    # quality against the truth (bench/measure/metrics.py)
    *(_score(name, "quality") for name in _SCALARS),
    _score("mean_bf_score", "boundary"),
    # drift from the fp32 reference and agreement with it (bench/measure/drift.py)
    *(_drift(f"{name}_drift", "drift") for name in _SCALARS),
    _drift("mean_bf_score_drift", "boundary"),
    _drift("min_class_iou_drift", "per-class", PER_CLASS_THRESHOLD),
    _drift("pixel_agreement", "agreement"),
    _drift("miou_vs_reference", "agreement"),
    _drift("bf_vs_reference", "boundary"),
    _declare("sqnr_db", "sqnr", "higher", "dB", 1.0, against_reference=True, ceiling=SQNR_CEILING_DB),
    # 95% intervals (bench/measure/intervals.py): how far the number above could be from the truth, not a
    # metric of their own; the decision reads them (bench/decide/)
    *_informational(
        *(
            f"{name}_drift_ci_{end}"
            for name in (*_SCALARS, "mean_bf_score", "min_class_iou")
            for end in ("low", "high")
        ),
        unit=SCORE,
    ),
    *_informational("drift_ci_method", "speedup_ci_method"),
    *_informational("speedup_vs_fp32_ci_low", "speedup_vs_fp32_ci_high", unit="x"),
    # per class: the agreement family first (`iou_<class>` would take it), drifts before values
    _drift("iou_vs_reference_<class>", "per-class", PER_CLASS_THRESHOLD, regex=r"iou_vs_reference_.+"),
    _drift(
        "<iou|dice|accuracy|bf>_<class>_drift",
        "per-class",
        PER_CLASS_THRESHOLD,
        regex=r"(iou|dice|accuracy|bf)_.+_drift",
    ),
    _score("<iou|dice|accuracy|bf>_<class>", "per-class", PER_CLASS_THRESHOLD, regex=r"(iou|dice|accuracy|bf)_.+"),
    # Grad-CAM divergence from the fp32 model's maps: primary method, @fakequant, further layers
    *(
        _declare(
            f"gradcam_{metric}[@<method or layer>]",
            "gradcam",
            better,
            SCORE,
            threshold,
            regex=rf"gradcam_{metric}{_GRADCAM_SUFFIX}",
            against_reference=True,
        )
        for metric, better, threshold in _GRADCAM
    ),
    # the method's own noise and its bookkeeping: what verdicts are read against, not findings
    _declare("gradcam_zero_maps[@...]", "informational", None, "maps", regex=rf"gradcam_zero_maps{_GRADCAM_SUFFIX}"),
    _declare(
        "gradcam_vs_deployed_max_abs[@...]",
        "informational",
        None,
        "logit",
        regex=rf"gradcam_vs_deployed_max_abs{_GRADCAM_SUFFIX}",
    ),
    _declare("gradcam_status[@...]", "informational", None, "", regex=rf"gradcam_status{_GRADCAM_SUFFIX}"),
    *_informational("gradcam_method_pearson", "gradcam_step_pearson", "gradcam_floor_pearson", unit=SCORE),
    *_informational("gradcam_within_noise", "gradcam_images", "gradcam_s_per_image", "gradcam_method"),
    *_informational("gradcam_note", "gradcam_cut", "gradcam_layer"),
    # timing (bench/measure/timing.py, measurement.py); speed against the same run's fp32 eager
    *(
        _declare(f"latency_{statistic}_ms", "latency", "lower", "ms", LATENCY_THRESHOLD, relative=True)
        for statistic in ("p50", "p90", "p99", "mean", "min", "max")
    ),
    # a GPU cell's end-to-end latency: host batch in, host logits out (Measurement.end_to_end_ns)
    *(
        _declare(f"latency_e2e_{statistic}_ms", "latency", "lower", "ms", LATENCY_THRESHOLD, relative=True)
        for statistic in ("p50", "p99")
    ),
    *_informational("latency_e2e_iterations", "latency_e2e_method"),
    _declare("throughput_ips", "speed", "higher", "images/s"),
    _declare("speedup_vs_fp32", "speed", "higher", "x", against_reference=True, paired=True),
    # share of peak (bench/measure/roofline.py): the float ONNX graph's MACs at the p50 latency
    _declare("achieved_gmacs", "speed", "higher", "GMAC/s (gmac_per_image x batch / p50)"),
    _declare("pct_of_peak", "speed", "higher", "% of the precision's measured GEMM peak"),
    # the scenarios beyond single-stream (bench/measure/scenarios.py), each judged by its own noise flag
    _declare("offline_ips", "speed", "higher", "images/s", quality_column="offline_timing_quality"),
    _declare("server_max_rate_ips", "speed", "higher", "images/s", quality_column="server_timing_quality"),
    *(
        _declare(f"server_{statistic}_ms", "latency", "lower", "ms", quality_column="server_timing_quality")
        for statistic in ("p50", "p99")
    ),
    # size and memory
    _declare("model_size_bytes", "size", "lower", "bytes"),
    *(_declare(name, "memory", "lower", "MiB") for name in _MEMORY),
    # informational: identity, counts, timing diagnostics, how things were measured, notes
    *_informational("suite", "model", "backend", "precision", "device", "status", "batch_size", "threads"),
    *_informational("checkpoint_digest", "notes", "options", "duration_s", "speedup_method"),
    *_informational("input_size"),  # identity: "HxW" of a shape sweep's other size (docs/sweeps.md), "" else
    *_informational("input_height", "input_width", unit="pixels"),
    *_informational("latency_stdev_ms", "latency_cv", "latency_iterations", "timer", "timing_mode", "timing_rounds"),
    *_informational("timing_rounds_left_out", "timing_priority", "timing_quality", "cpu_other_pct", "cpu_steal_pct"),
    *_informational("cpu_timed_pct", "load_avg_1m", "reference_kernel_ms", "reference_slowdown", "timing_round_spread"),
    *_informational("baseline_rss_mib", "memory_method", "allocator", "device_memory_method"),
    *_informational("int8_ops", "float_ops", "float_op_types", "prepare_s", "artifact_cached", "artifact_key"),
    *_informational(
        "profile_status", "profile_method", "profile_calls", "profile_ms_per_run", "profile_ops_ms_per_run"
    ),
    *_informational("profile_overhead_pct", "profile_ops_vs_p50_pct", "profile_layer_attributed_pct"),
    *_informational("profile_qdq_reorder_pct", "profile_attribution"),
    *_informational("gmac_per_image", unit="GMAC (Conv, ConvTranspose, MatMul, Gemm of the float ONNX graph)"),
    *_informational("roofline_peak_gmacs", unit="GMAC/s"),
    *_informational("roofline_bytes_per_image", unit="bytes"),
    *_informational("roofline_mac_per_byte", unit="MAC/byte"),
    *_informational("roofline_uncounted_nodes_pct", unit="% of nodes"),
    *_informational("roofline_status", "roofline_peak", "roofline_uncounted_ops"),
    *_informational("machine", "hostname", "shard", "source_run", "node"),  # merged and Ray runs
    *_informational("offline_status", "offline_setting", "offline_timing_quality", "offline_batch_size"),
    *_informational("offline_callers", "offline_settings_tried", "offline_settings_failed"),
    *_informational("offline_reference_slowdown", "offline_cpu_other_pct"),
    _declare("offline_search_ips", "informational", None, "images/s"),
    *_informational("server_status", "server_setting", "server_timing_quality", "server_queries", "server_probes"),
    *_informational("server_confirmations"),
    *_informational("server_reference_slowdown", "server_cpu_other_pct"),
    *_informational("server_latency_bound_ms", "server_search_p99_ms", unit="ms"),
)

_BY_NAME = {c.name: c for c in COLUMNS if c.pattern.pattern == re.escape(c.name)}
_FAMILIES = [column for column in COLUMNS if column.name not in _BY_NAME]


def column(name: str) -> Column | None:
    """The declaration of a row column (exact names first, then families in declaration order); None when
    nothing declares it."""
    found = _BY_NAME.get(name)
    if found is not None:
        return found
    return next((family for family in _FAMILIES if family.pattern.fullmatch(name)), None)


def judged(name: str) -> Column | None:
    """The declaration of a column that has a better direction; None for informational or unknown ones."""
    found = column(name)
    return found if found is not None and found.judged else None


def judged_threshold(name: str) -> float:
    """The declared threshold of a judged column (what a verdict reads as "too small to matter")."""
    found = judged(name)
    if found is None or found.threshold is None:
        raise KeyError(f"{name} is not a judged column with a threshold")
    return found.threshold


def between_runs(names: Iterable[str]) -> list[str]:
    """The columns of `names` that compare and history judge by an absolute change, in order."""
    return [name for name in names if (found := column(name)) is not None and found.between_runs]


def undeclared(names: Iterable[str]) -> list[str]:
    """Columns no declaration covers (a new metric someone forgot to declare)."""
    return [name for name in names if column(name) is None]


def thresholds_text(score_threshold: float | None = None) -> str:
    """The between-runs thresholds in one line, grouped: what compare and history tell their readers."""
    groups: dict[str, list[str]] = {}
    for declared in COLUMNS:
        if declared.between_runs:
            value = declared.noise(score_threshold)
            unit = "" if declared.unit == SCORE else f" {declared.unit}"
            groups.setdefault(f"{value:g}{unit}", []).append(declared.name)
    return "; ".join(f"{value}: {', '.join(names)}" for value, names in groups.items())
