"""Export a run's model to ONNX or TorchScript, with a parity check against PyTorch.

The exported graph takes the *preprocessed* input: float32 ``(B, C, img_size, img_size)``,
normalised with the card's mean/std, batch size dynamic; it returns logits. The preprocessing
that leads there (decode, centre square resized to ``resize`` exactly as Pillow's
``resize(box=...)`` does it, centre crop, normalise; see :func:`preprocessing`) is written to
``export.json`` beside the file and to the model card's ``exports`` entry, because a model
fed differently prepared pixels fails silently. Both records carry the SHA-256 of the
``model.safetensors`` the file was made from: the ONNX backend of the Predictor refuses an
export whose weights are no longer the run's (a resumed run trained on since).

ONNX uses PyTorch's TorchScript-based exporter (``dynamo=False``): the newer dynamo exporter
needs ``onnxscript``, which is not a dependency. Parity is measured on real images of the
run's own test (else val, else train) split when the dataset is still readable, otherwise on
random pixels pushed through the same preprocessing; the source is recorded.

An ensemble folder is refused: its members each have their own preprocessing and the
combination happens outside any one network, so there is no single file to write; its
member runs export one by one.

Example:
    >>> export_run("runs/cnn-scratch", format="onnx")["max_abs_diff"]  # doctest: +SKIP
    3.1e-06
"""

from __future__ import annotations

import csv
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cnnlab import __version__
from cnnlab.atomic import atomic_path
from cnnlab.errors import CnnlabError, ConfigError, ParityError
from cnnlab.predict import ONNX_FILE, Predictor
from cnnlab.runs import CONFIG, MODEL_CARD, SPLIT, read_json, weights_digest, write_json

FORMATS = {"onnx": ONNX_FILE, "torchscript": "model.torchscript.pt"}
EXPORT_JSON = "export.json"
PARITY_TOL = 1e-4  # max |logit difference| accepted for an fp32 export
_PARITY_IMAGES = 8


def _split_paths(run_dir: Path, limit: int) -> list[Path]:
    """Up to ``limit`` image paths of the run's own data: test first, then val, then train."""
    import yaml

    try:
        cfg = yaml.safe_load((run_dir / CONFIG).read_text(encoding="utf-8")) or {}
        root = Path((cfg.get("data") or {}).get("root") or "")
        with (run_dir / SPLIT).open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, yaml.YAMLError, csv.Error):
        return []
    if root.is_file():  # a CSV manifest: paths are read from its root column's folder or its own
        from cnnlab.paths import dataset_folder

        root = dataset_folder(root)
    order = {"test": 0, "val": 1, "train": 2}
    rows.sort(key=lambda r: order.get(r.get("split", ""), 3))
    return [root / r["path"] for r in rows[: limit * 4] if r.get("path")]


def parity_inputs(predictor: Predictor, limit: int = _PARITY_IMAGES) -> tuple[torch.Tensor, str]:
    """Preprocessed float inputs for the parity check, and where they came from."""
    arrays = []
    for path in _split_paths(predictor.run_dir, limit):
        try:
            arrays.append(predictor.load(path))
        except Exception:  # a moved or damaged dataset only means fewer real samples
            continue
        if len(arrays) == limit:
            break
    source = f"{len(arrays)} images of the run's dataset"
    if not arrays:
        rng = np.random.default_rng(0)
        shape = (limit, predictor.resize, predictor.resize, predictor.channels)
        arrays = list(rng.integers(0, 256, size=shape, dtype=np.uint8))
        source = f"{limit} random images (the run's dataset was not readable)"
    u8 = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    with torch.no_grad():  # not inference_mode: the exporter's tracer refuses those tensors
        return predictor.transform(u8).float().contiguous(), source


