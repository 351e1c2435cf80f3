"""The layout in docs/architecture.md, held against the code: imports point down, and never in a circle.

Every import counts, including lazy ones inside functions and those under `TYPE_CHECKING`: a
type-only circle still means two modules that cannot be understood apart.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Top to bottom, as docs/architecture.md lists them; a module may import its own layer and those below.
LAYERS = [
    "bench.api",
    "bench.cli",
    "bench.tune",
    "bench.run",
    "backends",
    "bench.training",
    "bench.gradcam",
    "bench.report",
    "bench.measure",
    "bench.onnx",
    "bench.decide",
    "bench.results",
    "bench.models",
    "bench.data",
    "bench.environment",
    "bench.backend",
    "bench.cache",
    "bench.output",
    "bench.errors",
]


def project_modules() -> dict[str, Path]:
    found = {}
    for package in ("bench", "backends"):
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            if name not in ("bench", "backends"):  # the packages' own faces hold no code
                found[name] = path
    return found


def imported_names(source: str) -> set[str]:
    """Every dotted name a file imports, anywhere in it (`from a import b` gives a and a.b)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def imported(source: str, known: set[str]) -> set[str]:
    """Project modules a file imports, anywhere in it (`from a import b` counts a.b when b is a module)."""
    return imported_names(source) & known


def layer(module: str) -> int:
    return next(i for i, prefix in enumerate(LAYERS) if module == prefix or module.startswith(prefix + "."))


def upward(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{a} -> {b}" for a, targets in graph.items() for b in targets if layer(b) < layer(a))


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every circle found by a depth-first walk (each reported once, from where the walk closed it)."""
    state: dict[str, str] = {}
    found: list[list[str]] = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(graph.get(module, ())):
            if state.get(target) == "open":
                found.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    return found


def project_graph() -> dict[str, set[str]]:
    modules = project_modules()
    names = set(modules) | {"bench.backend"}  # a package face that plugins import
    return {name: imported(path.read_text(), names) - {name} for name, path in modules.items()}


def test_every_module_has_a_place_in_the_layout():
    assert all(layer(module) >= 0 for module in project_modules())


def test_imports_point_down_the_layers():
    assert upward(project_graph()) == []


def test_no_modules_import_each_other_in_a_circle():
    assert circles(project_graph()) == []


# What `bench/` must never import: each runtime lives in its own folder under `backends/` (issue 32), so
# the harness measures every backend through the contract alone and a runtime is added in one place.
RUNTIME_PACKAGES = ("onnxruntime", "openvino", "nncf", "tensorrt", "torchao", "torch.ao", "torch.quantization")


def runtime_imports(source: str) -> set[str]:
    """The runtime packages a file imports, anywhere in it (lazy and type-only imports count)."""
    names = imported_names(source)
    return {p for p in RUNTIME_PACKAGES for name in names if name == p or name.startswith(p + ".")}


def test_bench_imports_no_inference_runtime():
    found = {
        str(path.relative_to(ROOT)): sorted(runtime_imports(path.read_text()))
        for path in (ROOT / "bench").rglob("*.py")
        if runtime_imports(path.read_text())
    }
    assert found == {}


def test_the_runtime_check_sees_lazy_and_from_imports():
    source = "import numpy\ndef f():\n    from torch.ao.quantization import QConfig\n    import openvino as ov\n"
    assert runtime_imports(source) == {"torch.ao", "openvino"}
    assert runtime_imports("from torch import ao\nimport onnx\n") == {"torch.ao"}


def test_no_test_imports_from_a_conftest():
    """pytest loads conftest files itself; importing one as a module runs it twice, under two names. Shared
    helpers live in ordinary modules (tests/helpers.py, tests/bench/data/files_fixture.py)."""
    found = []
    for path in (ROOT / "tests").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            names += [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            found += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[-1] == "conftest"]
    assert found == []


def test_the_checks_see_a_circle_and_an_upward_import():
    """Both checks can fail: a lazy import back up (data -> run) closes a circle with run -> data."""
    lazy = "def f():\n    from bench.run import config\n"
    known = {"bench.run.config", "bench.data.suite"}
    graph = {"bench.data.suite": imported(lazy, known), "bench.run.config": {"bench.data.suite"}}
    assert graph["bench.data.suite"] == {"bench.run.config"}
    assert upward(graph) == ["bench.data.suite -> bench.run.config"]
    assert circles(graph) == [["bench.data.suite", "bench.run.config", "bench.data.suite"]]
