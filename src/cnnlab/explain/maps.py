"""What a layer computes: one image's feature maps, and the first convolution's filters.

Both are drawn as grids of small panels (matplotlib, through the report plots' figure
helpers). Feature maps show the first ``max_maps`` channels of a layer's output for one image,
each scaled to its own range, so a channel that fires weakly is still visible; the panel
titles carry the channel index and its maximum so scales can be compared.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

from cnnlab.errors import ModelError

MAX_MAPS = 64  # feature-map panels drawn per image (wide layers have hundreds of channels)


def layer_output(model: nn.Module, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The output of ``module`` when ``model`` runs on the normalised batch ``x``."""
    captured: list[torch.Tensor] = []
    handle = module.register_forward_hook(lambda _m, _i, out: captured.append(out.detach()))
    try:
        with torch.no_grad():
            model(x)
    finally:
        handle.remove()
    if not captured:
        raise ModelError("the layer did not run in the forward pass; pick another (--layers)")
    return captured[-1].float().cpu()


def first_conv(model: nn.Module) -> tuple[str, nn.Conv2d]:
    """The first ``Conv2d`` in registration order (the one that looks at pixels)."""
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            return name, module
    raise ModelError("this model has no Conv2d layer, so there are no filters to show")


def _scaled(x: np.ndarray) -> np.ndarray:
    """Each panel to 0..1 on its own range (a flat panel becomes 0)."""
    axes = tuple(range(1, x.ndim))
    lo, hi = x.min(axis=axes, keepdims=True), x.max(axis=axes, keepdims=True)
    return np.where(hi > lo, (x - lo) / np.where(hi > lo, hi - lo, 1.0), 0.0)


def mosaic(panels: np.ndarray, gap: int = 1) -> np.ndarray:
    """Tile ``(N, H, W[, 3])`` panels row-major into one image, ``gap`` px of NaN between.

    One image drawn once is far cheaper than a figure with one axes per panel (64 panels:
    seconds with subplots).
    """
    n, h, w = panels.shape[:3]
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    out = np.full((rows * (h + gap) - gap, cols * (w + gap) - gap, *panels.shape[3:]), np.nan)
    for i, panel in enumerate(panels):
        r, c = divmod(i, cols)
        out[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = panel
    return out


def _plot_mosaic(grid: np.ndarray, path: str | Path, title: str, cmap: str | None) -> Path:
    from cnnlab.evaluation.figure import new_figure, save_png, style

    side = 6.0 * grid.shape[1] / max(grid.shape)  # inches: the longer side 6 in
    with style():
        fig = new_figure(
            max(side, 3.0), 6.0 * grid.shape[0] / max(grid.shape) + 0.4, layout="constrained"
        )
        ax = fig.subplots()
        ax.axis("off")
        shown = np.nan_to_num(grid, nan=1.0) if grid.ndim == 3 else grid
        ax.imshow(shown, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(title, fontsize=9)
        return save_png(fig, path, tight=True)


def plot_feature_maps(acts: np.ndarray, path: str | Path, title: str) -> Path:
    """The first :data:`MAX_MAPS` channels of one ``(C, H, W)`` activation, row-major."""
    shown = acts[:MAX_MAPS]
    more = f", first {len(shown)} of {len(acts)}" if len(acts) > len(shown) else ""
    label = f"{title}\n{len(shown)} channels{more}, row by row, each scaled to its own range"
    return _plot_mosaic(mosaic(_scaled(shown)), path, label, "viridis")


def plot_filters(weight: torch.Tensor, path: str | Path, title: str) -> Path:
    """The filters ``(out, in, k, k)`` of a convolution, one panel each.

    Three input channels are drawn as RGB (each filter scaled to its own range); any other
    count is drawn as the mean over input channels in grey.
    """
    w = weight.detach().float().cpu().numpy()
    panels = w.transpose(0, 2, 3, 1) if w.shape[1] == 3 else w.mean(axis=1)
    k = w.shape[-1]
    label = f"{title}: {w.shape[0]} filters, {k}x{k}, {w.shape[1]} input channels"
    return _plot_mosaic(mosaic(_scaled(panels)), path, label, None if panels.ndim == 4 else "gray")
