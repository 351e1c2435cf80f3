"""The ONNX graph three runtimes start from (ONNX Runtime, OpenVINO, TensorRT): the export with embedded
weights and layer names (`export`), graph indexes (`graph`), weighted nodes and their layers (`layers`)."""
