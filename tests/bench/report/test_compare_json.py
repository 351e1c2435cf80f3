"""compare --format json: the same verdicts as the Markdown, every column's with its reason, same exit codes."""

import json

from bench.cli import main
from bench.report.compare import FORMATS, compare_runs, load_run
from bench.report.compare_json import SCHEMA_VERSION, compare_json
from tests.bench.report.test_compare import make_run


def test_a_quality_regression_is_reported_with_its_column_and_exit_1(tmp_path, capsys):
    base, worse = make_run(tmp_path / "a"), make_run(tmp_path / "b", dice=0.90)
    out = tmp_path / "compare.json"
    assert main(["compare", str(base), str(worse), "--format", "json", "--out", str(out)]) == 1
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(out.read_text())  # --out writes the chosen format
    assert printed["schema_version"] == SCHEMA_VERSION and printed["regression"] is True
    row = printed["rows"][0]
    verdicts = {c["column"]: c for c in row["columns"]}
    assert verdicts["dice"]["verdict"] == "regression"
    assert verdicts["dice"]["baseline"] == 0.95 and verdicts["dice"]["current"] == 0.90
    assert verdicts["dice"]["threshold"] == 0.002
    assert verdicts["pixel_agreement"]["verdict"] == "unchanged"
    assert verdicts["latency_p50_ms"]["verdict"] in ("unchanged", "improvement", "regression")
    assert any("dice" in line for line in printed["regressions"])


def test_identical_runs_exit_0_and_markdown_stays_the_default(tmp_path, capsys):
    base, same = make_run(tmp_path / "a"), make_run(tmp_path / "b")
    assert main(["compare", str(base), str(same), "--format", "json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["regressions"] == [] and {c["verdict"] for r in document["rows"] for c in r["columns"]} == {
        "unchanged"
    }
    assert main(["compare", str(base), str(same)]) == 0
    assert capsys.readouterr().out.startswith("# segbench compare")
    assert FORMATS == ("markdown", "json")


def test_a_noisy_latency_is_not_judged_with_its_reason(tmp_path):
    base, slow = make_run(tmp_path / "a"), make_run(tmp_path / "b", p50_ms=13.0, timing_quality="noisy: busy")
    document = compare_json(compare_runs(load_run(base), load_run(slow)), load_run(base), load_run(slow))
    latency = next(c for c in document["rows"][0]["columns"] if c["column"] == "latency_p50_ms")
    assert latency["verdict"] == "not judged" and "noisy" in latency["reason"]
    assert json.dumps(document, allow_nan=False)  # NaN p-values and missing values are null
