"""What every run report shows about what the model looks at.

- ``<split>_gradcam_mistakes.png``: Grad-CAM of the most confidently wrong images, for the
  class the model (wrongly) chose: what misled it.
- ``<split>_gradcam_correct.png``: Grad-CAM of one correctly classified image per class (the
  most confident one), for that class: what it relies on when right.
- ``<split>_embedding.png``: the images' penultimate features in 2-D, coloured by true class,
  mistakes ringed (see :mod:`cnnlab.explain.embedding`).

Each gallery is one mosaic drawn on a single axes: a figure with one axes per image costs
seconds; this costs one ``savefig``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

MAX_CORRECT = 20  # classes shown in the "correct" gallery (one image each); more are left out
TILE = 96  # px per gallery image (32-px inputs are upscaled so the heatmap is readable)
_CAPTION = 30  # px of white above each tile for its two caption lines
_CAPTION_PT, _TITLE_PT = 6, 9  # font sizes of the captions and the title
_TITLE_LINE_IN = 0.15  # inches per title line (and one more for the gap above the mosaic)


def correct_rows(y: np.ndarray, probs: np.ndarray, limit: int = MAX_CORRECT) -> list[int]:
    """Per class (in label order, up to ``limit`` classes), its most confident correct image."""
    pred = probs.argmax(axis=1)
    rows = []
    for k in range(probs.shape[1]):
        hits = np.flatnonzero((y == k) & (pred == k))
        if hits.size:
            rows.append(int(hits[np.argmax(probs[hits, k])]))
        if len(rows) == limit:
            break
    return rows


def _tiles(images: np.ndarray, cams: np.ndarray) -> np.ndarray:
    from cnnlab.explain.cam import overlay

    return np.stack([overlay(img, cam, TILE) for img, cam in zip(images, cams, strict=True)])


def plot_cam_gallery(
    images: np.ndarray, cams: np.ndarray, captions: Sequence[str], path: str | Path, title: str
) -> Path:
    """Overlays ``(N, H, W, C)`` + maps in a grid with a caption above each tile, one PNG.

    Each caption line is shortened in the middle to the tile's width as drawn (both ends of a
    class name kept). The figure is at least as wide as its title, which wraps after its colon
    when one line would be wider than the mosaic (one to three tiles).
    """
    from cnnlab.evaluation.figure import fit_labels, new_figure, save_png, style, widest_in

    tiles = _tiles(images, cams)
    n = len(tiles)
    cols = min(n, 6)
    rows = -(-n // cols)
    cell_h, cell_w = TILE + _CAPTION, TILE + 6
    canvas = np.full((rows * cell_h, cols * cell_w, 3), 255, dtype=np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, cols)
        canvas[r * cell_h + _CAPTION : (r + 1) * cell_h, c * cell_w : c * cell_w + TILE] = tile
    dpi, scale, pad_in = 100, 1.6, 0.1  # margins, inches
    width, height = canvas.shape[1] / dpi * scale, canvas.shape[0] / dpi * scale
    with style():
        # fixed geometry: the mosaic's and the title's sizes are known, so no layout engine
        fig = new_figure(width, height)
        lines = _title_lines(fig, title, width)
        fig_w = max(width, widest_in(fig, lines, _TITLE_PT) + pad_in) + 2 * pad_in
        fig_h = height + _TITLE_LINE_IN * (len(lines) + 1) + pad_in
        fig.set_size_inches(fig_w, fig_h)
        ax = fig.add_axes(((fig_w - width) / 2 / fig_w, pad_in / fig_h, width / fig_w,
                           height / fig_h))  # fmt: skip
        ax.imshow(canvas, interpolation="nearest", aspect="auto")
        ax.axis("off")
        parts = [caption.split("\n") for caption in captions]
        room = (cell_w - 3) / dpi * scale  # inches a caption line may take
        fitted = fit_labels(fig, [line for part in parts for line in part], room, _CAPTION_PT)
        for i, part in enumerate(parts):
            r, c = divmod(i, cols)
            text = "\n".join(fitted[line] for line in part)
            ax.text(c * cell_w, r * cell_h + _CAPTION - 3, text, fontsize=_CAPTION_PT, va="bottom")
        ax.set_title("\n".join(lines), fontsize=_TITLE_PT, y=1.0)
        return save_png(fig, path, dpi=dpi)


def _title_lines(fig: Any, title: str, width_in: float) -> list[str]:
    """The title on one line, or broken after its first colon when wider than ``width_in``."""
    from cnnlab.evaluation.figure import widest_in

    head, colon, tail = title.partition(": ")
    if not colon or widest_in(fig, [title], _TITLE_PT) <= width_in:
        return [title]
    return [head + ":", tail]


PlotCall = tuple[Callable[..., Path], tuple[Any, ...]]


def report_plots(
    predictor: Any,
    images_u8: torch.Tensor,
    y: np.ndarray,
    probs: np.ndarray,
    out_dir: Path,
    prefix: str,
    mistakes: Sequence[int],
    embedding: str = "pca",
    feats: Any = None,
) -> list[PlotCall]:
    """The report's Grad-CAM galleries and embedding for one split, as plot calls to draw.

    The model work (CAMs, features) happens here; what is returned is pure drawing (plus the
    2-D projection), so the caller can draw it with the run's other plots, in any process.

    Args:
        predictor: the run's :class:`~cnnlab.predict.Predictor` (torch backend).
        images_u8: the split's uint8 images ``(N, C, resize, resize)``.
        y: true labels ``(N,)``; probs: the final model's probabilities ``(N, K)``.
        out_dir: the run's plots folder; prefix: the split name.
        mistakes: rows of the worst mistakes, most confident first (from the evaluation).
        embedding: ``pca``, ``tsne`` or ``none`` (no embedding plot).
        feats: the split's backbone features if the caller has them (the evaluation pass
            kept them); None: computed here.
    """
    from cnnlab.evaluation.figure import warn_undrawable
    from cnnlab.explain.cam import Explainer
    from cnnlab.explain.embedding import features, plot_embedding

    classes, pred = predictor.classes, probs.argmax(axis=1)
    warn_undrawable(classes)
    ex = Explainer(predictor, method="gradcam")
    calls: list[PlotCall] = []
    for kind, rows in (("mistakes", list(mistakes)), ("correct", correct_rows(y, probs))):
        if not rows:
            continue
        maps, _ = ex.cams(images_u8[rows], targets=[int(pred[i]) for i in rows])
        # full names: plot_cam_gallery shortens them to the width they are drawn at
        captions = [
            f"true {classes[y[i]]}\npred {classes[pred[i]]} {probs[i, pred[i]]:.2f}" for i in rows
        ]
        what = "most confident mistakes" if kind == "mistakes" else "one correct image per class"
        title = f"Grad-CAM ({ex.layer}) of the predicted class: {what}"
        path = out_dir / f"{prefix}_gradcam_{kind}.png"
        calls.append(
            (plot_cam_gallery, (ex.model_pixels(images_u8[rows]), maps, captions, path, title))
        )
    if embedding != "none":
        path = out_dir / f"{prefix}_embedding.png"
        if feats is None:
            feats = features(predictor, images_u8)
        else:
            feats = np.asarray(feats, dtype=np.float64)
        calls.append((plot_embedding, (feats, y, pred, classes, path, embedding)))
    return calls


def report_figures(*args: Any, **kwargs: Any) -> dict[str, Path]:
    """:func:`report_plots`, drawn here and now; returns name -> PNG."""
    return {(p := fn(*a)).stem: p for fn, a in report_plots(*args, **kwargs)}
