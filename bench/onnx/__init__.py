"""ONNX: export and a user's own file, ONNX Runtime quantization and sessions, which nodes run in int8
(both runtimes' rules), graph indexes, and the graphs TensorRT is given."""
