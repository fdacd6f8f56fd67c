"""Static PNG plots for reports: learning curves, confusion matrix, per-class F1, calibration.

Figures are built on ``matplotlib.figure.Figure`` with the Agg canvas, never through pyplot,
so no global figure state or GUI backend is touched (safe inside the web app's threads).
Matplotlib is imported inside the functions to keep ``cnnlab --help`` fast. Class names may be
any Unicode: fonts with CJK/emoji glyphs are used when installed, and a missing glyph is drawn
as a box instead of failing or flooding the console with warnings.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

# Tried in order for every glyph; only the installed ones are used (matplotlib >= 3.6).
_FONT_CANDIDATES = (
    "DejaVu Sans",
    "Noto Sans",
    "Noto Sans CJK SC",
    "Noto Sans CJK JP",
    "WenQuanYi Zen Hei",
    "Noto Color Emoji",
    "Noto Emoji",
    "Symbola",
)
_ANNOTATE_MAX = 20  # confusion-matrix cells get numbers up to this many classes
_MAX_TICKS = 60  # beyond this many classes only every n-th tick label is drawn
_LABEL_CHARS = 24  # tick labels are shortened to this many characters


@contextlib.contextmanager
def _style() -> Iterator[None]:
    """Fonts with fallback and no missing-glyph warnings, scoped to one figure."""
    import matplotlib
    from matplotlib import font_manager

    installed = {f.name for f in font_manager.fontManager.ttflist}
    families = [f for f in _FONT_CANDIDATES if f in installed] or ["sans-serif"]
    with (
        matplotlib.rc_context({"font.family": families, "axes.grid": False}),
        warnings.catch_warnings(),
    ):
        warnings.filterwarnings("ignore", message=r".*[Gg]lyph.*missing.*")
        warnings.filterwarnings("ignore", message=r".*findfont.*")
        yield


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: str | Path, dpi: int = 100, meta: dict[str, str] | None = None) -> Path:
    """Write a PNG; ``meta`` lands in its text chunks (what a plot marks, readable by tools)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(
        path, dpi=dpi, format="png", bbox_inches="tight", pad_inches=0.1, metadata=meta or None
    )
    return path


def _short(name: str, limit: int = _LABEL_CHARS) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"


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

    with _style():
        fig = _figure(13, 3.8)
        axes = fig.subplots(1, 3)
        for ax, (metric, title) in zip(
            axes,
            (("loss", "Loss"), ("accuracy", "Accuracy"), ("macro_f1", "Macro F1")),
            strict=True,
        ):
            for split, style in (("train", "-o"), ("val", "-s")):
                values = _column(rows, f"{split}/{metric}")
                if not np.isnan(values).all():
                    ax.plot(epochs, values, style, markersize=3, label=split)
            if best_epoch is not None:
                ax.axvline(best_epoch, color="grey", linestyle="--", label="best epoch")
            ax.set(title=title, xlabel="epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
            ax.grid(alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=8)
        meta = {"best_epoch": str(best_epoch)} if best_epoch is not None else None
        return _save(fig, path, meta=meta)


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
    with _style():
        fig = _figure(side + 1.2, side)
        ax = fig.add_subplot()
        image = ax.imshow(
            values, cmap="Blues", vmin=0.0, vmax=1.0 if normalize else None, interpolation="nearest"
        )
        fig.colorbar(image, ax=ax, shrink=0.8)
        ticks = np.arange(0, k, step)
        names = [_short(classes[i]) for i in ticks]
        ax.set_xticks(ticks, names, rotation=90, fontsize=font)
        ax.set_yticks(ticks, names, fontsize=font)
        ax.set(
            xlabel="predicted",
            ylabel="true",
            title="Confusion matrix" + (" (row-normalised)" if normalize else ""),
        )
        if k <= _ANNOTATE_MAX:
            _annotate(ax, values, counts, normalize, font)
        return _save(fig, path, dpi=100 if k <= 100 else 90)


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


def plot_per_class_f1(table: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Horizontal bars of F1 per class, worst at the top, support in the labels."""
    ordered = sorted(table, key=lambda r: (r["f1"], r["class"]))
    k = len(ordered)
    font = max(4.0, min(10.0, 500.0 / max(k, 1)))
    with _style():
        fig = _figure(8, min(max(3.0, 0.6 + 0.16 * k), 34.0))
        ax = fig.add_subplot()
        ypos = np.arange(k)
        ax.barh(ypos, [r["f1"] for r in ordered], color="#4c72b0")
        ax.set_yticks(
            ypos, [f"{_short(r['class'])} (n={r['support']})" for r in ordered], fontsize=font
        )
        ax.invert_yaxis()
        ax.set(xlim=(0, 1), xlabel="F1", title="F1 per class (worst first)")
        ax.grid(axis="x", alpha=0.3)
        return _save(fig, path, dpi=100 if k <= 100 else 80)


def plot_reliability(probs: Any, y_true: Any, path: str | Path, bins: int = 15) -> Path:
    """Reliability diagram: accuracy vs confidence per bin, with the count per bin below."""
    from cnnlab.evaluation.metrics import calibration_bins, expected_calibration_error

    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(y_true, dtype=np.int64)
    table = calibration_bins(y, p, bins)
    ece = expected_calibration_error(y, p, bins)
    centres = [(b["lower"] + b["upper"]) / 2 for b in table]
    width = 1.0 / bins
    with _style():
        fig = _figure(5.5, 6)
        top, bottom = fig.subplots(2, 1, height_ratios=[3, 1], sharex=True)
        top.bar(
            centres,
            [b["accuracy"] for b in table],
            width=width * 0.95,
            color="#4c72b0",
            label="accuracy",
        )
        top.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
        top.set(ylim=(0, 1), ylabel="accuracy", title=f"Reliability (ECE {ece:.3f})")
        top.legend(fontsize=8, loc="upper left")
        bottom.bar(centres, [b["count"] for b in table], width=width * 0.95, color="#999999")
        bottom.set(xlim=(0, 1), xlabel="confidence (top-1 probability)", ylabel="count")
        return _save(fig, path)


def _as_hwc(image: Any) -> np.ndarray:
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[0] in (1, 3) and arr.shape[-1] not in (1, 3):
        arr = np.transpose(arr, (1, 2, 0))  # CHW -> HWC
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[:, :, 0]
    return arr


def plot_worst_mistakes(
    images: Sequence[Any],
    true: Sequence[int],
    pred: Sequence[int],
    prob: Sequence[float],
    classes: Sequence[str],
    path: str | Path,
) -> Path:
    """A gallery of misclassified images with true and predicted class and confidence.

    Args:
        images: uint8 images, HWC or CHW (greyscale allowed).
        true: true label per image.
        pred: predicted label per image.
        prob: probability of the predicted class.
        classes: class names in label order.
        path: PNG to write.
    """
    n = len(images)
    cols = min(max(n, 1), 6)
    rows = max(1, math.ceil(n / cols))
    with _style():
        fig = _figure(2.1 * cols, 2.4 * rows)
        axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
        for ax in axes:
            ax.axis("off")
        for ax, img, t, q, pr in zip(axes, images, true, pred, prob, strict=False):
            arr = _as_hwc(img)
            ax.imshow(arr, cmap="gray" if arr.ndim == 2 else None, vmin=0, vmax=255)
            ax.set_title(
                f"true: {_short(classes[int(t)], 16)}\n"
                f"pred: {_short(classes[int(q)], 16)} ({float(pr):.2f})",
                fontsize=8,
            )
        if n == 0:
            axes[0].text(0.5, 0.5, "no mistakes", ha="center", va="center")
        return _save(fig, path)
