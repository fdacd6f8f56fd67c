"""Matplotlib figures for cnnlab's PNGs: fonts with fallback, fixed geometry, fast PNG output.

Figures are built on ``matplotlib.figure.Figure`` with the Agg canvas, never through pyplot,
so no global figure state or GUI backend is touched (safe inside the web app's threads).
Matplotlib is imported inside the functions to keep ``cnnlab --help`` fast. Class names may be
any Unicode: fonts with CJK/emoji glyphs are used when installed, and a missing glyph is drawn
as a box instead of failing or flooding the console with warnings; one warning line per process
(:func:`warn_undrawable`) says how many class names no installed font can draw and how to fix it.

Long class names are shortened in the middle (``Especie_de_a…variante_07``): names that share a
long prefix differ at the end, so both ends are kept, and names that still look alike keep more
of their end (:func:`short_labels`). Captions are fitted to the width they have, measured by the
figure's own text engine (:func:`fit_labels`): a CJK character is about twice as wide as a
Latin one, so a count of characters cannot say what fits.

Every run writes nine PNGs, so figures are built for speed (issue 11, measured in
``bench/bench_overhead.py``): no layout engine and no tight bounding box (each lays every text
out a second time; callers place their axes in inches, with margins measured by
:func:`widest_in`), and zlib level 3, which encodes about twice as fast as the default 6 for
files ~10 % larger.
"""

from __future__ import annotations

import contextlib
import functools
import unicodedata
import warnings
from collections.abc import Callable, Iterator, Sequence
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
_NOT_DRAWN = {"Cc", "Cf", "Zs", "Zl", "Zp"}  # controls, format characters, spaces
# Han, kana, Hangul and their punctuation / full-width forms: what a CJK font adds
_CJK_RANGES = ((0x1100, 0x11FF), (0x2E80, 0x9FFF), (0xAC00, 0xD7AF), (0xF900, 0xFAFF),
               (0xFF00, 0xFFEF), (0x20000, 0x3FFFF))  # fmt: skip
_warned: set[frozenset[str]] = set()  # the undrawable names already warned about here
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


@functools.lru_cache(maxsize=8192)
def _width_px(text: str, fontsize: float, dpi: float) -> float:
    """Drawn width of ``text`` in pixels at ``dpi``; cached, as a run draws the same class
    names in several figures (and per split) and each measure lays the text out."""
    from matplotlib.font_manager import FontProperties

    prop = FontProperties(family=list(font_families()), size=fontsize)
    return _renderer(dpi).get_text_width_height_descent(text, prop, ismath=False)[0]


@functools.cache
def _renderer(dpi: float) -> Any:
    """A 1x1-pixel Agg renderer, used only to measure text (as a figure's renderer would)."""
    from matplotlib.backends.backend_agg import RendererAgg

    return RendererAgg(1, 1, dpi)


def _measure(fig: Any, fontsize: float) -> Callable[[str], float]:
    """A function giving a text's width in inches as the figure's text engine draws it."""
    dpi = float(fig.dpi)
    return lambda text: _width_px(text, fontsize, dpi) / dpi


def widest_in(fig: Any, labels: Sequence[str], fontsize: float) -> float:
    """Width (inches) of the widest label, measured by the figure's own text engine.

    Far cheaper than a tight bounding box, which lays out every text of the figure again.
    """
    width = _measure(fig, fontsize)
    return max((width(text) for text in set(labels)), default=0.0)


def cut_middle(name: str, head: int, tail: int) -> str:
    """The first ``head`` and last ``tail`` characters of ``name`` joined by an ellipsis
    (``name`` itself when that would not be shorter)."""
    if head + tail + 1 >= len(name):
        return name
    return name[:head] + "…" + (name[len(name) - tail :] if tail > 0 else "")


