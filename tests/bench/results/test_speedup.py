import pytest

from bench.results.speedup import SameRunReference

GROUP = ("s", "m", "cpu", 1)


def test_speedup_is_a_ratio_to_fp32_eager_in_the_same_run():
    reference = SameRunReference()
    assert reference.speedup(GROUP, "ort-qdq-int8", "int8", 4.0) is None  # no reference measured yet
    assert reference.speedup(GROUP, "torch-eager", "fp32", 10.0) == pytest.approx(1.0)
    assert reference.speedup(GROUP, "ort-qdq-int8", "int8", 4.0) == pytest.approx(2.5)
    assert reference.speedup(("s", "other", "cpu", 1), "ort-qdq-int8", "int8", 4.0) is None  # another model


def test_a_resumed_run_finds_its_reference_among_the_finished_rows():
    rows = [
        {
            "suite": "s",
            "model": "m",
            "device": "cpu",
            "batch_size": 1,
            "backend": "torch-eager",
            "precision": "fp32",
            "status": "ok",
            "latency_p50_ms": 10.0,
        }
    ]
    assert SameRunReference(rows).speedup(GROUP, "ort", "fp32", 5.0) == pytest.approx(2.0)
    failed = [{**rows[0], "status": "error: boom"}]
    assert SameRunReference(failed).speedup(GROUP, "ort", "fp32", 5.0) is None
