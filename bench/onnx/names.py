"""The tensor names of every ONNX graph segbench exports or imports: the runner hands a user's file
(`bench.onnx.user_model`) to the same backends as its own exports, so both must agree on them."""

INPUT_NAME = "input"
OUTPUT_NAME = "logits"
