"""``cnnlab explain``: CAMs, feature maps and filters of a run, written into one folder.

Files, all named after the image's file stem (``0.png`` -> ``0.cam.npy``; a stem seen twice
gets ``-2``, ``-3``...):

- ``<stem>.cam.png``: the image the model saw beside the CAM overlaid on it;
- ``<stem>.cam.npy``: the raw map, float32 ``(img_size, img_size)`` in ``[0, 1]``;
- ``<stem>.features.png``: with ``feature_maps``, a grid of the layer's activations;
- ``filters.png``: with ``filters``, the first convolution's filters;
- ``explain.csv``: one row per image (prediction, explained class, files, ``all_zero``).

An all-zero map is written as it is (never invented) but flagged in ``all_zero`` and counted
in one warning: the layer found no evidence for the class that varies over the image.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.console import warn
from cnnlab.explain.cam import Explainer, Explanation, save_side_by_side
from cnnlab.explain.layers import AUTO, LayerInfo, auto_layer, resolve_layer, trace_layers
from cnnlab.runs import write_csv, write_npy

DISPLAY_SIDE = 256  # px per panel of an overlay PNG (a 32-px image is unreadable at 1:1)
CSV_COLUMNS = [
    "path", "label", "prob", "target", "target_prob", "layer", "method", "cam", "npy", "all_zero"
]  # fmt: skip


def list_layers(run_dir: str | Path) -> tuple[list[LayerInfo], str]:
    """The run model's layers with their output shapes, and the name ``auto`` picks."""
    from cnnlab.predict import Predictor

    predictor = Predictor(run_dir)
    assert predictor.model is not None
    layers = trace_layers(predictor.model, predictor.img_size, predictor.channels)
    return layers, auto_layer(predictor.model, layers)


def _stems(keys: list[str | int]) -> list[str]:
    """A unique file stem per input: the file's stem, or the input's position."""
    used: dict[str, int] = {}
    out = []
    for key in keys:
        stem = Path(key).stem if isinstance(key, str) else str(key)
        used[stem] = used.get(stem, 0) + 1
        out.append(stem if used[stem] == 1 else f"{stem}-{used[stem]}")
    return out


def _write_cams(
    found: list[Explanation], stems: list[str], out: Path, layer: str, method: str
) -> list[dict[str, Any]]:
    """``<stem>.cam.npy`` + ``<stem>.cam.png`` per image and ``explain.csv``; the CSV rows."""
    rows = []
    for item, stem in zip(found, stems, strict=True):
        write_npy(out / f"{stem}.cam.npy", item.cam, durable=False)
        save_side_by_side(out / f"{stem}.cam.png", item.image, item.cam, DISPLAY_SIDE)
        rows.append({
            "path": item.key, "label": item.label, "prob": f"{item.prob:.6f}",
            "target": item.target, "target_prob": f"{item.target_prob:.6f}",
            "layer": layer, "method": method,
            "cam": f"{stem}.cam.png", "npy": f"{stem}.cam.npy",
            "all_zero": "yes" if not np.any(item.cam) else "no",
        })  # fmt: skip
    if rows:
        write_csv(out / "explain.csv", rows, CSV_COLUMNS)
    return rows


def _warn_zero_maps(rows: list[dict[str, Any]], layer: str, method: str) -> None:
    """One warning per call when maps came out all zero: such a map looks like a real heatmap
    of "no evidence here" (a 1x1 layer gives nothing but these; so does gradcam for a class
    with no positive evidence, often one the model did not predict)."""
    zero = sum(1 for r in rows if r["all_zero"] == "yes")
    if zero:
        warn(
            f"{zero} of {len(rows)} maps are all zero ({method}, layer {layer}): the layer "
            "shows no evidence for the class that varies over the image (a 1x1 layer never "
            "can; see --layers); explain.csv marks them in all_zero"
        )


def _feature_maps(
    ex: Explainer, layer: tuple[str, Any], images: list[Explanation], stems: list[str], out: Path
) -> None:
    import torch

    from cnnlab.explain.maps import layer_output, plot_feature_maps

    name, module = layer
    p = ex.predictor
    for item, stem in zip(images, stems, strict=True):
        arr = torch.from_numpy(item.image).permute(2, 0, 1)[None].contiguous()
        acts = layer_output(ex.model, module, p.transform(arr.to(p.device)))[0].numpy()
        plot_feature_maps(acts, out / f"{stem}.features.png", f"{name} on {stem}")


def explain_run(
    run_dir: str | Path,
    inputs: list[str] | None = None,
    *,
    method: str = "gradcam",
    layer: str = AUTO,
    target: str | None = None,
    out_dir: str | Path | None = None,
    feature_maps: str | None = None,
    filters: bool = False,
) -> dict[str, Any]:
    """Explain a run on image files or folders; see the module docstring for the files.

    Args:
        run_dir: a finished run folder.
        inputs: image files and/or folders (recursed); may be empty with ``filters``.
        method: ``gradcam``, ``gradcam++``, ``scorecam`` or ``eigencam``.
        layer: CAM layer name or ``auto`` (the last convolutional stage).
        target: class name to explain; None: each image's predicted class.
        out_dir: output folder; default ``RUN/explain`` (``explain-2``... if it exists).
        feature_maps: also save this layer's activations (a name or ``auto``) per image.
        filters: also save the first convolution's filters.

    Returns:
        ``{"out_dir", "layer", "method", "rows": [...], "skipped": [...], "filters"}``.

    Example:
        >>> explain_run("runs/cnn-1", ["photos/"], method="gradcam++")  # doctest: +SKIP
    """
    from cnnlab.evaluation.evaluate import _unique_dir

    ex = Explainer(run_dir, method=method, layer=layer)
    # An unknown class or layer fails before any image is read or any file written.
    if target is not None:
        ex.class_index(target)
    p = ex.predictor
    fm_layer = (
        resolve_layer(ex.model, feature_maps, p.img_size, p.channels) if feature_maps else None
    )
    out = Path(out_dir) if out_dir is not None else None
    out = _unique_dir(out if out is not None else p.run_dir / "explain")
    found, skipped = ex.explain(inputs or [], target) if inputs else ([], [])
    stems = _stems([e.key for e in found])
    rows = _write_cams(found, stems, out, ex.layer, method)
    _warn_zero_maps(rows, ex.layer, method)
    if fm_layer is not None:
        _feature_maps(ex, fm_layer, found, stems, out)
    filters_png = None
    if filters:
        from cnnlab.explain.maps import first_conv, plot_filters

        name, conv = first_conv(ex.model)
        filters_png = str(plot_filters(conv.weight, out / "filters.png", name))
    result = {"rows": rows, "skipped": skipped, "filters": filters_png}
    return {"out_dir": str(out), "layer": ex.layer, "method": method, **result}
