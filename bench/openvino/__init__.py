"""OpenVINO: the IR built from segbench's ONNX graph, compiled sessions, NNCF quantization, and which
layers the compiled model really runs in int8."""
