"""Shared helpers for the benchmarks: machine facts, timing, tables and generated datasets.

Every benchmark prints figures measured side by side in one run, so the helpers here are
deliberately small and dependency-light (numpy + Pillow); torch is imported only where a
helper needs it. Generated datasets are cached under ``bench/out/`` so a second run reuses the
exact same pixels.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

BENCH_DIR = Path(__file__).resolve().parent
OUT_DIR = BENCH_DIR / "out"
REPO_ROOT = BENCH_DIR.parent
# CPU features that decide whether bf16 / channels_last can pay off on this machine.
INTERESTING_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile")
SHAPES = (
    "disc", "square", "triangle", "cross", "ring",
    "hstripes", "vstripes", "checker", "star", "dots",
)  # fmt: skip


def cpu_flags() -> list[str]:
    """The interesting CPU flags present here (read from /proc/cpuinfo; empty elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    line = next((ln for ln in text.splitlines() if ln.startswith("flags")), "")
    present = set(line.split(":", 1)[-1].split())
    return [f for f in INTERESTING_FLAGS if f in present]


def cpu_model() -> str:
    """The CPU's model name, or the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict[str, Any]:
    """Facts that make a benchmark table reproducible: cores, CPU flags, versions, date."""
    info: dict[str, Any] = {
        "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "cpu_flags": cpu_flags(),
        "python": platform.python_version(),
        # Other work on a 2-core machine slows every timing; record how busy it was.
        "loadavg_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        info["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        info["torch"] = None
    return info


@contextmanager
def timer() -> Iterator[dict[str, float]]:
    """Measure wall time of a block: ``with timer() as t: ...; t["s"]``."""
    out: dict[str, float] = {}
    start = time.perf_counter()
    try:
        yield out
    finally:
        out["s"] = time.perf_counter() - start


def best_of(fn: Callable[[], Any], repeats: int = 3, warmup: int = 1) -> float:
    """Smallest wall time of ``repeats`` calls after ``warmup`` untimed ones (seconds).

    The minimum is the least noisy estimate on a shared 2-core machine.
    """
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def fmt(value: Any) -> str:
    """Format a table cell: floats to 3 significant-ish digits, None as a dash."""
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table (readable on a console, pasteable into RESULTS.md)."""
    cells = [[fmt(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in cells
    ]
    return "\n".join([line, sep, *body])


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b, or None when either side is missing (a part that could not run)."""
    if a is None or b is None or b == 0:
        return None
    return a / b


def save_result(name: str, payload: dict[str, Any]) -> Path:
    """Write one benchmark's figures to ``bench/out/<name>.json`` (with machine info)."""
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    path = OUT_DIR / f"{name}.json"
    path.write_text(json.dumps({"machine": machine_info(), **payload}, indent=2))
    return path


def run_json_subprocess(
    argv: Sequence[str], timeout: float, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """Run a script as its own process, timed whole; parse the last JSON line it prints.

    Returns the parsed dict plus ``process_s`` (wall time including interpreter start and
    imports, which is what a user waits for) or an ``error`` entry when it failed.
    """
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, **(env or {})},
            cwd=REPO_ROOT,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s", "process_s": timeout}
    elapsed = time.perf_counter() - start
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"error": f"exit {proc.returncode}: {' | '.join(tail)}", "process_s": elapsed}
    result = json.loads(lines[-1])
    result["process_s"] = elapsed
    return result


def python_for(env_var: str, default: str = sys.executable) -> str:
    """The interpreter for a peer: ``$<env_var>`` if set (a separate venv), else this one."""
    return os.environ.get(env_var, default)


# ---------------------------------------------------------------- generated datasets


def _shape_mask(kind: str, rng: np.random.Generator, side: int) -> Image.Image:
    """A white-on-black mask of one class's shape with random scale, position and rotation."""
    mask = Image.new("L", (side, side), 0)
    draw = ImageDraw.Draw(mask)
    r = side * rng.uniform(0.22, 0.36)
    cx, cy = side / 2 + rng.uniform(-0.12, 0.12, 2) * side
    box = [cx - r, cy - r, cx + r, cy + r]
    w = max(2, int(r * rng.uniform(0.3, 0.45)))
    if kind == "disc":
        draw.ellipse(box, fill=255)
    elif kind == "square":
        draw.rectangle(box, fill=255)
    elif kind == "triangle":
        draw.regular_polygon((cx, cy, r * 1.15), 3, rotation=0, fill=255)
    elif kind == "cross":
        draw.rectangle([cx - r, cy - w / 2, cx + r, cy + w / 2], fill=255)
        draw.rectangle([cx - w / 2, cy - r, cx + w / 2, cy + r], fill=255)
    elif kind == "ring":
        draw.ellipse(box, outline=255, width=w)
    elif kind == "star":
        pts = [
            (cx + (r if i % 2 == 0 else r * 0.42) * math.cos(math.pi * i / 5 - math.pi / 2),
             cy + (r if i % 2 == 0 else r * 0.42) * math.sin(math.pi * i / 5 - math.pi / 2))
            for i in range(10)
        ]  # fmt: skip
        draw.polygon(pts, fill=255)
    else:  # textures inside a square patch
        period = max(3, int(r * rng.uniform(0.35, 0.5)))
        for y in range(int(cy - r), int(cy + r)):
            for x in range(int(cx - r), int(cx + r)):
                dx, dy = int(x - cx + r), int(y - cy + r)
                on = {
                    "hstripes": (dy // period) % 2 == 0,
                    "vstripes": (dx // period) % 2 == 0,
                    "checker": (dx // period + dy // period) % 2 == 0,
                    "dots": (dx % period < period / 2) and (dy % period < period / 2),
                }[kind]
                if on and 0 <= x < side and 0 <= y < side:
                    mask.putpixel((x, y), 255)
    return mask.rotate(float(rng.uniform(-30, 30)), resample=Image.Resampling.BILINEAR)


def _random_colour(rng: np.random.Generator) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.integers(0, 256, 3))  # type: ignore[return-value]


def shapes_image(label: int, rng: np.random.Generator, size: int = 32) -> Image.Image:
    """One image of class ``label``: a shape/texture with random pose and colours, clutter,
    blur and noise. Colour carries no class information, so a model must learn shape."""
    side = size * 2  # draw at 2x and downsample: anti-aliased edges like a real photo
    bg = np.array(_random_colour(rng), dtype=np.float32)
    fg = np.array(_random_colour(rng), dtype=np.float32)
    while np.abs(fg - bg).sum() < 150:  # keep the object visible
        fg = np.array(_random_colour(rng), dtype=np.float32)
    gradient = np.linspace(-30, 30, side, dtype=np.float32)[None, :, None] * rng.uniform(-1, 1)
    canvas = np.broadcast_to(bg, (side, side, 3)) + gradient
    clutter = Image.new("L", (side, side), 0)
    draw = ImageDraw.Draw(clutter)
    for _ in range(int(rng.integers(2, 6))):  # distractor strokes in a third colour
        x0, y0, x1, y1 = rng.integers(0, side, 4).tolist()
        draw.line([x0, y0, x1, y1], fill=255, width=int(rng.integers(1, 3)))
    clutter_col = np.array(_random_colour(rng), dtype=np.float32)
    c = np.asarray(clutter, dtype=np.float32)[..., None] / 255.0
    canvas = canvas * (1 - c) + clutter_col * c
    m = np.asarray(_shape_mask(SHAPES[label], rng, side), dtype=np.float32)[..., None] / 255.0
    canvas = canvas * (1 - m) + fg * m
    img = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8))
    img = img.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.0, 1.2))))
    img = img.resize((size, size), Image.Resampling.BILINEAR)
    noise = rng.normal(0, rng.uniform(4, 18), (size, size, 3))
    return Image.fromarray(np.clip(np.asarray(img, dtype=np.float32) + noise, 0, 255).astype("u1"))


