"""Predict with a finished run: files, folders, file bytes, PIL images or arrays -> labels and
probabilities.

:class:`Predictor` reads only the run folder (``model.json``, ``model.safetensors``,
``classes.json`` and, for ONNX, the exported file). It rebuilds the network through the model
registry without downloading anything, and preprocesses exactly as validation did during
training: ``load_image`` -> ``to_array(resize)`` -> the eval transform (centre crop to
``img_size``, normalise with the card's mean/std). A file's bytes (an upload to the web app)
are decoded the way the file is, at the run's own size (a JPEG's draft scale depends on it).
An unreadable file becomes an ``error`` entry in the results; it never stops the batch.

Example:
    >>> p = Predictor("runs/cnn-scratch")  # doctest: +SKIP
    >>> p.predict(["cat.jpg", "photos/"], top_k=3)  # doctest: +SKIP
    [{'path': 'cat.jpg', 'label': 'cat', 'prob': 0.97, 'top_k': [('cat', 0.97), ...]}, ...]
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from cnnlab.batched import BatchOutput, eval_batch_for
from cnnlab.data.image import load_image, load_image_bytes, pil_from_any, to_array
from cnnlab.data.walk import IMAGE_EXTS, is_ignored
from cnnlab.errors import ConfigError, ImageLoadError, RunError
from cnnlab.runs import MODEL_CARD, WEIGHTS, load_run, weights_digest

BACKENDS = ("torch", "onnx")
ONNX_FILE = "model.onnx"


@dataclass
class Item:
    """One input after decoding: its key (path or index) and array, or why it failed."""

    key: str | int
    array: np.ndarray | None = None  # uint8 (resize, resize, C)
    error: str = ""


def _key_name(key: str | int) -> str:
    return "path" if isinstance(key, str) else "index"


def top_k_count(top_k: int, num_classes: int) -> int:
    """How many classes to list: ``top_k``, at most every class (a larger k lists them all).

    Raises:
        ConfigError: ``top_k`` is below 1.
    """
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ConfigError(f"top_k must be an integer >= 1 (classes to list), got {top_k!r}")
    return min(top_k, num_classes)


def iter_image_files(folder: Path) -> list[Path]:
    """Image files under ``folder`` (recursively, sorted), skipping hidden entries and OS junk."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not is_ignored(d))
        for name in sorted(filenames):
            if not is_ignored(name) and Path(name).suffix.lower() in IMAGE_EXTS:
                found.append(Path(dirpath, name))
    return found


def build_model(card: dict[str, Any], weights: Path) -> torch.nn.Module:
    """Rebuild the card's network (never downloading weights) and load the run's weights."""
    from cnnlab.models.registry import create_model
    from cnnlab.models.state import load_weights

    kwargs = dict(card.get("create_kwargs") or {})
    if "name" not in kwargs:
        raise RunError(f"{weights.parent / 'model.json'}: no create_kwargs.name; re-train the run")
    kwargs.update(pretrained=False)
    kwargs.pop("weights", None)
    return load_weights(create_model(**kwargs), weights).eval()


