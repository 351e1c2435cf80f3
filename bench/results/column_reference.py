"""docs/columns.md, generated from the declarations in bench/results/columns.py, so the reference a reader
looks up is the one compare, history, --fail-on and the report judge by: a column added, or a threshold
moved, without regenerating it fails tests/bench/results/test_column_reference.py.

Regenerate: `python -m bench.results.column_reference > docs/columns.md`.
"""

from __future__ import annotations

from bench.results.columns import COLUMNS, Column

HEADER = """# Row columns

Generated from `bench/results/columns.py` by `python -m bench.results.column_reference > docs/columns.md`;
do not edit by hand (a test fails when this file and the declarations differ). Why each threshold is what it
is: the docstring of `bench/results/columns.py`.

- **better**: the direction a change is judged in; `informational` columns are shown, never judged.
- **unit**: `score` is unitless, 0..1 (what `--quality-threshold` replaces the threshold of).
- **threshold**: the smallest change between two runs that is not noise (compare, history); a percentage is
  relative (latency, which compare also tests with Mann-Whitney); none: bounded by `--fail-on` and budgets only.
- **vs fp32**: measured against the run's fp32 reference, whose own row is the yardstick; `yes, paired`: a
  ratio paired with it cycle by cycle, judged also on a row whose timing is noisy only because its rounds
  disagreed (the latency's level moved; pairing cancels that and the ratio's interval carries it). Every other
  timing column of a noisy row is not judged.
- A name with `<...>` or `[@...]` is a family of columns, matched as a pattern (per class, per Grad-CAM method
  or layer).
"""


def _threshold(declared: Column) -> str:
    if declared.threshold is None:
        return ""
    text = f"{declared.threshold * 100:g}%" if declared.relative else f"{declared.threshold:g}"
    return text + (f" (values above {declared.ceiling:g} count as {declared.ceiling:g})" if declared.ceiling else "")


def _row(declared: Column) -> str:
    cells = (
        f"`{declared.name}`".replace("|", "\\|"),  # a family's alternatives, not table cells
        declared.kind,
        declared.better or "informational",
        declared.unit,
        _threshold(declared),
        ("yes, paired" if declared.paired else "yes") if declared.against_reference else "",
    )
    return "| " + " | ".join(cells) + " |"


def column_reference() -> str:
    """The Markdown of docs/columns.md: one row per declaration, in declaration order (judged ones first by
    kind, as columns.py groups them)."""
    lines = [
        HEADER,
        "| column | kind | better | unit | threshold | vs fp32 |",
        "|---|---|---|---|---|---|",
        *(_row(declared) for declared in COLUMNS),
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(column_reference(), end="")
