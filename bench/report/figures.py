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


ZERO_MAP = "all-zero map:\nno shape to compare"  # written on a map panel whose map is zero everywhere


def _zero(cam: np.ndarray) -> bool:
    return not np.any(cam)


def montage_title(
    cell: str,
    layer: str | None,
    method: str | None,
    pearson: float,
    top10_iou: float,
    reference_maps: np.ndarray,
    backend_maps: np.ndarray,
    backend_label: str,
    floor: float | None = None,
    status: str = "ok",
) -> str:
    """The montage's title: the divergence, or why there is none. A pair of maps where either is zero
    everywhere has no Pearson (`bench.gradcam.divergence`), so a NaN mean is said in words, with how many
    maps were all zero on each side, and the row's Grad-CAM status when it is not ok."""
    size = reference_maps.shape[-2:]
    pairs = list(zip(reference_maps.reshape(-1, *size), backend_maps.reshape(-1, *size)))
    zero_fp32 = sum(_zero(r) for r, _ in pairs)
    zero_backend = sum(_zero(b) for _, b in pairs)
    left_out = sum(_zero(r) or _zero(b) for r, b in pairs)
    zeros = f"fp32 {zero_fp32} of {len(pairs)}, {backend_label} {zero_backend} of {len(pairs)}"
    if not np.isfinite(pearson):
        scores = (
            f"Pearson undefined: every (image, class) pair has an all-zero map ({zeros})"
            if left_out == len(pairs)
            else f"Pearson undefined (all-zero maps: {zeros})"
        )
    else:
        over = f" over {len(pairs) - left_out} of {len(pairs)} pairs (left out, an all-zero map: {zeros})"
        scores = f"Pearson {pearson:.3f}, top-10% IoU {top10_iou:.3f}" + (over if left_out else "")
    return (
        f"{cell}: Grad-CAM at {layer} ({method}); {scores}"
        + (f"; method floor {floor:.3f}" if floor is not None and np.isfinite(floor) else "")
        + ("" if status == "ok" else f"; {status}")
    )


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
    A map that is zero everywhere says so on its panel (`ZERO_MAP`): it has no shape, and its pair no
    Pearson, rather than a dark panel with nothing to read.
    """
    n, k = reference_maps.shape[:2]
    cols = 2 + 3 * k
    fig = Figure(figsize=(1.9 * cols, 1.9 * n + 0.6))
    FigureCanvasAgg(fig)
    axes = fig.subplots(n, cols, squeeze=False)
    for i in range(n):
        panels: list[tuple[np.ndarray, str, str | None, float, str]] = [
            (_display_image(images[i]), "image", "gray", 0.0, ""),
            (overlay(images[i], labels[i], colors), f"{backend_label} segmentation", None, 0.0, ""),
        ]
        for c in range(k):
            scale = float(np.max(reference_maps[i, c])) or 1.0
            difference = (backend_maps[i, c].astype(np.float64) - reference_maps[i, c]).astype(np.float32)
            ref_zero, backend_zero = _zero(reference_maps[i, c]), _zero(backend_maps[i, c])
            panels += [
                (
                    normalize_for_display(reference_maps[i, c]),
                    f"fp32 {class_names[c]}",
                    "jet",
                    1.0,
                    ZERO_MAP if ref_zero else "",
                ),
                (
                    normalize_for_display(backend_maps[i, c]),
                    f"{backend_label} {class_names[c]}",
                    "jet",
                    1.0,
                    ZERO_MAP if backend_zero else "",
                ),
                (
                    difference,
                    f"difference {class_names[c]} (±fp32 max)",
                    "RdBu_r",
                    scale,
                    "Pearson undefined:\nan all-zero map" if ref_zero or backend_zero else "",
                ),
            ]
        for ax, (data, name, cmap, limit, why) in zip(axes[i], panels):
            if cmap == "jet":
                ax.imshow(_display_image(images[i]), cmap="gray")
                ax.imshow(data, cmap=cmap, alpha=0.5, vmin=0, vmax=limit)
            elif cmap == "RdBu_r":
                ax.imshow(data, cmap=cmap, vmin=-limit, vmax=limit)
            else:
                ax.imshow(data, cmap=cmap)
            ax.set_xticks([])
            ax.set_yticks([])
            if why:
                ax.text(
                    0.5,
                    0.5,
                    why,
                    transform=ax.transAxes,
                    ha="center",
                    va="center",
                    fontsize=7,
                    bbox={"boxstyle": "round,pad=0.3", "fc": "white", "ec": "none", "alpha": 0.85},
                )
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
