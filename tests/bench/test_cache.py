"""Cache keys cover the code that builds an object, however deep it is imported, and the libraries."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from bench import cache
from bench.backend import PrepareContext, get_backend
from bench.cache import code_digest, source_closure


@pytest.fixture
def package(tmp_path, monkeypatch):
    """A tiny package: a imports b lazily, b imports c at the top, e imports c and d relatively."""
    root = tmp_path / "demo_pkg"
    root.mkdir()
    (root / "__init__.py").write_text("")
    (root / "a.py").write_text("def f():\n    from demo_pkg import b\n    return b.g()\n")
    (root / "b.py").write_text("import demo_pkg.c\n\ndef g():\n    return demo_pkg.c.VALUE\n")
    (root / "c.py").write_text("VALUE = 1\n")
    (root / "d.py").write_text("VALUE = 2\n")
    (root / "e.py").write_text("from . import d\nfrom .c import VALUE\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in [n for n in sys.modules if n.split(".")[0] == "demo_pkg"]:  # another test's copy
        monkeypatch.delitem(sys.modules, name)
    code_digest.cache_clear()
    yield root
    code_digest.cache_clear()


def test_the_closure_follows_lazy_and_indirect_imports(package):
    names = {path.name for path in source_closure("demo_pkg.a", packages=())}
    assert names == {"__init__.py", "a.py", "b.py", "c.py"}  # d is not reached


def test_the_closure_follows_relative_imports(package):
    names = {path.name for path in source_closure("demo_pkg.e", packages=())}
    assert names == {"__init__.py", "e.py", "c.py", "d.py"}


def test_a_change_anywhere_in_the_closure_changes_the_digest(package):
    before = code_digest("demo_pkg.a")
    (package / "d.py").write_text("VALUE = 3\n")
    code_digest.cache_clear()
    assert code_digest("demo_pkg.a") == before  # outside the closure
    (package / "c.py").write_text("VALUE = 4\n")
    code_digest.cache_clear()
    assert code_digest("demo_pkg.a") != before  # two imports deep, the second one lazy


def test_the_shared_quantization_helper_is_in_the_qdq_backends_key():
    files = {str(p) for p in source_closure("backends.onnxruntime.qdq_int8")}
    assert any(f.endswith("backends/onnxruntime/quantize.py") for f in files)
    assert any(f.endswith("backends/onnxruntime/coverage.py") for f in files)


def _context(backend) -> PrepareContext:
    from bench.models import create_model

    return PrepareContext(
        "unet",
        create_model("unet", 1, 2),
        np.zeros((2, 1, 8, 8), np.float32),
        (1, 8, 8),
        2,
        "int8",
        "cpu",
        backend.parse_options({}),
    )


def test_an_upgraded_library_misses_the_artifact_cache(tmp_path, monkeypatch):
    from bench.run import artifacts
    from bench.run.artifacts import artifact_key

    checkpoint = tmp_path / "ck.pt"
    checkpoint.write_bytes(b"weights")
    backend = get_backend("ort-qdq-int8")
    before = artifact_key(backend, _context(backend), checkpoint)
    assert artifact_key(backend, _context(backend), checkpoint) == before  # stable
    versions = cache.library_versions(artifacts.artifact_libraries(backend))
    for library in ("onnxruntime", "onnx", "torch"):  # the runtime the backend declares, and the harness's
        upgraded = {**versions, library: "2099.0"}
        monkeypatch.setattr("bench.run.artifacts.library_versions", lambda names, upgraded=upgraded: upgraded)
        assert artifact_key(backend, _context(backend), checkpoint) != before


def test_the_artifact_key_covers_the_backend_and_the_model_code(tmp_path, monkeypatch):
    from bench.run import artifacts

    checkpoint = tmp_path / "ck.pt"
    checkpoint.write_bytes(b"weights")
    seen = []
    monkeypatch.setattr(artifacts, "code_digest", lambda *modules: seen.append(modules) or "code")
    backend = get_backend("ort-qdq-int8")
    artifacts.artifact_key(backend, _context(backend), checkpoint)
    assert seen == [("backends.onnxruntime.qdq_int8", "bench.models.unet")]


def test_the_checkpoint_key_covers_the_model_code_the_trainer_and_the_libraries(monkeypatch):
    from bench.data.suite import get_suite
    from bench.training import checkpoints
    from bench.training.recipes import DEFAULT_RECIPE

    seen = []
    monkeypatch.setattr(checkpoints, "code_digest", lambda *modules: seen.append(modules) or "code")
    suite = get_suite("synthetic-nuclei")
    before = checkpoints.checkpoint_key("unet", suite, DEFAULT_RECIPE)
    assert seen == [("bench.models.unet", "bench.training.trainer")]
    versions = cache.library_versions()
    monkeypatch.setattr(checkpoints, "library_versions", lambda names=(): {**versions, "torch": "9.9"})
    assert checkpoints.checkpoint_key("unet", suite, DEFAULT_RECIPE) != before


def test_the_quietest_kernel_time_is_kept_per_torch_version(tmp_path, monkeypatch):
    """A torch that runs the reference kernel slower must not be judged against an older torch's time."""
    from bench.run import runner

    monkeypatch.setenv("SEGBENCH_CACHE", str(tmp_path))
    before = runner.reference_kernel_record(2)
    assert before == runner.reference_kernel_record(2) and before.parent == tmp_path / "machine"
    assert runner.reference_kernel_record(1) != before
    versions = cache.library_versions(("torch",))
    monkeypatch.setattr(cache, "library_versions", lambda names=(): {**versions, "torch": "9.9"})
    assert runner.reference_kernel_record(2) != before


def test_a_library_installed_as_another_build_of_its_module_is_found_with_that_builds_name():
    """onnxruntime-gpu installs the `onnxruntime` module: the GPU recipe's runs record its version, not None.
    Pillow stands in for it here: its distribution is `pillow`, its module `PIL`."""
    from importlib import metadata

    assert cache.library_versions(("PIL", "no-such-library")) == {
        "PIL": f"{metadata.version('pillow')} (pillow)",
        "no-such-library": None,
    }
