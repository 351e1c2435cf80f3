"""Measurement: latency (host and device timers), memory, and segmentation quality with its drift
from the fp32 reference (MATLAB-style metrics, boundary F1, SQNR)."""
