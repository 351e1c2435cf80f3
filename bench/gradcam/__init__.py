"""Grad-CAM for segmentation, runtime-free: the method (`method`: class scores, autograd, finite differences),
the records a backend answers with (`records`), the divergence from the fp32 maps (`divergence`), the shared
finite-difference code a runtime's graph cut fills in (`split`, `cut_splitter`; the cuts themselves live with
their runtime under `backends/`), and one artifact's whole explanation (`explain`)."""
