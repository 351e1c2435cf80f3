"""Counting what the capture put into logs/: by source, every kind of line once, segbench's own
tracebacks left out; the run's one end line."""

from __future__ import annotations

from bench.output.capture import traceback_entry
from bench.output.library_lines import classify, count_library_lines, library_summary, log_sizes, pattern

CELL_LOG = (
    "[warning] torch.ao.quantization.quantize_fx: FutureWarning: torch.ao.quantization is deprecated\n"
    "[log WARNING] onnx_ir._convenience: Attribute type is ambiguous because it is an empty sequence.\n"
    "[log WARNING] onnx_ir._convenience: Attribute type is ambiguous because it is an empty sequence.\n"
    "[log ERROR] onnxruntime.quantization.qdq_quantizer: Axis 1 is out-of-range for weight 'a.weight'\n"
    "    Traceback (most recent call last):\n"
    "      File ...\n"
    "[W1206 04:05:34.334668848 Quantizer.cpp:111] Warning: torch.quantize_per_tensor ... deprecated\n"
    "W1206 04:05:44.123000 8053 torch/utils/_pytree.py:630] <enum 'KernelPreference'> is an Enum subclass\n"
    "INFO:nncf:Statistics collection\n"
    "\rStatistics collection ━━━━━━━━ 50% 150/300\rStatistics collection ━━━━━━━━━━━━━━━━ 100% 300/300\n"
    "/venv/site-packages/torch/ao/quantization/observer.py:229: UserWarning: please use a newer observer\n"
    "  warnings.warn(\n"
    "\x1b[33mplain output of a runtime\x1b[0m\n"
    "\n"
)


def test_every_captured_line_is_attributed_once_and_records_count_with_their_further_lines():
    found = list(classify(CELL_LOG.split("\n")))
    assert found == [
        ("torch.ao.quantization.quantize_fx", "FutureWarning: torch.ao.quantization is deprecated"),
        ("onnx_ir._convenience", "Attribute type is ambiguous because it is an empty sequence."),
        ("onnx_ir._convenience", "Attribute type is ambiguous because it is an empty sequence."),
        ("onnxruntime.quantization.qdq_quantizer", "Axis N is out-of-range for weight '…'"),
        ("Quantizer.cpp", "Warning: torch.quantize_per_tensor ... deprecated"),
        ("torch.utils._pytree", "<enum '…'> is an Enum subclass"),
        ("nncf", "Statistics collection"),
        ("output", "Statistics collection N% N/N"),  # the bar as it was left
        ("observer", "UserWarning: please use a newer observer"),
        ("output", "plain output of a runtime"),
    ]


def test_segbenchs_own_traceback_entries_are_not_counted():
    text = (
        "[log WARNING] nncf: before\n"
        + traceback_entry("Traceback (most recent call last):\n\nDuring handling ...:\n\nRuntimeError: boom")
        + "[log WARNING] nncf: after\n"
    )
    assert [message for _, message in classify(text.split("\n"))] == ["before", "after"]


def test_a_resumed_run_counts_only_what_it_wrote_itself(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "cell.log").write_text("[log WARNING] nncf: first part\n")
    before = log_sizes(logs)
    with (logs / "cell.log").open("a") as file:
        file.write("[log WARNING] nncf: resumed\n")
    (logs / "other.log").write_text("raw line\n")
    assert count_library_lines(logs, before) == {("nncf", "resumed"): 1, ("output", "raw line"): 1}
    assert sum(count_library_lines(logs).values()) == 3


def test_the_end_line_counts_what_was_captured_and_names_the_commonest_kinds(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "a.log").write_text(CELL_LOG)
    (logs / "b.log").write_text("[log WARNING] onnx_ir._convenience: Attribute type is ambiguous\n" * 3)
    assert library_summary(logs) == (
        f"13 library lines (warnings, log records, progress bars) in {logs}/ (most: "
        "3 onnx_ir._convenience 'Attribute type is ambiguous'; "
        "2 onnx_ir._convenience 'Attribute type is ambiguous because it is an empty sequence.'; "
        "1 torch.ao 'FutureWarning: torch.ao.quantization is deprecated')"  # ties: first seen first
    )
    assert library_summary(tmp_path / "nothing") == ""


def test_a_pattern_masks_particulars_and_stays_short():
    assert pattern('Axis 12 is out-of-range for weight "enc.0.w" with rank 4') == (
        "Axis N is out-of-range for weight '…' with rank N"
    )
    assert len(pattern("x" * 200)) == 60
