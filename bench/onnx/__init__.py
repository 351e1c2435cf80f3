"""A user's own ONNX file (`--onnx`), checked and normalized once per run, and the tensor names every
ONNX graph segbench makes or imports carries; nothing here runs a model."""
