"""Class activation maps of a trained run, computed by the ``grad-cam`` package.

:class:`Explainer` wraps a :class:`cnnlab.predict.Predictor`, so an image is decoded,
resized, cropped and normalised exactly as in prediction and validation; the CAM is for the
pixels the model really saw (``img_size`` x ``img_size``). Maps are float32 in ``[0, 1]``
(the package scales each map to its own maximum), one per image.

Example:
    >>> ex = Explainer("runs/cnn-scratch", method="gradcam")  # doctest: +SKIP
    >>> out = ex.explain(["cat.jpg"])  # doctest: +SKIP
    >>> out[0].label, out[0].cam.shape  # doctest: +SKIP
    ('cat', (32, 32))
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cnnlab.atomic import atomic_path
from cnnlab.errors import ConfigError, ImageLoadError
from cnnlab.explain.layers import AUTO, resolve_layer

# cnnlab name -> class name in pytorch_grad_cam
METHODS = {
    "gradcam": "GradCAM",
    "gradcam++": "GradCAMPlusPlus",
    "scorecam": "ScoreCAM",
    "eigencam": "EigenCAM",
}
_BATCH = 32  # images per CAM pass: bounds the activations and gradients held at once


@dataclass
class Explanation:
    """The CAM of one image, with what the model predicted and which class was explained."""

    key: str | int  # the file path, or the position of an in-memory input
    label: str  # predicted class
    prob: float  # probability of the predicted class
    target: str  # class whose evidence the map shows
    target_prob: float
    cam: np.ndarray  # float32 (img_size, img_size) in [0, 1]
    image: np.ndarray  # uint8 (img_size, img_size, C): the crop the model saw


def _cam_class(method: str) -> Any:
    import pytorch_grad_cam

    if method not in METHODS:
        raise ConfigError(f"unknown CAM method '{method}'; use one of {', '.join(METHODS)}")
    return getattr(pytorch_grad_cam, METHODS[method])


@contextlib.contextmanager
def _gradients_from(model: torch.nn.Module, layer: torch.nn.Module) -> Iterator[None]:
    """Backpropagate only from the logits down to ``layer``'s output.

    A CAM needs the gradient at the layer's output, not the weights' gradients nor anything
    below the layer. The layer's output is made a leaf that requires grad (a forward hook,
    registered before the CAM's own hooks, so they see the leaf) and every parameter stops
    requiring grad for the duration: backward then skips the early, high-resolution convs,
    most of its cost. The maps are unchanged.
    """
    params = list(model.parameters())
    flags = [p.requires_grad for p in params]
    handle = layer.register_forward_hook(lambda _m, _i, out: out.detach().requires_grad_(True))
    try:
        for p in params:
            p.requires_grad_(False)
        with torch.enable_grad():
            yield
    finally:
        handle.remove()
        for p, flag in zip(params, flags, strict=True):
            p.requires_grad_(flag)


class Explainer:
    """A run's model with a CAM method attached to one layer.

    Args:
        predictor: a :class:`~cnnlab.predict.Predictor` (torch backend), or a run folder.
        method: ``gradcam``, ``gradcam++``, ``scorecam`` or ``eigencam``.
        layer: a layer name from :func:`cnnlab.explain.layers.trace_layers`, or ``auto``
            (the last convolutional stage).
    """

    def __init__(self, predictor: Any, method: str = "gradcam", layer: str = AUTO) -> None:
        from cnnlab.data.transforms import build_eval_transform
        from cnnlab.predict import Predictor

        if not isinstance(predictor, Predictor):
            from cnnlab.ensemble.folder import is_ensemble

            if is_ensemble(predictor):
                raise ConfigError(
                    f"{predictor} is an ensemble: explain its member runs one at a time"
                )
            predictor = Predictor(predictor)
        self.predictor = predictor
        if self.predictor.model is None:
            raise ConfigError("explanations need the torch backend, not onnx")
        self.method = method
        self.cam_class = _cam_class(method)
        self.model = self.predictor.model
        self.classes = self.predictor.classes
        self.layer, self.module = resolve_layer(
            self.model, layer, self.predictor.img_size, self.predictor.channels
        )
        # mean 0, std 1/255: the eval transform's crop/resize with pixel values left in 0..255,
        # so overlays show the very pixels the model saw.
        self.pixels = build_eval_transform(self.predictor.img_size, [0.0], [1 / 255])

    def class_index(self, label: str) -> int:
        """Index of a class name; an unknown name lists the classes.

        The name is NFC-normalised as the data scan normalises class folders, so a name
        typed or pasted in NFD (macOS file names) is the same class.
        """
        from cnnlab.data.walk import nfc

        if nfc(label) not in self.classes:
            raise ConfigError(f"unknown class '{label}'; the model knows {', '.join(self.classes)}")
        return self.classes.index(nfc(label))

    def cams(
        self, images_u8: torch.Tensor, targets: Sequence[int] | None = None
    ) -> tuple[np.ndarray, torch.Tensor]:
        """CAMs ``(N, img_size, img_size)`` and class probabilities ``(N, K)``.

        Args:
            images_u8: uint8 ``(N, C, resize, resize)``, as stored by the cache or ``load``.
            targets: class index to explain per image; None explains each predicted class.
        """
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        maps, probs = [], []
        with _gradients_from(self.model, self.module):
            cam = self.cam_class(model=self.model, target_layers=[self.module])
            cam.batch_size = _BATCH  # used by ScoreCAM for its masked forward passes
            try:
                for start in range(0, images_u8.shape[0], _BATCH):
                    batch = images_u8[start : start + _BATCH].to(self.predictor.device)
                    chunk = None if targets is None else targets[start : start + _BATCH]
                    wanted = (
                        None if chunk is None else [ClassifierOutputTarget(int(t)) for t in chunk]
                    )
                    maps.append(cam(input_tensor=self.predictor.transform(batch), targets=wanted))
                    probs.append(torch.softmax(cam.outputs.detach().float(), dim=1).cpu())
            finally:
                cam.activations_and_grads.release()
        if not maps:
            return np.zeros((0, self.predictor.img_size, self.predictor.img_size)), torch.zeros(
                0, len(self.classes)
            )
        return np.concatenate(maps).astype(np.float32), torch.cat(probs)

    def model_pixels(self, images_u8: torch.Tensor) -> np.ndarray:
        """uint8 ``(N, img_size, img_size, C)``: the centre crops the model saw."""
        with torch.no_grad():
            x = self.pixels(images_u8).round().clamp(0, 255).to(torch.uint8)
        return x.permute(0, 2, 3, 1).cpu().numpy()

    def explain_arrays(
        self, images_u8: torch.Tensor, keys: Sequence[str | int], target: str | None = None
    ) -> list[Explanation]:
        """Explanations for uint8 ``(N, C, resize, resize)`` images; see :meth:`explain`.

        The predicted class and its probability come from the Predictor, with the run's own
        TTA, so they are those of ``cnnlab predict`` and the report (the CAM pass alone sees
        only the unflipped image); by default the map explains that class.
        """
        probs = self.predictor.predict_arrays(images_u8).float().cpu()
        preds = [int(p) for p in probs.argmax(dim=1)]
        targets = preds if target is None else [self.class_index(target)] * len(keys)
        maps, _ = self.cams(images_u8, targets)
        pixels = self.model_pixels(images_u8)
        out = []
        for i, key in enumerate(keys):
            pred, t = preds[i], targets[i]
            out.append(
                Explanation(
                    key=key,
                    label=self.classes[pred],
                    prob=float(probs[i, pred]),
                    target=self.classes[t],
                    target_prob=float(probs[i, t]),
                    cam=maps[i],
                    image=pixels[i],
                )
            )
        return out

    def explain(
        self, inputs: Any, target: str | None = None
    ) -> tuple[list[Explanation], list[dict[str, str]]]:
        """CAMs for files, folders (recursed), PIL images or arrays.

        Args:
            inputs: anything :meth:`cnnlab.predict.Predictor.predict` accepts.
            target: class name to explain for every image; None: each image's predicted class.

        Returns:
            ``(explanations, skipped)``: one :class:`Explanation` per readable image, in input
            order, and ``{"path", "reason"}`` for each file that could not be read.
        """
        arrays, keys, skipped = [], [], []
        for i, x in enumerate(self.predictor.expand(inputs)):
            key: str | int = x if isinstance(x, str) else i
            try:
                arrays.append(self.predictor.load(x))
                keys.append(key)
            except ImageLoadError as exc:
                skipped.append({"path": str(key), "reason": exc.reason})
        if not arrays:
            return [], skipped
        stack = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
        return self.explain_arrays(stack, keys, target), skipped


def overlay(image: np.ndarray, cam: np.ndarray, side: int = 0) -> np.ndarray:
    """The CAM as a heatmap over the image (``grad-cam``'s ``show_cam_on_image``), uint8 RGB.

    Args:
        image: uint8 ``(H, W, C)`` with C 1 or 3.
        cam: float ``(H, W)`` in ``[0, 1]``.
        side: draw at this side in pixels (images of 32 px are unreadable at 1:1); 0 keeps H.
    """
    from PIL import Image
    from pytorch_grad_cam.utils.image import show_cam_on_image

    rgb = np.repeat(image, 3, axis=2) if image.shape[2] == 1 else image
    if side and side != rgb.shape[0]:
        rgb = np.asarray(Image.fromarray(rgb).resize((side, side), Image.Resampling.BICUBIC))
        resized = Image.fromarray(cam.astype(np.float32)).resize(
            (side, side), Image.Resampling.BILINEAR
        )
        cam = np.asarray(resized)
    cam = np.clip(cam, 0.0, 1.0).astype(np.float32)
    return show_cam_on_image(rgb.astype(np.float32) / 255.0, cam, use_rgb=True)


def save_side_by_side(path: Path, image: np.ndarray, cam: np.ndarray, side: int) -> Path:
    """``[image | overlay]`` as one PNG, each ``side`` px square."""
    from PIL import Image

    rgb = np.repeat(image, 3, axis=2) if image.shape[2] == 1 else image
    left = np.asarray(Image.fromarray(rgb).resize((side, side), Image.Resampling.NEAREST))
    gap = np.full((side, 4, 3), 255, dtype=np.uint8)
    canvas = np.concatenate([left, gap, overlay(image, cam, side)], axis=1)
    with atomic_path(path, durable=False) as tmp:  # rebuilt by running explain again
        Image.fromarray(canvas).save(tmp, format="PNG")
    return path
