"""PNG plots of a study: accuracy with error bars, learning curves, trade-offs, per-class F1.

Built like the run plots (:mod:`cnnlab.evaluation.plots`): a ``Figure`` on the Agg canvas, no
pyplot state, Unicode-safe fonts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.evaluation.figure import new_figure, save_png, short_labels, style, warn_undrawable


def _colour(i: int, n: int) -> Any:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return cmap(i % cmap.N)


def plot_accuracy_bars(rows: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Mean test accuracy per cell, best at the top, error bars = 95% CI over seeds; a cell
    whose CI is NaN (unknown) gets no bar and says so in its label."""
    k = len(rows)
    with style():
        fig = new_figure(8, min(max(2.5, 0.8 + 0.4 * k), 30.0), layout="constrained")
        ax = fig.add_subplot()
        ypos = np.arange(k)
        means = np.array([r["test_accuracy_mean"] for r in rows], dtype=float)
        low = np.array([r["test_accuracy_ci_low"] for r in rows], dtype=float)
        high = np.array([r["test_accuracy_ci_high"] for r in rows], dtype=float)
        # an unknown CI (one seed, or seeds that tied) stays NaN: no error bar, not a 0-wide one
        err = np.vstack([means - low, high - means])
        ax.barh(ypos, np.nan_to_num(means), xerr=err, color="#4c72b0", capsize=3)
        unknown = [", CI unknown" if math.isnan(x) else "" for x in low]
        names = short_labels([r["label"] for r in rows], 40)
        labels = [
            f"{name} (n={r['n']}{u})" for name, r, u in zip(names, rows, unknown, strict=True)
        ]
        ax.set_yticks(ypos, labels)
        ax.invert_yaxis()
        ax.set(xlim=(0, 1), xlabel="test accuracy (mean over seeds, 95% CI)")
        ax.grid(axis="x", alpha=0.3)
        return save_png(fig, path, tight=True)


def plot_cell_curves(
    curves: dict[str, list[np.ndarray]], path: str | Path, key: str = "val/accuracy"
) -> Path:
    """One line per cell: the mean of ``key`` per epoch over seeds, with a +-1 std band."""
    from matplotlib.ticker import MaxNLocator

    names = dict(zip(curves, short_labels(list(curves), 40), strict=True))
    with style():
        fig = new_figure(8, 4.5, layout="constrained")
        ax = fig.add_subplot()
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        for i, (label, series) in enumerate(curves.items()):
            longest = max((len(s) for s in series), default=0)
            if longest == 0:
                continue
            grid = np.full((len(series), longest), np.nan)
            for j, s in enumerate(series):
                grid[j, : len(s)] = s
            with np.errstate(all="ignore"):
                mean, std = np.nanmean(grid, axis=0), np.nanstd(grid, axis=0)
            epochs = np.arange(1, longest + 1)
            colour = _colour(i, len(curves))
            ax.plot(epochs, mean, color=colour, label=names[label], marker=".")
            ax.fill_between(epochs, mean - std, mean + std, color=colour, alpha=0.2)
        ax.set(xlabel="epoch", ylabel=key, title=f"{key}: mean over seeds, band = +-1 std")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
        return save_png(fig, path, tight=True)


def plot_tradeoff(
    rows: Sequence[dict[str, Any]], x_key: str, path: str | Path, xlabel: str, log: bool
) -> Path:
    """Test accuracy against a cost (parameters, training time), one labelled point per cell."""
    names = short_labels([r["label"] for r in rows], 28)
    with style():
        fig = new_figure(7, 4.5, layout="constrained")
        ax = fig.add_subplot()
        for i, r in enumerate(rows):
            x, y = r.get(x_key), r["test_accuracy_mean"]
            if x in (None, "") or math.isnan(float(x)) or math.isnan(y):
                continue
            ax.scatter([float(x)], [y], color=_colour(i, len(rows)), s=40)
            ax.annotate(names[i], (float(x), y), fontsize=7, xytext=(4, 3),
                        textcoords="offset points")  # fmt: skip
        if log:
            ax.set_xscale("log")
        ax.set(xlabel=xlabel, ylabel="test accuracy (mean)")
        ax.grid(alpha=0.3)
        return save_png(fig, path, tight=True)


def plot_f1_heatmap(
    matrix: np.ndarray, cells: Sequence[str], classes: Sequence[str], path: str | Path
) -> Path:
    """Per-class F1 (mean over seeds) of every cell: rows are cells, columns classes.

    NaN marks a class with no test image that the cell never predicted (its F1 is 0/0, left
    out of macro F1 as in the run reports): drawn hatched and marked "no image", never as a
    dark 0.00 that reads as a class the cell fails.
    """
    from matplotlib import colormaps

    n, k = matrix.shape
    unmeasured = np.isnan(matrix)
    warn_undrawable(classes)
    with style():
        fig = new_figure(
            min(max(5.0, 2.5 + 0.35 * k), 30.0),
            min(max(2.5, 1.0 + 0.4 * n), 30.0),
            layout="constrained",
        )
        ax = fig.add_subplot()
        cmap = colormaps["viridis"].with_extremes(bad="white")
        image = ax.imshow(
            np.ma.masked_invalid(matrix), cmap=cmap, vmin=0.0, vmax=1.0, aspect="auto"
        )
        fig.colorbar(image, ax=ax, shrink=0.8, label="F1")
        for i, j in zip(*np.nonzero(unmeasured), strict=True):
            ax.add_patch(_hatched(i, j))
        step = max(1, math.ceil(k / 60))
        ticks = np.arange(0, k, step)
        names = short_labels(classes)
        ax.set_xticks(ticks, [names[i] for i in ticks], rotation=90, fontsize=7)
        ax.set_yticks(np.arange(n), short_labels(cells, 40), fontsize=7)
        if n * k <= 400:
            for (i, j), v in np.ndenumerate(matrix):
                text, colour = ("no\nimage", "grey") if unmeasured[i, j] else (
                    f"{v:.2f}", "black" if v > 0.6 else "white")  # fmt: skip
                ax.text(j, i, text, ha="center", va="center", fontsize=6, color=colour)
        title = "F1 per class and cell (mean over seeds)"
        if unmeasured.any():
            title += "\nhatched: no test image and never predicted (not in macro F1)"
        ax.set(title=title)
        return save_png(fig, path, tight=True)


def _hatched(row: int, col: int) -> Any:
    from matplotlib.patches import Rectangle

    return Rectangle((col - 0.5, row - 0.5), 1, 1, fill=False, hatch="//", edgecolor="#bbbbbb",
                     linewidth=0)  # fmt: skip
