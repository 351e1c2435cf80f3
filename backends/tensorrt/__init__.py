"""TensorRT: fp16 and int8 engines built from the ONNX graph (`backend`), and the explicit-precision graphs
it is given (`graph`: QDQ from ONNX Runtime's quantizer, fp16)."""
