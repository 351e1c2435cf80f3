"""ONNX Runtime: fp32 (`fp32`) and QDQ int8 (`qdq_int8`) sessions, quantization, which nodes run in int8 after
its own fusions (`coverage`), its profiler (`profile`), the Grad-CAM graph cut and fake-quant simulation
(`graph_cut`, `gradcam_cut`, `fakequant`) and qdq_loss_debug's SQNR probe (`layer_sqnr`)."""