def onnx_opsets() -> range | None:
    """The ONNX opsets the installed PyTorch's exporter can write (None if it does not say).

    PyTorch keeps the range in a private module; without it the exporter's own error stands.
    """
    try:
        from torch.onnx import _constants
    except ImportError:
        return None
    low, high = (
        getattr(_constants, "ONNX_MIN_OPSET", None),
        getattr(_constants, "ONNX_MAX_OPSET", None),
    )
    return range(low, high + 1) if isinstance(low, int) and isinstance(high, int) else None


def check_opset(opset: int) -> None:
    """Refuse, before any work, an opset the exporter cannot write (it would fail after
    tracing, with a traceback and a dump of the whole graph).

    Raises:
        ConfigError: naming the supported range.
    """
    supported = onnx_opsets()
    if supported is not None and opset not in supported:
        raise ConfigError(
            f"--opset {opset}: this PyTorch ({torch.__version__}) exports ONNX opsets "
            f"{supported.start} to {supported.stop - 1}; pick one in that range (default 17)"
        )


def check_not_ensemble(run_dir: str | Path) -> None:
    """Refuse an ensemble folder with what to do instead (it has no model.json to export).

    Raises:
        RunError: ``run_dir`` is an ensemble folder.
    """
    from cnnlab.ensemble.folder import refuse_ensemble

    refuse_ensemble(
        run_dir,
        "it cannot be exported as one file (each member has its own preprocessing and the "
        "members' probabilities are combined outside any network)",
        "export",
    )


def _export_onnx(model: torch.nn.Module, x: torch.Tensor, path: Path, opset: int) -> Any:
    import onnx
    import onnxruntime as ort

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notices
        torch.onnx.export(
            model,
            (x,),
            str(path),
            dynamo=False,
            opset_version=opset,
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        )
    onnx.checker.check_model(str(path))
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda batch: torch.from_numpy(session.run(None, {"input": batch.numpy()})[0])


def _export_torchscript(model: torch.nn.Module, x: torch.Tensor, path: Path) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit is deprecated but still the portable format
        traced = torch.jit.trace(model, x, check_trace=False)
        torch.jit.save(traced, str(path))
        loaded = torch.jit.load(str(path), map_location="cpu").eval()
    return lambda batch: loaded(batch)


def _max_abs_diff(model: torch.nn.Module, run: Any, x: torch.Tensor) -> float:
    """Largest logit difference over the batch and over a batch of another size."""
    worst = 0.0
    with torch.inference_mode():
        for batch in (x, x[: max(1, len(x) - 1)]):  # a second size proves the batch is dynamic
            worst = max(worst, float((model(batch) - run(batch)).abs().max()))
    return worst


def preprocessing(card: dict[str, Any]) -> dict[str, Any]:
    """How to turn an image file into the exported model's input (for any runtime), and
    its output into the probabilities the run's report and ``cnnlab predict`` give.

    The steps say what :func:`cnnlab.data.image.load_image` and ``to_array`` do, to the
    pixel: the square is resized with Pillow's ``resize(box=...)``, whose filter reads
    pixels just outside the square, so cropping the square first and then resizing differs
    at the borders (up to ~14 grey levels on a small image). That is how every run was
    trained and scored, so it is described here rather than changed.
    """
    inp = card["input"]
    r, size = inp["resize"], inp["img_size"]
    steps = [
        f"decode the first frame; a JPEG is decoded by libjpeg at reduced scale as Pillow's "
        f"draft(None, ({r}, {r})) does: by n, the largest of 8, 4, 2 with n <= min(width // "
        f"{r}, height // {r}) (if any), each side becoming ceil(side / n); apply EXIF "
        "orientation; 16-bit greyscale to 8 bits (value / 257, rounded); composite "
        "transparency on white; "
        + (
            "convert to RGB"
            if inp["channels"] == 3
            else "convert to greyscale (Pillow convert('L'): L = R*299/1000 + G*587/1000 "
            "+ B*114/1000)"
        ),
        f"resize the centred largest square to {r}x{r} in one pass, exactly as Pillow's "
        f"img.resize(({r}, {r}), Image.BILINEAR, box=(left, top, left + s, top + s)) with "
        "s = min(width, height), left = (width - s) / 2, top = (height - s) / 2 (halves "
        "kept): bilinear, widened by s / "
        f"{r} when shrinking (antialiased); at the square's edges the filter also reads the "
        "image's pixels just outside it (clipped at the image's edge, not the square's), so "
        "do not crop the square out first",
        "scale to 0..1 (divide by 255), subtract mean, divide by std (per channel)",
        "layout NCHW float32; output: logits (apply softmax for probabilities)",
    ]
    if size != r:  # else the crop would repeat the previous step
        steps.insert(2, f"centre-crop {size}x{size}: rows and columns from ({r} - {size}) // 2")
    if card.get("tta") == "hflip":  # the report's numbers are those of the averaged pair
        steps.append(
            "test-time augmentation (model.json tta: hflip): also run the input flipped "
            "left-right (reverse the last axis) and average the two softmax outputs"
        )
    keys = ("img_size", "resize", "crop_pct", "channels", "mean", "std")
    return {**{k: inp[k] for k in keys}, "tta": card.get("tta"), "steps": steps}


