"""PyTorch: eager fp32/bf16 (`eager`), FX int8 (`fx_int8`), torchao's PT2E int8 (`pt2e_int8`), with what they
need of their own: torch.profiler attribution (`profile`), the FX and PT2E Grad-CAM cuts (`fx_cut`, `pt2e_cut`),
the fake-quant simulations (`fakequant`, `fx_fakequant`) and the numeric-suite SQNR probes (`layer_sqnr`)."""
