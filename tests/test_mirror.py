"""Tests mirror the code: `bench/<pkg>/<name>.py` is tested in `tests/bench/<pkg>/test_<name>.py`,
`backends/<runtime>/<name>.py` in `tests/backends/<runtime>/test_<name>.py` (issue 32).

Why: the tests of a module are found without a search, a module that nobody tests shows up as a missing
file instead of hiding behind the tests of its callers, and a module moved or split takes its tests along.
The exceptions are listed here, each with the test file that does exercise the module and why the test is
there (a registry exercised through installed plugins, a command through `segbench`'s `main`, a model
through the zoo's tests), or with the reason a module needs no test of its own (it holds no logic). The
list is checked in both directions, so it cannot rot: every module without a mirror is listed, every listed
module exists and has no mirror, every named test file exists and names the module, and a module said to
hold no logic has no function or method. New modules (a split of a long one) need their mirror or an entry.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bench", "backends")
NOT_MODULES = ("__init__.py", "__main__.py")  # a package's face and its entry point, not modules of their own
NO_LOGIC = "no logic: "

# module -> (the test file that exercises it, why the test is there); ("", "no logic: ...") for a module
# that holds only names, constants or records without methods.
TESTED_ELSEWHERE: dict[str, tuple[str, str]] = {
    # -- the backend contract, one face for plugin authors (`from bench.backend import ...`)
    "bench/backend/base.py": (
        "tests/bench/measure/test_timing.py",
        "Session.time_call is timed through a subclass there; Backend's defaults (options, coverage, notes) "
        "through the built-in backends in tests/bench/test_backend.py",
    ),
    "bench/backend/layers.py": (
        "tests/bench/test_layers.py",
        "float_layers parsing and checks on small torch models, one file for the contract's layer names",
    ),
    "bench/backend/options.py": (
        "tests/bench/test_backend.py",
        "typed options are parsed through a subclass and the built-in backends' own options",
    ),
    "bench/backend/profiling.py": (
        "tests/bench/measure/test_profile.py",
        "the Profile record is tested beside the profile stage's columns, which are made from it",
    ),
    "bench/backend/records.py": (
        "tests/bench/test_backend.py",
        "the records a backend hands back (coverage stored in an artifact's meta) through the built-in backends",
    ),
    "bench/backend/registry.py": (
        "tests/bench/test_backend.py",
        "the registry is exercised through plugins installed in a test (entry points of a dummy distribution)",
    ),
    # -- the command line: one module per command group, all reached through `main`
    "bench/cli/app.py": ("tests/bench/test_cli.py", "the parser and its dispatch, through main on every command"),
    "bench/cli/models.py": (
        "tests/bench/test_cli.py",
        "list suites/models/backends and train's usage errors through main (train --export: test_checkpoints.py)",
    ),
    "bench/cli/options.py": (
        "tests/bench/test_cli.py",
        "the shared options' value checks and environment defaults, through main and directly",
    ),
    "bench/cli/results.py": (
        "tests/bench/report/test_compare.py",
        "compare through main on hand-made run folders; merge, history and export in test_merge.py, "
        "test_history.py, test_pytest_benchmark.py and test_dashboard_export.py",
    ),
    "bench/cli/run.py": ("tests/bench/test_cli.py", "run's usage errors, resume and exit codes through main"),
    "bench/cli/tune.py": ("tests/bench/tune/test_config.py", "every tune usage error through main, before any work"),
    # -- data
    "bench/data/request.py": (
        "tests/bench/data/test_suite.py",
        "the request a suite file becomes (its config, the split names) is tested through the suites",
    ),
    "bench/data/sources.py": (
        "tests/bench/data/test_tuning_split.py",
        "the sources' registry and the calibration and tuning draws it holds",
    ),
    # -- the decision
    "bench/decide/budgets.py": (
        "tests/bench/decide/test_decision.py",
        "budgets are judged on the planted rows of the decision's tests",
    ),
    "bench/decide/render.py": (
        "tests/bench/decide/test_decision.py",
        "the decision's terminal lines and decision.json, on the same planted rows",
    ),
    "bench/decide/speed.py": (
        "tests/bench/decide/test_decision.py",
        "the per-cycle speed comparison decides the ties of the planted rows",
    ),
    # -- Grad-CAM
    "bench/gradcam/records.py": ("", NO_LOGIC + "FeatureSplit, the record a backend's graph cut hands over"),
    "bench/gradcam/split.py": (
        "tests/backends/onnxruntime/test_cut_traits.py",
        "the shared finite differences need a real graph cut: tested on the runtimes' cuts",
    ),
    # -- measurement
    "bench/measure/rate_search.py": (
        "tests/bench/measure/test_scenarios.py",
        "the search, with the load generator whose runs it steps over",
    ),
    "bench/measure/scenario_results.py": (
        "tests/bench/measure/test_scenarios.py",
        "the records, with the runs they record",
    ),
    "bench/measure/quality.py": (
        "tests/bench/results/test_columns.py",
        "quality_columns on every suite there; evaluate runs in every whole run (tests/test_end_to_end.py)",
    ),
    "bench/measure/reference_kernel.py": (
        "tests/bench/measure/test_contention.py",
        "the reference kernel is the contention check's yardstick and is tested with it",
    ),
    # -- the model zoo: each model through the registry's name
    "bench/models/deeplabv3plus_resnet18.py": (
        "tests/bench/models/test_zoo.py",
        "every zoo model is tested by name: shape, graph capture, backends, Grad-CAM layers, parameters",
    ),
    "bench/models/deeplabv3plus_mobilenetv2.py": (
        "tests/bench/models/test_zoo.py",
        "every zoo model is tested by name: shape, graph capture, backends, Grad-CAM layers, parameters",
    ),
    "bench/models/lraspp_mobilenetv3.py": (
        "tests/bench/models/test_zoo.py",
        "every zoo model is tested by name: shape, graph capture, backends, Grad-CAM layers, parameters",
    ),
    "bench/models/mobilenet.py": (
        "tests/bench/models/test_zoo.py",
        "the two mobile encoders, through the models built on them and torchvision's exact parameter counts",
    ),
    "bench/models/segformer_b0.py": (
        "tests/bench/models/test_huggingface.py",
        "built, sized, exported and exported strictly for PT2E there, beside the hf: folders it shares code with",
    ),
    "bench/run/count_cache.py": (
        "tests/bench/run/test_roofline.py",
        "the count's cache key, written and read there (another model, another ONNX file, a failure not kept)",
    ),
    "bench/models/hrnet_w18_small.py": (
        "tests/bench/models/test_zoo.py",
        "every zoo model is tested by name: shape, graph capture, backends, Grad-CAM layers, parameters",
    ),
    "bench/models/unet.py": (
        "tests/bench/models/test_zoo.py",
        "its Grad-CAM layers there; the default model, trained and run by most other tests",
    ),
    "bench/models/vgg16_unet.py": (
        "tests/bench/models/test_zoo.py",
        "every zoo model is tested by name: shape, graph capture, backends, Grad-CAM layers, parameters",
    ),
    # -- ONNX
    "bench/onnx/names.py": ("", NO_LOGIC + "the input and output tensor names every ONNX graph carries"),
    "bench/onnx/user_model.py": (
        "tests/bench/models/test_external.py",
        "a user's ONNX file is one of the bring-your-own models and is tested with them",
    ),
    # -- output
    # -- reports
    "bench/report/figures.py": (
        "tests/bench/report/test_gradcam_report.py",
        "the Grad-CAM montage and its difference panel, beside the Grad-CAM table",
    ),
    "bench/report/files.py": (
        "tests/bench/report/test_sections.py",
        "write_reports writes both reports of a run folder with every section",
    ),
    "bench/report/markdown.py": (
        "tests/bench/report/test_html.py",
        "report.md is written beside report.html from the same hand-made run folder",
    ),
    "bench/report/tables.py": (
        "tests/bench/report/test_gradcam_report.py",
        "the Grad-CAM tables there; the summary table in tests/test_terminal.py",
    ),
    # -- results
    "bench/results/counterparts.py": (
        "tests/bench/test_backend.py",
        "float counterparts come from the backends' declarations, plugins included",
    ),
    # -- running
    "bench/run/artifacts.py": (
        "tests/bench/test_cache.py",
        "the artifact cache key and what it covers, with the other cache keys",
    ),
    "bench/run/cell.py": (
        "tests/bench/run/test_rounds.py",
        "a measuring cell's interleaved rounds and the group's timing, with stand-in workers",
    ),
    "bench/run/runner.py": (
        "tests/bench/run/test_runner_summaries.py",
        "its end-of-run summaries there; run_benchmark in the whole-run tests (tests/test_*.py)",
    ),
    # -- training and tuning
    "bench/training/recipes.py": (
        "tests/bench/training/test_trainer.py",
        "the recipes are checked with the training loop they configure",
    ),
    "bench/tune/runner.py": (
        "tests/bench/tune/test_across.py",
        "run_tune, the order of a tune's stages, stood in for per backend; whole tunes in tests/test_tune.py",
    ),
    # -- ONNX graphs shared by three runtimes
    "backends/torch/profile_layers.py": (
        "tests/backends/torch/test_profile.py",
        "the compiled runtimes' layer lookups, tested on real profiles of the pass they attribute",
    ),
    "backends/onnx/export.py": (
        "tests/bench/models/test_zoo.py",
        "every zoo model's export: a dynamic batch, and the Grad-CAM layers named in the graph",
    ),
    "backends/onnx/layers.py": (
        "tests/backends/onnxruntime/test_profile.py",
        "the weighted nodes name the layers ONNX Runtime's profile is attributed to",
    ),
    "backends/onnx/node_layers.py": (
        "tests/backends/tensorrt/test_profile.py",
        "node -> layer maps of the graphs TensorRT is given, with its profile's layer names",
    ),
    # -- runtimes
    "backends/onnxruntime/session.py": (
        "tests/backends/onnxruntime/test_profile.py",
        "the session and its options, through its profiled pass",
    ),
    "backends/openvino/quantize.py": (
        "tests/backends/openvino/test_accuracy_control.py",
        "NNCF quantization, with and without accuracy control",
    ),
    "backends/openvino/runtime.py": (
        "tests/backends/openvino/test_profile.py",
        "reading ONNX, saving the IR and the compiled session, through its profiled pass",
    ),
}


# ---------------------------------------------------------------- the layout


def mirror(module: str) -> str:
    """The test file of a module: `bench/run/cell.py` -> `tests/bench/run/test_cell.py`."""
    path = Path(module)
    return (Path("tests") / path.parent / f"test_{path.name}").as_posix()


def dotted(module: str) -> str:
    return ".".join(Path(module).with_suffix("").parts)


def modules_of(paths: Iterable[str]) -> list[str]:
    """The package modules among repository paths (packages' faces and entry points left out)."""
    return sorted(
        p for p in paths if p.endswith(".py") and p.split("/")[0] in PACKAGES and Path(p).name not in NOT_MODULES
    )


def unaccounted(paths: set[str], elsewhere: Mapping[str, tuple[str, str]]) -> list[str]:
    """Modules with neither a mirror test file nor an entry in `elsewhere`."""
    return [m for m in modules_of(paths) if mirror(m) not in paths and m not in elsewhere]


def stale(paths: set[str], elsewhere: Mapping[str, tuple[str, str]]) -> list[str]:
    """Entries that no longer belong: the module is gone, or it has its mirror now."""
    found = []
    for module in sorted(elsewhere):
        if module not in modules_of(paths):
            found.append(f"{module}: no such module")
        elif mirror(module) in paths:
            found.append(f"{module}: has its own {mirror(module)}")
    return found


# ---------------------------------------------------------------- what a test names


def defined_names(source: str) -> set[str]:
    """The top-level names a module defines (functions, classes, assignments)."""
    names: set[str] = set()
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def registered_labels(source: str) -> set[str]:
    """What a module registers under a name a user types: the commands it adds (`sub.add_parser("list")`)
    and the names its top-level decorators give (`@register_model("unet")`)."""
    tree = ast.parse(source)
    decorators = [
        d
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        for d in node.decorator_list
        if isinstance(d, ast.Call)
    ]
    parsers = [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "add_parser"
    ]
    return {
        call.args[0].value
        for call in (*decorators, *parsers)
        if call.args and isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str)
    }