def export_run(
    run_dir: str | Path,
    format: str = "onnx",
    out: str | Path | None = None,
    opset: int = 17,
    tolerance: float = PARITY_TOL,
) -> dict[str, Any]:
    """Export the run's eval-mode model and check it against PyTorch.

    Args:
        run_dir: a finished run folder.
        format: ``onnx`` or ``torchscript``.
        out: output file; default ``model.onnx`` / ``model.torchscript.pt`` in the run folder
            (the ONNX backend of :class:`~cnnlab.predict.Predictor` finds it there).
        opset: ONNX opset version, within what the installed PyTorch exports
            (:func:`onnx_opsets`).
        tolerance: largest max |logit difference| accepted.

    Returns:
        The export record (also in ``export.json``, under the file's name, and in the model
        card): file, run, format, input and output description, preprocessing,
        ``max_abs_diff``, ``parity_ok`` and ``weights_sha256`` (of the ``model.safetensors``
        exported).

    Raises:
        ConfigError: unknown format, negative tolerance, or an ONNX opset the installed
            PyTorch cannot export (checked before any work).
        RunError: ``run_dir`` is not a finished run, or is an ensemble folder.
        ParityError: the export's logits differ by more than ``tolerance``. The file and its
            record (``parity_ok: false``) are kept for inspection; the ONNX backend of the
            Predictor refuses such an export.
    """
    if format not in FORMATS:
        raise ConfigError(f"unknown export format '{format}'; use one of {', '.join(FORMATS)}")
    if not tolerance >= 0:
        raise ConfigError(f"export tolerance must be >= 0, got {tolerance}")
    if format == "onnx":
        check_opset(opset)
    check_not_ensemble(run_dir)
    predictor = Predictor(run_dir, backend="torch", device="cpu")
    digest = weights_digest(predictor.run_dir)  # of the weights the Predictor just loaded
    model = predictor.model
    assert model is not None
    path = Path(out) if out is not None else predictor.run_dir / FORMATS[format]
    x, source = parity_inputs(predictor)
    with atomic_path(path) as tmp:  # a failed export leaves the earlier file, not half a file
        if format == "onnx":
            runner = _export_onnx(model, x, tmp, opset)
        else:
            runner = _export_torchscript(model, x, tmp)
        _forget_records(predictor, path, format)  # before the file is replaced: see there
    diff = _max_abs_diff(model, runner, x)
    record = _record(predictor, format, path, opset, diff, source, len(x), tolerance)
    record["weights_sha256"] = digest
    _save_records(predictor, path, record)
    if not record["parity_ok"]:
        raise ParityError(
            f"{path}: parity check failed: exported logits differ from PyTorch by {diff:.2e} "
            f"(tolerance {tolerance:g}) on {source}; do not deploy this file",
            record,
        )
    return record


