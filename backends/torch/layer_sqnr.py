"""Each layer's output SQNR in torch's int8 models against the float model: the cheap sensitivity proxy
of `segbench tune` (one pass over a few images, against one quantize-and-evaluate per layer for the measured
sensitivity).

Computed by torch's own numeric debugging tools, so the matching of float and int8 tensors is theirs, not
ours: torch.ao's FX numeric suite (`add_loggers`, `extract_logger_info`, `compute_sqnr`) and torchao's
PT2E numeric debugger (`generate_numeric_debug_handle`, `prepare_for_propagation_comparison`,
`compare_results`). Results are keyed by module path (`bench.backend.layers`); a layer the tool could not
match is absent, not zero.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from bench.measure.drift import finite_sqnr

if TYPE_CHECKING:
    import torch


def fx_layer_sqnr(
    observed: torch.fx.GraphModule, converted: torch.fx.GraphModule, images: np.ndarray
) -> dict[str, float]:
    """SQNR (dB) per module path of each matched subgraph's output, averaged over `images` in the
    signal and noise powers (not in dB)."""
    import copy

    import torch
    from torch.ao.ns._numeric_suite_fx import (
        OutputLogger,
        add_loggers,
        extend_logger_results_with_comparison,
        extract_logger_info,
    )
    from torch.ao.ns.fx.utils import compute_sqnr

    float_logged, int8_logged = add_loggers("fp32", copy.deepcopy(observed), "int8", converted, OutputLogger)
    batch = torch.from_numpy(np.ascontiguousarray(images, np.float32))
    with torch.no_grad():
        for i in range(len(batch)):
            float_logged(batch[i : i + 1])
            int8_logged(batch[i : i + 1])
    results = extract_logger_info(float_logged, int8_logged, OutputLogger, "int8")
    extend_logger_results_with_comparison(results, "fp32", "int8", compute_sqnr, "sqnr")
    found: dict[str, float] = {}
    for entry in results.values():
        for per_type in entry.values():
            for output in per_type.get("int8", []):
                fqn = output.get("fqn")
                values = [float(v) for v in output.get("sqnr", [])]
                if fqn and values:
                    found[str(fqn)] = float(10 * np.log10(np.mean(10 ** (np.asarray(values) / 10))))
    return finite_sqnr(found)


def pt2e_layer_sqnr(
    captured: torch.fx.GraphModule, converted: torch.fx.GraphModule, images: np.ndarray, layers: set[str]
) -> dict[str, float]:
    """SQNR (dB) per module path in `layers`, torchao's PT2E numeric debugger: loggers on the exported
    float graph and on the converted graph, matched by each node's source, `compare_results` per node.
    A module with several matched nodes (a conv and the ops fused after it) reports its last one."""
    import torch
    from torchao.quantization.pt2e import compare_results, extract_results_from_loggers
    from torchao.quantization.pt2e._numeric_debugger import prepare_for_propagation_comparison

    float_logged = prepare_for_propagation_comparison(captured)
    int8_logged = prepare_for_propagation_comparison(converted)
    batch = torch.from_numpy(np.ascontiguousarray(images, np.float32))
    with torch.no_grad():
        for i in range(len(batch)):
            float_logged(batch[i : i + 1])
            int8_logged(batch[i : i + 1])
    summaries = compare_results(extract_results_from_loggers(float_logged), extract_results_from_loggers(int8_logged))
    found: dict[str, float] = {}
    for summary in summaries.values():
        module = summary.ref_module_stack
        if module in layers and summary.results:
            signal = [float(r.sqnr) for r in summary.results]
            found[module] = float(10 * np.log10(np.mean(10 ** (np.asarray(signal) / 10))))
    return finite_sqnr(found)