def _head(limit: int) -> int:
    """Characters kept from the start when cutting to ``limit``; the end gets the rest (the
    end is where names that share a prefix differ, so it gets the odd character)."""
    return max(1, (limit - 1) // 2)


def short(name: str, limit: int = _LABEL_CHARS) -> str:
    """``name`` cut in the middle to ``limit`` characters, keeping both ends.

    Example:
        >>> short("Especie_de_ave_migratoria_del_norte_variante_07")
        'Especie_de_…_variante_07'
    """
    if len(name) <= limit:
        return name
    return cut_middle(name, _head(limit), max(0, limit - 1 - _head(limit)))


def _clashing(names: Sequence[str], labels: Sequence[str]) -> list[int]:
    """Indices whose label is shared with a different name."""
    owners: dict[str, set[str]] = {}
    for name, label in zip(names, labels, strict=True):
        owners.setdefault(label, set()).add(name)
    return [i for i, label in enumerate(labels) if len(owners[label]) > 1]


def short_labels(names: Sequence[str], limit: int = _LABEL_CHARS) -> list[str]:
    """Every name as :func:`short` gives it, and different names never drawn alike.

    Names that still read the same after the cut (they differ only in the middle) keep one
    more character of their end each round until they differ: at worst the whole name.

    Example:
        >>> short_labels(["big_lake_1_birds_of_the_north", "big_lake_2_birds_of_the_north"], 12)
        ['big_l…1_birds_of_the_north', 'big_l…2_birds_of_the_north']
    """
    head, tails = _head(limit), [max(0, limit - 1 - _head(limit))] * len(names)
    labels = [short(n, limit) for n in names]
    while clash := _clashing(names, labels):
        for i in clash:
            tails[i] += 1
            labels[i] = cut_middle(names[i], head, tails[i])
    return labels


def _fit(name: str, width_in: float, width: Callable[[str], float]) -> str:
    """The longest middle cut of ``name`` no wider than ``width_in``.

    Starts from the share of characters the width allows (few measures: each lays the text
    out), then steps to the longest cut that fits.
    """
    full = width(name)
    if full <= width_in:
        return name
    keep = max(2, min(len(name) - 1, int(len(name) * width_in / full)))
    while keep > 2 and width(short(name, keep)) > width_in:
        keep -= 1
    while keep + 1 < len(name) and width(short(name, keep + 1)) <= width_in:
        keep += 1
    return short(name, keep)


def _separate(fitted: dict[str, str], width_in: float, width: Callable[[str], float]) -> None:
    """Give names that were fitted alike more of their end and less of their start (the same
    drawn width at most), until they differ or only one character of the start is left."""
    names = list(fitted)
    while clash := _clashing(names, [fitted[n] for n in names]):
        moved = False
        for name in (names[i] for i in clash):
            label = fitted[name]
            head = label.index("…") if "…" in label else 0
            if head <= 1:
                continue
            tail = len(label) - head - 1
            for keep in range(tail + 1, 0, -1):  # one more at the end, fewer if too wide
                shifted = cut_middle(name, head - 1, keep)
                if width(shifted) <= width_in:
                    fitted[name], moved = shifted, True
                    break
        if not moved:
            return


def fit_labels(fig: Any, names: Sequence[str], width_in: float, fontsize: float) -> dict[str, str]:
    """Each distinct name as the longest middle cut that fits ``width_in`` inches at
    ``fontsize``, measured by the figure's text engine; names that would read alike keep more
    of their end. Returns name -> label.
    """
    width = _measure(fig, fontsize)
    fitted = {name: _fit(name, width_in, width) for name in dict.fromkeys(names)}
    _separate(fitted, width_in, width)
    return fitted


@functools.cache
def _covered() -> frozenset[int]:
    """Code points the fallback fonts have glyphs for (read from their character maps once)."""
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    points: set[int] = set()
    for family in font_families():
        try:
            path = font_manager.findfont(
                font_manager.FontProperties(family=family), fallback_to_default=False
            )
            points.update(FT2Font(path).get_charmap())
        except (ValueError, RuntimeError, OSError):  # no file for it after all, unreadable
            continue
    return frozenset(points)


def undrawable(names: Sequence[str]) -> list[str]:
    """The names with a character that no installed fallback font can draw (drawn as a box).

    Spaces and invisible format characters (joiners, variation selectors) are not drawn, so
    they never count.
    """
    covered = _covered()
    return [
        name
        for name in dict.fromkeys(names)
        if any(ord(ch) not in covered and unicodedata.category(ch) not in _NOT_DRAWN for ch in name)
    ]


def _is_cjk(ch: str) -> bool:
    return any(low <= ord(ch) <= high for low, high in _CJK_RANGES)


def warn_undrawable(names: Sequence[str]) -> None:
    """One warning line per process (per set of names) when some class names cannot be drawn.

    Matplotlib's own warning comes once per missing glyph, which :func:`style` silences; without
    this line nobody would learn that the figures show boxes instead of those names.
    """
    bad = undrawable(names)
    if not bad or frozenset(bad) in _warned:
        return
    _warned.add(frozenset(bad))
    import matplotlib

    from cnnlab.console import warn

    cjk = any(_is_cjk(ch) for name in bad for ch in name)
    font = (
        "a CJK font (Debian/Ubuntu: apt-get install fonts-noto-cjk)"
        if cjk
        else ("a font that has them (Debian/Ubuntu: apt-get install fonts-noto-core fonts-symbola)")
    )
    warn(
        f"{len(bad)} of {len(set(names))} class names have characters no installed font can "
        f"draw (e.g. {bad[0]!r}); figures show them as boxes. To fix: install {font}, then "
        f"delete matplotlib's font cache {Path(matplotlib.get_cachedir()) / 'fontlist-*.json'}"
    )
