"""Figure files in the run folder: Grad-CAM montages per backend and the per-image Dice box chart.

The montage follows the published MATLAB workflow: for each explained image, the test image, the
backend's segmentation overlaid on it, then per Grad-CAM class the fp32 model's map beside the
backend's map. Maps are stored unnormalized; here each is scaled to its own maximum, for display only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DPI = 100


def _display_image(image: np.ndarray) -> np.ndarray:
    """(C, H, W) in [0, 1] -> something imshow draws: grey for one channel, RGB for three."""
    image = np.clip(image, 0.0, 1.0)
    return image[0] if image.shape[0] == 1 else np.moveaxis(image[:3], 0, -1)


def overlay(
    image: np.ndarray, labels: np.ndarray, colors: tuple[tuple[int, int, int], ...], alpha: float = 0.45
) -> np.ndarray:
    """RGB (H, W, 3) of the image with each label's colour blended in (label 0 left clear when it is
    black, the usual background colour); labels outside the colour table stay clear (void)."""
    base = _display_image(image)
    rgb = np.repeat(base[..., None], 3, axis=-1) if base.ndim == 2 else base.copy()
    table = np.asarray(colors, np.float64) / 255.0
    for label, color in enumerate(table):
        mask = labels == label
        if not color.any() or not mask.any():
            continue
        rgb[mask] = (1 - alpha) * rgb[mask] + alpha * color
    return rgb


def normalize_for_display(cam: np.ndarray) -> np.ndarray:
    peak = float(np.max(cam)) if cam.size else 0.0
    return cam / peak if peak > 0 else np.zeros_like(cam)


def gradcam_montage(
    images: np.ndarray,
    labels: np.ndarray,
    reference_maps: np.ndarray,
    backend_maps: np.ndarray,
    class_names: list[str],
    colors: tuple[tuple[int, int, int], ...],
    title: str,
    backend_label: str,
) -> Figure:
    """Rows: images. Columns: image, overlay, then (fp32 map, backend map, difference) per class.

    `images` (N, C, H, W) in [0, 1]; `labels` (N, H, W) the backend's predictions; maps (N, K, H, W).
    The difference panel is backend minus fp32 on a diverging colour map, from -m to +m where m is the
    fp32 map's own maximum for that image and class: the fp32 maps are shared by every backend of a
    model, so every backend's difference is drawn on the same scale and the panels can be compared.
    """
    n, k = reference_maps.shape[:2]
    cols = 2 + 3 * k
    fig = Figure(figsize=(1.9 * cols, 1.9 * n + 0.6))
    FigureCanvasAgg(fig)
    axes = fig.subplots(n, cols, squeeze=False)
    for i in range(n):
        panels: list[tuple[np.ndarray, str, str | None, float]] = [
            (_display_image(images[i]), "image", "gray", 0.0),
            (overlay(images[i], labels[i], colors), f"{backend_label} segmentation", None, 0.0),
        ]
        for c in range(k):
            scale = float(np.max(reference_maps[i, c])) or 1.0
            difference = (backend_maps[i, c].astype(np.float64) - reference_maps[i, c]).astype(np.float32)
            panels.append((normalize_for_display(reference_maps[i, c]), f"fp32 {class_names[c]}", "jet", 1.0))
            panels.append((normalize_for_display(backend_maps[i, c]), f"{backend_label} {class_names[c]}", "jet", 1.0))
            panels.append((difference, f"difference {class_names[c]} (±fp32 max)", "RdBu_r", scale))
        for ax, (data, name, cmap, limit) in zip(axes[i], panels):
            if cmap == "jet":
                ax.imshow(_display_image(images[i]), cmap="gray")
                ax.imshow(data, cmap=cmap, alpha=0.5, vmin=0, vmax=limit)
            elif cmap == "RdBu_r":
                ax.imshow(data, cmap=cmap, vmin=-limit, vmax=limit)
            else:
                ax.imshow(data, cmap=cmap)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(name, fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def save_figure(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    return path


def figure_name(*parts: str) -> str:
    """A file-system-safe name from a cell's identity (external model specs contain ':' and '.')."""
    return "_".join("".join(ch if ch.isalnum() or ch in "-" else "-" for ch in part) for part in parts)