def make_shapes_dataset(
    root: Path | None = None, train_per_class: int = 300, test_per_class: int = 100,
    size: int = 32, seed: int = 0,
) -> Path:  # fmt: skip
    """Write (once) the 10-class peer dataset as ``root/{train,test}/<class>/*.png``.

    A marker file records the parameters, so a changed recipe regenerates the folder.
    """
    tag = f"shapes{size}-{train_per_class}-{test_per_class}-s{seed}-v1"
    root = root or OUT_DIR / "data" / tag
    marker = root / ".complete"
    if marker.is_file():
        return root
    rng = np.random.default_rng(seed)
    for split, per_class in (("train", train_per_class), ("test", test_per_class)):
        for label, name in enumerate(SHAPES):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                shapes_image(label, rng, size).save(folder / f"{name}_{i:04d}.png")
    marker.write_text(tag)
    return root


def photo_image(label: int, rng: np.random.Generator, w: int = 400, h: int = 300) -> Image.Image:
    """A photo-like picture (smooth gradients, blurred blobs, grain) of class ``label``."""
    small = rng.uniform(0, 255, (6, 8, 3)).astype(np.uint8)
    base = Image.fromarray(small).resize((w, h), Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(base)
    for _ in range(6):
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        r = int(rng.integers(10, 60))
        draw.ellipse([x - r, y - r, x + r, y + r], fill=_random_colour(rng))
    mask = _shape_mask(SHAPES[label % len(SHAPES)], rng, min(w, h)).resize((w, h))
    base.paste(Image.new("RGB", (w, h), _random_colour(rng)), (0, 0), mask)
    base = base.filter(ImageFilter.GaussianBlur(1.5))
    grain = rng.normal(0, 6, (h, w, 3))
    return Image.fromarray(np.clip(np.asarray(base, dtype=np.float32) + grain, 0, 255).astype("u1"))


def make_photo_dataset(n: int = 2000, classes: int = 10, seed: int = 0) -> Path:
    """Write (once) ``n`` 400x300 JPEGs as ``root/<class>/*.jpg`` (the input-pipeline set)."""
    root = OUT_DIR / "data" / f"photos-{n}-{classes}-s{seed}-v1"
    if (root / ".complete").is_file():
        return root
    rng = np.random.default_rng(seed)
    for i in range(n):
        label = i % classes
        folder = root / f"class_{label}"
        folder.mkdir(parents=True, exist_ok=True)
        photo_image(label, rng).save(folder / f"img_{i:05d}.jpg", quality=90)
    (root / ".complete").write_text("ok")
    return root


def count_images(root: Path) -> int:
    """Number of image files under root (for images/s figures)."""
    return sum(1 for p in root.rglob("*") if p.suffix.lower() in {".png", ".jpg", ".jpeg"})


def write_mislabelled(
    root: Path,
    classes: Sequence[str],
    per_class: int,
    draw: Callable[[int, np.random.Generator, int], Image.Image],
    fraction: float = 0.05,
    sizes: Sequence[int] = (32,),
    seed: int = 0,
) -> dict[str, str]:
    """Write ``root/<class>/*.png`` drawn by ``draw(label, rng, size)``, with ``fraction`` of
    the images saved in a wrong class folder (a known label noise to score detectors against).

    Returns:
        The moved files: path relative to ``root`` -> the class the image really shows.
    """
    rng = np.random.default_rng(seed)
    total = per_class * len(classes)
    moved_ids = set(rng.choice(total, size=round(total * fraction), replace=False).tolist())
    moved: dict[str, str] = {}
    for c, name in enumerate(classes):
        for i in range(per_class):
            img = draw(c, rng, sizes[i % len(sizes)])
            folder = name
            if c * per_class + i in moved_ids:  # a wrong class, never the true one
                folder = classes[(c + 1 + int(rng.integers(0, len(classes) - 1))) % len(classes)]
            (root / folder).mkdir(parents=True, exist_ok=True)
            rel = f"{folder}/{name}_{i:04d}.png"
            img.save(root / rel)
            if folder != name:
                moved[rel] = name
    return moved
