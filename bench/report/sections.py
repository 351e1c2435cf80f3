"""The words of each section of a run's report.md and report.html: its title and the sentences that explain
it, said once here and rendered by both reports (bench/report/markdown.py and bench/report/html.py, the
decision's renderers in bench/report/decision.py, the profiles' in bench/report/profile_report.py).

A change of wording is one edit, and the two reports cannot drift apart. What only one report says about
its own layout (the figures' titles, the profile page's sub-headings and table headers) stays with the
code that lays it out.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.report.tables import NEGLIGIBLE_DIVERGENCE


@dataclass(frozen=True)
class Section:
    """One report section's words; each renderer adds its own markup (and escaping) around them.

    title: the heading in both reports; page_title: report.html's heading where it says more.
    intro: what is said before the section's table or lines; page_intro: report.html's own, where the page
    says more than report.md (a template too).
    legend: what the columns of its table mean, said after the table.
    lead: the words that introduce its list of marked items, without their colon (report.md ends them with
    one before its list; report.html with a colon or, for a list that is evidence of nothing, a full stop).
    nothing: what is said instead of that list when nothing is marked.
    columns: the headers of its table, where both reports draw it.
    """

    title: str
    page_title: str = ""
    intro: str = ""
    page_intro: str = ""
    legend: str = ""
    lead: str = ""
    nothing: str = ""
    columns: tuple[str, ...] = ()

    @property
    def html_title(self) -> str:
        return self.page_title or self.title


DECISION = Section(
    "Decision: which backend to ship",
    # after "Budgets: <the group's budgets>."
    intro="Intervals are 95%: speedups from the per-cycle ratios, drifts from a paired bootstrap over the "
    "evaluation images.",
    legend="speed: times faster than fp32 eager in this run (below 1: slower); drift: the metric minus fp32 "
    "eager's (negative: a loss); [low, high]: the 95% interval. Budgets are judged on the interval's worse end.",
    lead="Int8 that does not pay here",
    columns=("#", "cell", "verdict", "reason", "speed vs fp32 eager [95%]", "{metric} drift [95%]"),
)
SUMMARY = Section(
    "Summary",
    legend="p50/p90/p99: latency percentiles per batch; speedup: times faster than fp32 eager in the same run "
    "(speedup_method: paired per timing cycle, or the p50 ratio); Δ: difference "
    "to the fp32 reference of the same model; agreement: fraction of pixels predicted the same as the fp32 "
    "reference.",
)
STAGE_FAILURES = Section(
    "Stages that failed",
    intro="The cell's latency and its other stages' numbers stand; the failed stage's columns are empty and the "
    "traceback is in the run's logs/ folder.",
)
NOISY = Section(
    "Rows timed on a busy or slow machine",
    lead="Their latencies and speedups are not evidence",  # report.html says it as a sentence above the list
)
GRADCAM = Section(
    "Grad-CAM: divergence from fp32 beside the method's own noise",
    legend="Pearson / top-10% IoU: the backend's Grad-CAM maps against the fp32 model's (primary method); "
    "fd vs fake-quant and step 2 vs 8: the same artifact's maps by the two methods, and by finite differences "
    "at 2 and 8 quantization steps, against each other; floor: the lower of the two, the method's own noise. "
    f"'negligible': the divergence from fp32 (1 - Pearson) is below {NEGLIGIBLE_DIVERGENCE:g}, the smallest "
    "Pearson change that counts; else 'within method noise' when it is at most twice the method's (1 - floor).",
    lead="Maps that cannot be taken at face value",
)
# report.md points at report.html for the details; the page explains the attribution in full. Templates:
# {cells} the profiled cells, {file} profile.parquet's name (report.html wraps it in <code>).
PROFILES = Section(
    "Profiles",
    page_title="Profiles: where each cell's time goes",
    intro="Per-operator profiles of {cells} cell(s) (`segbench run --profile`): `{file}` in this run folder, "
    "one row per operator; report.html shows each cell's op types and layers.\n"
    "Times are the profiled pass's ms per model call (profiler on); p50s are the unprofiled timing. "
    "A layer's time is its compute ops; quantize, dequantize, requantize and reorder ops count in their "
    "category, whatever their layer.",
    page_intro="Per-operator profiles from {file} in this run folder (one row "
    "per operator). Times are ms per model call in the profiled pass, taken after the timing with the "
    "profiler on; p50 is the unprofiled timing. A layer's time is its compute ops; quantize, dequantize, "
    "requantize and reorder ops count in their own rows, whatever their layer; unattributed: compute ops "
    "the runtime named no layer for. An int8 cell is compared with its float counterpart: its own runtime's "
    "float cell where the run has it, else torch-eager fp32.",
    lead="int8 cells not faster than their float counterpart",
    nothing="Every int8 cell that ran is faster than its float counterpart.",
)
ROOFLINE = Section(
    "Share of peak",
    intro="MACs per image are counted on the float model's ONNX graph (Conv, ConvTranspose, MatMul and Gemm "
    "exactly; the other nodes are listed as uncounted). GMAC/s is that times the batch over the p50 latency, "
    "and % of peak is it against this machine's measured GEMM peak of the row's precision (int8 rows against "
    "int8, bf16 and fp16 against bf16). MAC/byte: the counted ops' MACs over the bytes they read and write, "
    "tensors at the row's precision, weights shared by the batch.",
    legend="uncounted nodes: the share of the graph's nodes whose work is not in the MACs, by op type; status: "
    "why a row has no share of peak (unavailable) or no count (error). On the chart the roofs are the measured "
    "peaks, capped on the left by the streaming copy's bandwidth.",
)
SWEEP = Section(
    "Shape sweep",
    intro="Every input size and batch size of the sweep is a comparison group of its own: each backend built "
    "and calibrated at that size, timed in interleaved rounds with fp32 eager at the same shape, its speedup "
    "against that. Quality and Grad-CAM are measured at the suite's own size only (those rows are in the "
    "summary table above). k is the slope of log p50 against log pixels: 1 means latency grows with the "
    "pixels, below 1 a fixed cost per call is spread over more of them. An int8 backend does not pay where "
    "its speedup's 95% interval reaches 1.",
)
CELLS_WITHOUT_RESULTS = Section("Cells without results", nothing="Every cell ran.")
ENVIRONMENT = Section("Environment")