class Predictor:
    """A trained run folder, ready to classify images with the torch or ONNX backend."""

    def __init__(
        self, run_dir: str | Path, backend: str = "torch", device: str | torch.device | None = None
    ) -> None:
        if backend not in BACKENDS:
            raise ConfigError(f"unknown backend '{backend}'; use one of {', '.join(BACKENDS)}")
        from cnnlab.data.transforms import build_eval_transform

        run = load_run(run_dir)
        self.run_dir = run.path
        self.card: dict[str, Any] = run.model_card
        self.classes: list[str] = run.classes
        inp = self.card["input"]
        self.img_size, self.resize = int(inp["img_size"]), int(inp["resize"])
        self.channels = int(inp["channels"])
        self.mean, self.std = tuple(inp["mean"]), tuple(inp["std"])
        # The run's test-time augmentation (model.json "tta"): the default everywhere, so
        # predict, eval and the report give the same numbers unless asked otherwise.
        self.tta = self.card.get("tta") == "hflip"
        self.backend = backend
        # the accelerator when there is one: evaluation and prediction are batched forward
        # passes; ONNX Runtime runs its own (CPU) session, fed from the CPU
        from cnnlab.engine.precision import torch_device

        default = torch_device() if backend == "torch" else torch.device("cpu")
        self.device = torch.device(device) if device is not None else default
        self.transform = build_eval_transform(self.img_size, self.mean, self.std).to(self.device)
        self.model: torch.nn.Module | None = None
        self.session: Any = None
        if backend == "torch":
            # channels_last: the convolutions' fast layout on CPU and GPU (~1.6x for the
            # default cnn at 32 px, bench/RESULTS.md section 12); results equal within float
            # rounding (~1e-7)
            model = build_model(self.card, self.run_dir / WEIGHTS).to(self.device)
            self.model = model.to(memory_format=torch.channels_last)
        else:
            self.session = _onnx_session(self.run_dir, self.card)
        self.eval_batch = eval_batch_for(
            self.model, self.channels, self.img_size, gpu=self.device.type != "cpu"
        )  # images per batch of an evaluation pass: see cnnlab.batched

    def load(self, x: Any) -> np.ndarray:
        """One file, its bytes, a PIL image or an array -> the uint8 ``(resize, resize, C)``
        array training saw. A file and its bytes give the same pixels."""
        if isinstance(x, str | os.PathLike):
            img = load_image(x, channels=self.channels, draft_side=self.resize)
        elif isinstance(x, bytes):
            img = load_image_bytes(x, "<bytes>", channels=self.channels, draft_side=self.resize)
        else:
            img = pil_from_any(x, channels=self.channels)
        return to_array(img, self.resize)

    def expand(self, inputs: Any) -> list[str | int | Any]:
        """Inputs as a flat list: folders become their image files, a single input a list."""
        if isinstance(inputs, str | os.PathLike | bytes | Image.Image) or (
            isinstance(inputs, np.ndarray) and inputs.ndim in (2, 3)
        ):
            inputs = [inputs]
        flat: list[Any] = []
        for x in inputs:
            if isinstance(x, str | os.PathLike) and Path(x).is_dir():
                flat.extend(str(p) for p in iter_image_files(Path(x)))
            elif isinstance(x, os.PathLike):
                flat.append(str(x))
            else:
                flat.append(x)
        return flat

    def _decode(self, inputs: Iterable[Any], offset: int = 0) -> list[Item]:
        items = []
        for i, x in enumerate(inputs, start=offset):
            key: str | int = x if isinstance(x, str) else i
            try:
                items.append(Item(key, self.load(x)))
            except ImageLoadError as exc:
                items.append(
                    Item(key, error=exc.reason + (f" ({exc.detail})" if exc.detail else ""))
                )
        return items

    @torch.inference_mode()
    def predict_arrays(
        self, images_u8: Any, tta: bool | None = None, batch_size: int | None = None
    ) -> torch.Tensor:
        """Class probabilities ``(N, K)`` for uint8 images ``(N, C, resize, resize)``.

        The eval transform (centre crop, normalise) runs here, so pass the stored pixels, not
        normalised tensors. ``tta`` averages the probabilities with the horizontal flip;
        ``None`` uses the run's own setting (:attr:`tta`, from the model card).
        """
        return self.predict_with_features(images_u8, tta, batch_size, features=False)[0]

    @torch.inference_mode()
    def predict_with_features(
        self,
        images_u8: Any,
        tta: bool | None = None,
        batch_size: int | None = None,
        features: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """:meth:`predict_arrays` plus the backbone's features ``(N, F)`` of the same pass.

        The features are those of the unflipped images (what the embedding plot shows), taken
        on the way to the probabilities instead of in a second pass over the split. None with
        the ONNX backend or ``features=False``.
        """
        tta = self.tta if tta is None else tta
        plain, flipped, feats = self._passes(images_u8, batch_size, features, flip=tta)
        if flipped is not None:
            plain = (plain + flipped) / 2
        return plain, feats

    @torch.inference_mode()
    def predict_flip_pair(
        self, images_u8: Any, batch_size: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Probabilities of the images and of their left-right flips, apart, and the features.

        The two passes flip TTA averages, kept separate so that a caller can see whether the
        average helps (``finalize`` decides ``eval.tta=auto`` on the validation split this way)
        at the cost of the TTA pass itself.
        """
        plain, flipped, feats = self._passes(images_u8, batch_size, True, flip=True)
        assert flipped is not None
        return plain, flipped, feats

    def _passes(
        self, images_u8: Any, batch_size: int | None, features: bool, flip: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Batched forward passes: probabilities, those of the flipped images (``flip``), and
        the unflipped images' backbone features (``features`` and the torch backend)."""
        batch_size = batch_size or self.eval_batch  # activations, not images
        images = torch.as_tensor(images_u8)
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ConfigError(
                f"predict_arrays wants uint8 (N, C, H, W), got {images.dtype} {tuple(images.shape)}"
            )
        keep = features and self.model is not None
        total = images.shape[0]
        # one tensor each: see batched.py
        out, out_flip, feats = BatchOutput(total), BatchOutput(total), BatchOutput(total)
        for start in range(0, total, batch_size):
            x = self.transform(images[start : start + batch_size].to(self.device))
            probs, f = self._probs(x, keep)
            if f is not None:
                feats.add(f)
            out.add(probs)
            if flip:
                out_flip.add(self._probs(torch.flip(x, dims=[-1]))[0])
        plain = out.result()
        if plain is None:
            empty = torch.zeros(0, len(self.classes))
            return empty, (empty if flip else None), None
        return plain, (out_flip.result() if flip else None), feats.result()

    def _probs(self, x: torch.Tensor, keep: bool = False) -> tuple[torch.Tensor, Any]:
        """Softmax of the logits, and the backbone features when ``keep`` (torch backend)."""
        if self.session is not None:
            name = self.session.get_inputs()[0].name
            logits = torch.from_numpy(self.session.run(None, {name: x.cpu().numpy()})[0])
            return torch.softmax(logits.float(), dim=1), None
        assert self.model is not None
        if not keep:
            return torch.softmax(self.model(x).float(), dim=1), None
        feats = self.model.backbone(x)  # Classifier.forward is head(backbone(x))
        return torch.softmax(self.model.head(feats).float(), dim=1), feats

    def predict(
        self, inputs: Any, top_k: int = 5, tta: bool | None = None, batch_size: int = 64
    ) -> list[dict[str, Any]]:
        """Classify files, folders (recursed), image files' bytes, PIL images or arrays; bad
        files get ``error``.

        ``tta=None`` (default) uses the run's test-time augmentation, as the report did, so
        the probabilities match ``predictions/test.csv``; pass True/False to override.

        Returns:
            One dict per input image, in order: ``{"path" (or "index"), "label", "prob",
            "top_k": [(label, prob), ...]}``, or ``{"path", "error": reason}``. ``top_k``
            above the number of classes lists every class.

        Raises:
            ConfigError: ``top_k`` below 1.
        """
        top_k = top_k_count(top_k, len(self.classes))
        flat = self.expand(inputs)
        results: list[dict[str, Any]] = []
        # decode one batch, classify it, keep only the results: memory stays one batch of
        # pixels however many files there are
        for start in range(0, len(flat), batch_size):
            items = self._decode(flat[start : start + batch_size], offset=start)
            good = [it for it in items if it.array is not None]
            probs = torch.zeros(0, len(self.classes))
            if good:
                stack = np.stack([it.array for it in good])  # type: ignore[misc]
                probs = self.predict_arrays(
                    torch.from_numpy(stack).permute(0, 3, 1, 2).contiguous(),
                    tta=tta,
                    batch_size=batch_size,
                )
            results.extend(self._results(items, probs, top_k))
        return results

    def _results(
        self, items: Sequence[Item], probs: torch.Tensor, top_k: int
    ) -> list[dict[str, Any]]:
        values, indices = probs.topk(top_k, dim=1) if len(probs) else (probs, probs)
        results, row = [], 0
        for it in items:
            if it.array is None:
                results.append({_key_name(it.key): it.key, "error": it.error})
                continue
            top = [
                (self.classes[int(j)], float(v))
                for v, j in zip(values[row], indices[row], strict=True)
            ]
            results.append(
                {_key_name(it.key): it.key, "label": top[0][0], "prob": top[0][1], "top_k": top}
            )
            row += 1
        return results


def _onnx_session(run_dir: Path, card: dict[str, Any]) -> Any:
    """An onnxruntime session on the run's exported model (made by ``cnnlab export``).

    Only the file recorded in the card's ``exports.onnx`` entry is used, and only while the
    run's ``model.safetensors`` is the one it was exported from (the recorded SHA-256): a
    resumed run has new weights, and an old ``model.onnx`` would answer for the old ones.

    Raises:
        RunError: no export recorded, the file is gone, it failed its parity check, or it
            was made from other weights; the message says to export again.
    """
    import onnxruntime as ort

    again = f"export it again with `cnnlab export {run_dir} --format onnx`"
    record = (card.get("exports") or {}).get("onnx") or {}
    if not record.get("file"):
        raise RunError(f"{run_dir / MODEL_CARD}: no ONNX export recorded; {again}")
    path = run_dir / record["file"]  # an absolute path stays absolute
    if not path.is_file():
        raise RunError(f"{path}: missing; {again}")
    if record.get("parity_ok") is False:
        raise RunError(
            f"{path} failed its parity check against PyTorch (max |diff| "
            f"{record.get('max_abs_diff')}); {again}"
        )
    if record.get("weights_sha256") != weights_digest(run_dir):
        raise RunError(
            f"{path} was not exported from the run's current {WEIGHTS} (trained on since, "
            f"or exported by an older cnnlab); {again}"
        )
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def load_predictor(path: str | Path, backend: str = "torch") -> Any:
    """A :class:`Predictor` for a run folder, or an ``EnsemblePredictor`` for an ensemble."""
    from cnnlab.ensemble.folder import is_ensemble

    if is_ensemble(path):
        from cnnlab.ensemble.predictor import EnsemblePredictor

        return EnsemblePredictor(path, backend=backend)
    return Predictor(path, backend=backend)
