"""OpenVINO: the IR built from segbench's ONNX graph, compiled sessions (`runtime`), NNCF quantization and
accuracy control, which layers the compiled model really runs in int8 (`coverage`), PERF_COUNT profiles
(`profile`) and the Grad-CAM cut of the compiled graph (`gradcam_cut`); the backends in `backend`."""
