"""Static PNG plots for reports: learning curves, confusion matrix, per-class F1, calibration,
and a gallery of the worst mistakes.

Built with :mod:`cnnlab.evaluation.figure` (fonts with fallback for any Unicode class name,
fixed geometry, fast PNG output). A run draws nine of these, so each uses the fewest artists
that show its numbers: the gallery, for one, is a single composed image rather than a grid of
axes, which alone cost more than all other plots together (issue 11).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.evaluation.figure import (
    fit_labels,
    new_figure,
    save_png,
    short_labels,
    style,
    warn_undrawable,
    widest_in,
)

_ANNOTATE_MAX = 20  # confusion-matrix cells get numbers up to this many classes
_MAX_TICKS = 60  # beyond this many classes only every n-th tick label is drawn
_TICK_IN = 0.15  # inches between an axis and its tick labels (tick length + padding)
_AXIS_LABEL_IN = 0.35  # inches for an axis label such as "predicted"
_TITLE_BAND_IN = 0.4  # inches above an axes for its title
_COLORBAR_IN = 1.0  # inches right of the confusion matrix for its colour bar and numbers
_GALLERY_COLS = 6
_CELL_IN = 1.9  # inches per image in the gallery of mistakes
_GAP_IN = 0.2  # inches between gallery images
_TITLE_IN = 0.42  # inches above each gallery image for its two-line caption
_CAPTION_PT = 8  # font size of the gallery captions


def _column(rows: Sequence[dict[str, Any]], key: str) -> np.ndarray:
    from cnnlab.evaluation.metrics import metric_series

    return np.asarray(metric_series(rows, key), dtype=np.float64)


def plot_learning_curves(
    rows: Sequence[dict[str, Any]], path: str | Path, best_epoch: int | None = None
) -> Path:
    """Loss, accuracy and macro-F1 panels, train vs validation, best epoch marked.

    Args:
        rows: metrics.csv rows (values may be strings, as ``csv.DictReader`` gives them).
        path: PNG to write.
        best_epoch: the best epoch in the units of the ``epoch`` column (a dashed line; also
            stored in the PNG's ``best_epoch`` text chunk).
    """
    epochs = _column(rows, "epoch")
    if np.isnan(epochs).all():
        epochs = np.arange(1, len(rows) + 1, dtype=np.float64)
    from matplotlib.ticker import MaxNLocator

    with style():
        fig = new_figure(13, 3.8)
        axes = fig.subplots(
            1, 3, gridspec_kw={"left": 0.05, "right": 0.99, "bottom": 0.14, "top": 0.91}
        )
        for ax, (metric, title) in zip(
            axes,
            (("loss", "Loss"), ("accuracy", "Accuracy"), ("macro_f1", "Macro F1")),
            strict=True,
        ):
            for split, fmt in (("train", "-o"), ("val", "-s")):
                values = _column(rows, f"{split}/{metric}")
                if not np.isnan(values).all():
                    ax.plot(epochs, values, fmt, markersize=3, label=split)
            if best_epoch is not None:
                ax.axvline(best_epoch, color="grey", linestyle="--", label="best epoch")
            ax.set_title(title, y=1.0)  # a fixed y skips matplotlib's title placement pass
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
            ax.grid(alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=8)
        meta = {"best_epoch": str(best_epoch)} if best_epoch is not None else None
        return save_png(fig, path, meta=meta)


def _cm_geometry(k: int) -> tuple[float, float, int]:
    """Figure side (inches), tick font size and tick step for ``k`` classes."""
    side = min(max(4.5, 2.5 + 0.28 * k), 26.0)
    font = max(4.0, min(10.0, 420.0 / max(k, 1)))
    step = max(1, math.ceil(k / _MAX_TICKS))
    return side, font, step


def plot_confusion_matrix(
    cm: Any, classes: Sequence[str], path: str | Path, normalize: bool = True
) -> Path:
    """A confusion matrix readable from 2 to 200+ classes (rows: true, columns: predicted).

    Cell numbers appear only up to 20 classes; the figure and fonts grow with the class
    count, and beyond 60 classes only every n-th class name is written on the axes.
    """
    counts = np.asarray(cm, dtype=np.float64)
    k = counts.shape[0]
    if normalize:
        totals = counts.sum(axis=1, keepdims=True)
        values = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    else:
        values = counts
    side, font, step = _cm_geometry(k)
    ticks = np.arange(0, k, step)
    labels = short_labels(classes)  # all k, so no two drawn names read alike
    names = [labels[i] for i in ticks]
    warn_undrawable(classes)
    with style():
        fig = new_figure(side, side)
        # Margins from the widest class name (rotated on x, upright on y), plus tick and
        # axis labels; the colour bar sits right of the matrix. All in inches.
        margin = widest_in(fig, names, font) + _TICK_IN + _AXIS_LABEL_IN
        width, height = margin + side + _COLORBAR_IN, margin + side + _TITLE_BAND_IN
        fig.set_size_inches(width, height)
        ax = fig.add_axes((margin / width, margin / height, side / width, side / height))
        cax = fig.add_axes(
            ((margin + side + 0.15) / width, (margin + 0.1 * side) / height,
             0.2 / width, 0.8 * side / height)
        )  # fmt: skip
        image = ax.imshow(
            values, cmap="Blues", vmin=0.0, vmax=1.0 if normalize else None, interpolation="nearest"
        )
        fig.colorbar(image, cax=cax)
        ax.set_xticks(ticks, names, rotation=90, fontsize=font)
        ax.set_yticks(ticks, names, fontsize=font)
        ax.set(xlabel="predicted", ylabel="true")
        ax.set_title("Confusion matrix" + (" (row-normalised)" if normalize else ""), y=1.0)
        if k <= _ANNOTATE_MAX:
            _annotate(ax, values, counts, normalize, font)
        return save_png(fig, path, dpi=100 if k <= 100 else 90)


def _annotate(
    ax: Any, values: np.ndarray, counts: np.ndarray, normalize: bool, font: float
) -> None:
    top = values.max() if values.size else 1.0
    for (i, j), v in np.ndenumerate(values):
        if counts[i, j] == 0:
            continue
        text = f"{v:.2f}" if normalize else f"{int(v)}"
        colour = "white" if v > 0.6 * top else "black"
        ax.text(j, i, text, ha="center", va="center", fontsize=font * 0.9, color=colour)


def _unmeasured(table: Sequence[dict[str, Any]], cm: Any) -> list[bool]:
    """Per class: no image in the split and never predicted, so its F1 is 0/0 (the evaluation's
    rule: such a class is left out of macro F1 and its report row says "no image")."""
    if cm is None:  # without the matrix, a class with no image counts as not measured
        return [r["support"] == 0 for r in table]
    predicted = np.asarray(cm).sum(axis=0)
    return [r["support"] == 0 and predicted[i] == 0 for i, r in enumerate(table)]


def plot_per_class_f1(table: Sequence[dict[str, Any]], path: str | Path, cm: Any = None) -> Path:
    """Horizontal bars of F1 per class, worst at the top, support in the labels.

    A class with no image in the split that was never predicted has no F1: it is listed last,
    marked "no image", with no bar (an F1-0 bar at the top read as the worst class).

    Args:
        table: the evaluation's ``per_class`` rows (``class``, ``f1``, ``support``), in label
            order.
        path: PNG to write.
        cm: the confusion matrix (rows true, columns predicted), to tell a class with no
            image but some predictions (F1 0, measured) from one never predicted.
    """
    absent = _unmeasured(table, cm)
    classes = [r["class"] for r in table]
    names = dict(zip(classes, short_labels(classes), strict=True))
    pairs = list(zip(table, absent, strict=True))
    scored = sorted((r for r, a in pairs if not a), key=lambda r: (r["f1"], r["class"]))
    missing = sorted((r for r, a in pairs if a), key=lambda r: r["class"])
    k = len(table)
    font = max(4.0, min(10.0, 500.0 / max(k, 1)))
    labels = [f"{names[r['class']]} (n={r['support']})" for r in scored]
    labels += [f"{names[r['class']]} (no image)" for r in missing]
    height = min(max(3.0, 0.6 + 0.16 * k), 34.0)
    warn_undrawable(classes)
    with style():
        fig = new_figure(8, height)
        left = widest_in(fig, labels, font) + _TICK_IN
        width = left + 6.0  # inches: 6 for the bars, the rest for the class names
        fig.set_size_inches(width, height)
        ax = fig.add_axes(
            (left / width, 0.5 / height, 5.8 / width, (height - 0.9) / height)
        )  # 0.5 in below for the F1 axis, 0.4 in above for the title
        ypos = np.arange(k)
        ax.barh(ypos[: len(scored)], [r["f1"] for r in scored], color="#4c72b0")
        for y in ypos[len(scored) :]:
            ax.text(0.01, y, "no image: not measured", va="center", fontsize=font, color="grey")
        ax.set_yticks(ypos, labels, fontsize=font)
        ax.set_ylim(k - 0.5, -0.5)  # worst at the top, no empty margin rows
        ax.set(xlim=(0, 1), xlabel="F1")
        title = "F1 per class (worst first" + ("; classes with no image last)" if missing else ")")
        ax.set_title(title, y=1.0)
        ax.grid(axis="x", alpha=0.3)
        return save_png(fig, path, dpi=100 if k <= 100 else 80)


def plot_reliability(probs: Any, y_true: Any, path: str | Path, bins: int = 15) -> Path:
    """Reliability diagram: accuracy vs confidence per bin, with the count per bin below."""
    from cnnlab.evaluation.metrics import calibration_bins, expected_calibration_error

    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(y_true, dtype=np.int64)
    table = calibration_bins(y, p, bins)
    ece = expected_calibration_error(y, p, bins)
    centres = [(b["lower"] + b["upper"]) / 2 for b in table]
    width = 1.0 / bins
    with style():
        fig = new_figure(5.5, 6)
        top, bottom = fig.subplots(
            2,
            1,
            sharex=True,
            gridspec_kw={
                "height_ratios": [3, 1], "left": 0.13, "right": 0.97, "bottom": 0.09,
                "top": 0.95, "hspace": 0.08,
            },
        )  # fmt: skip
        top.bar(
            centres,
            [b["accuracy"] for b in table],
            width=width * 0.95,
            color="#4c72b0",
            label="accuracy",
        )
        empty = [c for c, b in zip(centres, table, strict=True) if b["count"] == 0]
        if empty:  # hatched, so an empty bin does not look like a bin whose accuracy is 0
            top.bar(empty, [1.0] * len(empty), width=width * 0.95, fill=False, hatch="//",
                    edgecolor="#cccccc", linewidth=0, label="empty bin (no image)")  # fmt: skip
        top.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
        top.set(ylim=(0, 1), ylabel="accuracy")
        top.set_title(f"Reliability (ECE {ece:.3f})", y=1.0)
        top.legend(fontsize=8, loc="upper left")
        bottom.bar(centres, [b["count"] for b in table], width=width * 0.95, color="#999999")
        bottom.set(xlim=(0, 1), xlabel="confidence (top-1 probability)", ylabel="count")
        return save_png(fig, path)


def _as_hwc(image: Any) -> np.ndarray:
    """Any uint8 image (HWC, CHW, greyscale with or without a channel axis) as RGB HWC."""
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[0] in (1, 3) and arr.shape[-1] not in (1, 3):
        arr = np.transpose(arr, (1, 2, 0))  # CHW -> HWC
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return np.repeat(arr, 3, axis=2) if arr.shape[-1] == 1 else arr[:, :, :3]


def _compose(images: Sequence[np.ndarray], cols: int, gap: int, band: int) -> np.ndarray:
    """One white RGB canvas holding every image in a grid, a caption band above each row."""
    side = max(max(a.shape[0], a.shape[1]) for a in images)
    rows = math.ceil(len(images) / cols)
    cell_h, cell_w = band + side + gap, side + gap
    canvas = np.full((rows * cell_h, cols * cell_w, 3), 255, dtype=np.uint8)
    for i, arr in enumerate(images):
        r, c = divmod(i, cols)
        h, w = arr.shape[:2]
        y0 = r * cell_h + band + gap // 2 + (side - h) // 2  # smaller images centred
        x0 = c * cell_w + gap // 2 + (side - w) // 2
        canvas[y0 : y0 + h, x0 : x0 + w] = arr
    return canvas


def plot_worst_mistakes(
    images: Sequence[Any],
    true: Sequence[int],
    pred: Sequence[int],
    prob: Sequence[float],
    classes: Sequence[str],
    path: str | Path,
) -> Path:
    """A gallery of misclassified images with true and predicted class and confidence.

    The images are composed into one canvas and drawn as a single image, with one caption
    each: a grid of 16 axes used to cost more than all the other plots of a run together.

    Args:
        images: uint8 images, HWC or CHW (greyscale allowed).
        true: true label per image.
        pred: predicted label per image.
        prob: probability of the predicted class.
        classes: class names in label order.
        path: PNG to write.
    """
    arrays = [_as_hwc(img) for img in images]
    n = len(arrays)
    cols = min(max(n, 1), _GALLERY_COLS)
    rows = max(1, math.ceil(n / cols))
    with style():
        fig = new_figure(cols * (_CELL_IN + _GAP_IN), rows * (_CELL_IN + _TITLE_IN + _GAP_IN))
        ax = fig.add_axes((0, 0, 1, 1))
        ax.set_axis_off()
        if n == 0:
            ax.text(0.5, 0.5, "no mistakes", ha="center", va="center")
            return save_png(fig, path)
        side = max(max(a.shape[0], a.shape[1]) for a in arrays)
        px_per_in = side / _CELL_IN  # canvas pixels per inch of the figure
        gap, band = round(_GAP_IN * px_per_in), round(_TITLE_IN * px_per_in)
        canvas = _compose(arrays, cols, gap, band)
        ax.imshow(canvas, interpolation="nearest", aspect="auto")
        warn_undrawable(classes)
        label = _caption_names(fig, [classes[int(c)] for c in (*true, *pred)])
        for i, (t, q, pr) in enumerate(zip(true, pred, prob, strict=False)):
            r, c = divmod(i, cols)
            ax.text(
                c * (side + gap) + (side + gap) / 2,
                r * (band + side + gap) + band + gap // 2 - 1,
                f"true: {label[classes[int(t)]]}\npred: {label[classes[int(q)]]} ({float(pr):.2f})",
                ha="center",
                va="bottom",
                fontsize=_CAPTION_PT,
            )
        return save_png(fig, path)


def _caption_names(fig: Any, names: Sequence[str]) -> dict[str, str]:
    """Class names fitted to a gallery cell, measured as drawn: a character count cannot say
    what fits (a CJK character is about twice as wide as a Latin one)."""
    room = _CELL_IN + _GAP_IN / 2 - widest_in(fig, ["pred:  (0.00)"], _CAPTION_PT)
    return fit_labels(fig, names, room, _CAPTION_PT)
