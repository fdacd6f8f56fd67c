"""Matplotlib figures for cnnlab's PNGs: fonts with fallback, fixed geometry, fast PNG output.

Figures are built on ``matplotlib.figure.Figure`` with the Agg canvas, never through pyplot,
so no global figure state or GUI backend is touched (safe inside the web app's threads).
Matplotlib is imported inside the functions to keep ``cnnlab --help`` fast. Class names may be
any Unicode: fonts with CJK/emoji glyphs are used when installed, and a missing glyph is drawn
as a box instead of failing or flooding the console with warnings.

Every run writes nine PNGs, so figures are built for speed (issue 11, measured in
``bench/bench_overhead.py``): no layout engine and no tight bounding box (each lays every text
out a second time; callers place their axes in inches, with margins measured by
:func:`widest_in`), and zlib level 3, which encodes about twice as fast as the default 6 for
files ~10 % larger.
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from cnnlab.atomic import atomic_path

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
_LABEL_CHARS = 24  # labels are shortened to this many characters
_PNG = {"compress_level": 3}  # zlib level: ~2x faster than the default 6, files ~10 % larger


@functools.cache
def font_families() -> tuple[str, ...]:
    """The installed fallback fonts, looked up once per process (the list does not change)."""
    from matplotlib import font_manager

    installed = {f.name for f in font_manager.fontManager.ttflist}
    return tuple(f for f in _FONT_CANDIDATES if f in installed) or ("sans-serif",)


@contextlib.contextmanager
def style() -> Iterator[None]:
    """Fonts with fallback and no missing-glyph warnings, scoped to one figure."""
    import matplotlib

    with (
        matplotlib.rc_context({"font.family": list(font_families()), "axes.grid": False}),
        warnings.catch_warnings(),
    ):
        warnings.filterwarnings("ignore", message=r".*[Gg]lyph.*missing.*")
        warnings.filterwarnings("ignore", message=r".*findfont.*")
        yield


def new_figure(width: float, height: float, layout: str | None = None) -> Any:
    """A figure of ``width`` x ``height`` inches on an Agg canvas.

    ``layout``: None (the run report's plots: fixed geometry, cheapest) or a matplotlib layout
    engine such as ``"constrained"`` for figures whose content varies too much to lay out by
    hand (study and explanation figures).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout=layout)
    FigureCanvasAgg(fig)
    return fig


def save_png(
    fig: Any,
    path: str | Path,
    dpi: int = 100,
    meta: dict[str, str] | None = None,
    tight: bool = False,
) -> Path:
    """Write the figure as it was laid out and return the path.

    ``meta`` lands in the PNG's text chunks (what a plot marks, readable by tools and tests);
    ``tight`` crops to the drawn content (a second layout pass: slower, for free-form figures).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    crop = {"bbox_inches": "tight", "pad_inches": 0.1} if tight else {}
    # atomic: a full disk leaves no half PNG, and its error names this file (Pillow's does not);
    # not fsynced, a plot can be drawn again
    with atomic_path(path, durable=False) as tmp:
        fig.savefig(
            tmp, dpi=dpi, format="png", pil_kwargs=dict(_PNG), metadata=meta or None, **crop
        )
    return path


def widest_in(fig: Any, labels: Sequence[str], fontsize: float) -> float:
    """Width (inches) of the widest label, measured by the figure's own text engine.

    Far cheaper than a tight bounding box, which lays out every text of the figure again.
    """
    from matplotlib.font_manager import FontProperties

    renderer = fig.canvas.get_renderer()
    prop = FontProperties(family=list(font_families()), size=fontsize)
    widths = [
        renderer.get_text_width_height_descent(text, prop, ismath=False)[0] for text in set(labels)
    ]
    return max(widths, default=0.0) / fig.dpi


def short(name: str, limit: int = _LABEL_CHARS) -> str:
    """``name`` cut to ``limit`` characters with an ellipsis."""
    return name if len(name) <= limit else name[: limit - 1] + "…"