def names_module(test_source: str, module: str, module_source: str) -> bool:
    """Whether a test names the module: its dotted name; the module imported from its package (`from
    bench.tune import runner`); a name it defines imported from it or from a package face above it (`from
    bench.backend import Session`); or a command or registered name it adds, as a string (`main(["list"])`)."""
    name = dotted(module)
    if re.search(re.escape(name) + r"(?![\w])", test_source):
        return True
    defined, labels = defined_names(module_source), registered_labels(module_source)
    for node in ast.walk(ast.parse(test_source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                if f"{node.module}.{alias.name}" == name:
                    return True
                if name.startswith(node.module + ".") and alias.name in defined:
                    return True
        elif isinstance(node, ast.Constant) and node.value in labels:
            return True
    return False


def logic(source: str) -> list[str]:
    """What a module runs: its functions and the methods of its classes (a record's fields are not logic)."""
    found = []
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            found.append(node.name)
        elif isinstance(node, ast.ClassDef):
            methods = [n.name for n in node.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
            found += [f"{node.name}.{method}" for method in methods]
    return found


def unfounded(sources: Mapping[str, str], elsewhere: Mapping[str, tuple[str, str]]) -> list[str]:
    """Entries whose test file is missing or does not name the module, whose reason says nothing, or that
    say a module holds no logic when it has functions or methods."""
    found = []
    for module, (test, reason) in sorted(elsewhere.items()):
        if not reason.strip():
            found.append(f"{module}: no reason given")
        elif not test:
            if not reason.startswith(NO_LOGIC):
                found.append(f"{module}: no test file, and the reason does not start with '{NO_LOGIC}'")
            elif module in sources and (runs := logic(sources[module])):
                found.append(f"{module}: said to hold no logic, but runs {', '.join(runs)}")
        elif test not in sources:
            found.append(f"{module}: {test} does not exist")
        elif module in sources and not names_module(sources[test], module, sources[module]):
            found.append(f"{module}: {test} never names it")
    return found


def repository() -> dict[str, str]:
    """Every Python file of the packages and the tests, by its path from the repository root."""
    return {
        path.relative_to(ROOT).as_posix(): path.read_text(encoding="utf-8")
        for folder in (*PACKAGES, "tests")
        for path in (ROOT / folder).rglob("*.py")
    }


# ---------------------------------------------------------------- the checks


def test_every_module_has_its_mirror_test_file_or_an_entry():
    assert unaccounted(set(repository()), TESTED_ELSEWHERE) == []


def test_every_entry_names_a_module_that_exists_and_has_no_mirror():
    assert stale(set(repository()), TESTED_ELSEWHERE) == []


def test_every_named_test_file_exists_and_names_its_module():
    assert unfounded(repository(), TESTED_ELSEWHERE) == []


def test_the_mirror_of_a_module():
    assert mirror("bench/backend/registry.py") == "tests/bench/backend/test_registry.py"
    assert mirror("backends/onnx/export.py") == "tests/backends/onnx/test_export.py"
    assert mirror("bench/errors.py") == "tests/bench/test_errors.py"
    assert dotted("bench/backend/registry.py") == "bench.backend.registry"


def test_the_checks_fail_on_a_made_up_layout():
    """Each check can fail: a module with no test and no entry, entries for a module that is gone and for
    one that has its mirror, a test file that does not exist, one that never names its module, a module
    without a test file whose reason is not "no logic", and one said to hold no logic that has a method."""
    sources = {
        "bench/__init__.py": "",
        "bench/a/__init__.py": "from bench.a.face import shown\n",
        "bench/a/mirrored.py": "def f(): ...\n",
        "bench/a/untested.py": "def g(): ...\n",
        "bench/a/face.py": "def shown(): ...\n",
        "bench/a/cli.py": "def add(sub):\n    sub.add_parser('list')\n",
        "bench/a/listed.py": "X = 1\n",
        "bench/a/constants.py": "Y = 2\n",
        "bench/a/record.py": "@dataclass\nclass R:\n    x: int\n    def f(self): ...\n",
        "bench/__main__.py": "",
        "tests/bench/a/test_mirrored.py": "from bench.a.mirrored import f\n",
        "tests/bench/a/test_other.py": "from bench.a import shown\nmain(['list'])\n",
        "tests/bench/a/test_unrelated.py": "import os\n",
    }
    elsewhere = {
        "bench/a/face.py": ("tests/bench/a/test_other.py", "through its package's face"),
        "bench/a/cli.py": ("tests/bench/a/test_other.py", "its command through main"),
        "bench/a/listed.py": ("tests/bench/a/test_unrelated.py", "said to be tested there"),
        "bench/a/constants.py": ("", "only a constant"),
        "bench/a/record.py": ("", "no logic: a record"),
        "bench/a/mirrored.py": ("tests/bench/a/test_mirrored.py", "listed though mirrored"),
        "bench/a/gone.py": ("tests/bench/a/test_gone.py", "the module was removed"),
    }
    paths = set(sources)
    assert modules_of(paths) == [
        "bench/a/cli.py",
        "bench/a/constants.py",
        "bench/a/face.py",
        "bench/a/listed.py",
        "bench/a/mirrored.py",
        "bench/a/record.py",
        "bench/a/untested.py",
    ]
    assert unaccounted(paths, elsewhere) == ["bench/a/untested.py"]
    assert stale(paths, elsewhere) == [
        "bench/a/gone.py: no such module",
        "bench/a/mirrored.py: has its own tests/bench/a/test_mirrored.py",
    ]
    assert unfounded(sources, elsewhere) == [
        "bench/a/constants.py: no test file, and the reason does not start with 'no logic: '",
        "bench/a/gone.py: tests/bench/a/test_gone.py does not exist",
        "bench/a/listed.py: tests/bench/a/test_unrelated.py never names it",
        "bench/a/record.py: said to hold no logic, but runs R.f",
    ]
    assert logic("X = 1\n@dataclass\nclass R:\n    x: int = 0\n") == []


def test_a_test_names_its_module_by_dotted_name_import_face_or_label():
    module = "def register(name):\n    ...\n@register('tiny-net')\ndef tiny(): ...\nclass Shown: ...\n"
    path = "bench/zoo/tiny.py"
    assert names_module("x = 'bench.zoo.tiny'\n", path, module)
    assert names_module("from bench.zoo import tiny\n", path, module)
    assert names_module("from bench.zoo import Shown\n", path, module)  # a package face above it
    assert names_module("create('tiny-net')\n", path, module)  # the name it registers
    assert not names_module("x = 'bench.zoo.tiny_other'\n", path, module)  # a longer name is another module
    assert not names_module("from bench.other import Shown\n", path, module)  # not its package
    assert not names_module("Shown = 1\ncreate('tiny')\n", path, module)