def _record(
    predictor: Predictor,
    format: str,
    path: Path,
    opset: int,
    diff: float,
    source: str,
    n: int,
    tolerance: float,
) -> dict[str, Any]:
    c, s = predictor.channels, predictor.img_size
    return {
        "format": format,
        "file": str(path.resolve()),
        "run": str(predictor.run_dir.resolve()),
        "opset": opset if format == "onnx" else None,
        "input": {"name": "input", "shape": ["batch", c, s, s], "dtype": "float32"},
        "output": {"name": "logits", "shape": ["batch", len(predictor.classes)]},
        "classes": predictor.classes,
        "preprocessing": preprocessing(predictor.card),
        "max_abs_diff": diff,
        "parity_ok": diff <= tolerance,
        "parity_tolerance": tolerance,
        "parity_inputs": source,
        "parity_samples": n,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "versions": {"cnnlab": __version__, "torch": torch.__version__},
    }


def drop_stale_exports(run_dir: Path) -> list[str]:
    """Delete the exports inside ``run_dir`` before its weights are replaced (a resume).

    They were made from weights that are about to be gone, so nothing could check or remake
    them; exports written elsewhere (``--out``) are left alone, their ``weights_sha256`` tells
    them apart. Returns the names removed.
    """
    names = {*FORMATS.values(), *export_records(run_dir / EXPORT_JSON), EXPORT_JSON}
    removed = sorted(n for n in names if (run_dir / n).is_file())
    for name in removed:
        (run_dir / name).unlink()
    return removed


def export_records(side: Path) -> dict[str, dict[str, Any]]:
    """The records of an ``export.json``, keyed by the name of the exported file beside it.

    Only files still there keep their record. A sidecar written before records were keyed by
    file (keyed ``onnx`` / ``torchscript``) is read through each record's ``file``; an
    unreadable one counts as empty (it is cnnlab's own file, rewritten at the next export).
    """
    try:
        entries = read_json(side) if side.is_file() else {}
    except CnnlabError:
        entries = {}
    out: dict[str, dict[str, Any]] = {}
    for key, record in entries.items() if isinstance(entries, dict) else []:
        if isinstance(record, dict):
            name = Path(str(record.get("file") or key)).name
            if (side.parent / name).is_file():
                out[name] = record
    return out


def _forget_records(predictor: Predictor, path: Path, format: str) -> None:
    """Drop the records of the file at ``path`` (in ``export.json`` and the model card) before
    a new export replaces it, so a process killed between the replacement and the new record
    leaves a file with no record (which the ONNX backend refuses), never the new file under
    the old file's ``parity_ok``."""
    side = path.parent / EXPORT_JSON
    entries = export_records(side)
    if entries.pop(path.name, None) is not None:
        write_json(side, entries)
    card_file = predictor.run_dir / MODEL_CARD
    card = read_json(card_file)
    old = (card.get("exports") or {}).get(format) or {}
    if old.get("file") and (predictor.run_dir / old["file"]).resolve() == path.resolve():
        del card["exports"][format]
        write_json(card_file, card)


def _save_records(predictor: Predictor, path: Path, record: dict[str, Any]) -> None:
    """``export.json`` beside the file and the card's ``exports`` (the run's latest export
    per format). The sidecar keeps one record per exported file, each naming its run: a
    folder given to ``--out`` may collect exports of several runs and formats, and a second
    file must not replace the first one's parity result and weights digest."""
    side = path.parent / EXPORT_JSON
    entries = export_records(side)
    entries[path.name] = record
    write_json(side, entries)
    card_file = predictor.run_dir / MODEL_CARD
    card = read_json(card_file)
    keys = ("file", "opset", "max_abs_diff", "parity_ok", "created", "weights_sha256")
    summary = {k: record[k] for k in keys}
    if path.resolve().parent == predictor.run_dir.resolve():
        summary["file"] = path.name  # relative: the run folder can be moved or copied
    card.setdefault("exports", {})[record["format"]] = summary
    write_json(card_file, card)
