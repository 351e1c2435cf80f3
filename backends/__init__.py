"""Every runtime segbench ships, one folder each, registered under the `segbench.backends` entry-point group:
`torch/` (eager, FX int8, PT2E int8), `onnxruntime/` (fp32, QDQ int8), `openvino/` (fp32, NNCF int8),
`tensorrt/` (fp16, int8), and `onnx/`, the ONNX export and graph reading the last three share."""
