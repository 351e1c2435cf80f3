"""Grad-CAM for segmentation: the method (`method`: class scores, autograd, finite differences), the
records a backend answers with (`records`), the divergence from the fp32 maps (`divergence`), one
module per runtime that can be cut at a layer (`onnx_cut`, `fx_cut`, `pt2e_cut`, `openvino_cut`) or
simulated (`fakequant`), and one artifact's whole explanation (`explain`)."""
