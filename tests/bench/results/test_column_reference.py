"""docs/columns.md is what bench/results/columns.py declares: regenerated here, it cannot drift."""

from pathlib import Path

from bench.results.column_reference import column_reference
from bench.results.columns import COLUMNS

DOC = Path(__file__).resolve().parents[3] / "docs" / "columns.md"


def test_docs_columns_md_is_up_to_date():
    assert DOC.read_text() == column_reference(), (
        "docs/columns.md is out of date: python -m bench.results.column_reference > docs/columns.md"
    )


def test_every_declaration_is_one_table_row_with_its_direction_unit_and_threshold():
    rows = [line for line in column_reference().splitlines() if line.startswith("| `")]
    assert len(rows) == len(COLUMNS)
    assert "| `sqnr_db` | sqnr | higher | dB | 1 (values above 60 count as 60) | yes |" in rows
    assert "| `latency_p50_ms` | latency | lower | ms | 10% |  |" in rows
    assert "| `notes` | informational | informational |  |  |  |" in rows
    assert all(line.count(" | ") == 5 for line in rows)  # a family's "|" is escaped, not a cell
