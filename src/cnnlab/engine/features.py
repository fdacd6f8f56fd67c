"""Frozen-backbone fast path: compute features once, cache them, fit heads on them.

A frozen backbone gives the same features every epoch, so running it each epoch wastes
nearly all of the time. ``compute_features`` runs it once (eval mode, no grad) and caches the
``(N, F)`` result as safetensors; heads (linear, mlp, scikit-learn probes) then train in
seconds on the cached matrix. Each entry also records a digest of the backbone's weights, so
an entry made by other weights under the same key (a randomly initialised backbone with
another seed, a weights file overwritten in place) is recomputed, never reused.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from torch import nn

from cnnlab.atomic import atomic_path
from cnnlab.batched import BatchOutput
from cnnlab.console import counting, info, warn
from cnnlab.errors import DataError, ModelError

Transform = Callable[[torch.Tensor], torch.Tensor]


def _cache_file(cache_key: str) -> Path:
    from cnnlab.paths import cache_dir

    return cache_dir("features") / f"{cache_key}.safetensors"


def weights_digest(module: nn.Module) -> str:
    """A short digest of every parameter and buffer: which weights produced a cache entry.

    Hashing is a few milliseconds per million weights, far less than one forward pass over a
    dataset, and it catches what a name-based key cannot (a random init with another seed).
    """
    h = hashlib.blake2b(digest_size=16)
    for name, tensor in module.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _load_cached(file: Path, expected_rows: int, views: int, digest: str) -> torch.Tensor | None:
    """The cached features, or None when absent, unreadable, another shape or other weights."""
    if not file.is_file():
        return None
    from safetensors import safe_open

    try:
        with safe_open(str(file), framework="pt") as fh:
            if (fh.metadata() or {}).get("weights") != digest:
                return None
            feats = fh.get_tensor("features")
    except Exception:  # a corrupt or foreign cache file is simply rebuilt
        return None
    want_dims = 3 if views > 1 else 2
    if feats.ndim != want_dims or feats.shape[-2] != expected_rows:
        return None
    if views > 1 and feats.shape[0] != views:
        return None
    from cnnlab.cachedir import touch

    touch(file)  # in use: least-recently-used eviction and `cache clean` spare it
    return feats


def _save_cached(file: Path, feats: torch.Tensor, digest: str) -> None:
    """Write atomically so a crash never leaves a half cache entry (not fsynced: rebuildable).

    A cache that cannot be written (full or read-only disk) costs time, not correctness: the
    run goes on with a warning.
    """
    from safetensors.torch import save

    blob = save({"features": feats.contiguous()}, metadata={"weights": digest})
    try:
        with atomic_path(file, durable=False) as tmp:
            tmp.write_bytes(blob)
    except OSError as exc:
        warn(
            f"feature cache not written ({exc.strerror}: {file}); features are recomputed next time"
        )


def _autocast(device: torch.device, precision: str | None) -> contextlib.AbstractContextManager:
    if precision and precision.startswith("bf16"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    if precision and precision.startswith("16"):
        return torch.autocast(device.type, dtype=torch.float16)
    return contextlib.nullcontext()


def _run_backbone(
    backbone: nn.Module,
    images: torch.Tensor,
    transform: Transform,
    batch_size: int,
    precision: str | None,
    device: torch.device,
    view: str = "view 1/1",
) -> torch.Tensor:
    total = images.shape[0]
    out = BatchOutput(total)  # one tensor, not per-batch pieces: see cnnlab.batched
    with (
        torch.no_grad(),
        _autocast(device, precision),
        counting(f"computing features ({view})", total) as advance,
    ):
        for start in range(0, total, batch_size):
            x = transform(images[start : start + batch_size].to(device))
            if x.ndim == 4:  # the convolutions' fast layout: ~1.8x for EfficientNet-Lite0 on
                x = x.contiguous(memory_format=torch.channels_last)  # CPU, as the Predictor
            out.add(backbone(x))
            advance(x.shape[0])
    feats = out.result()
    if feats is None:
        raise DataError("no images to compute features for (the split is empty)")
    return feats


def compute_features(
    backbone: nn.Module,
    images_u8: torch.Tensor,
    transform: Transform,
    batch_size: int,
    cache_key: str | None = None,
    precision: str | None = None,
    views: int = 1,
    train_transform: Transform | None = None,
    seed: int = 0,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Backbone features of uint8 images, computed once and cached on disk.

    Args:
        backbone: image -> pooled features; run in eval mode (its mode is restored after).
        images_u8: uint8 ``(N, C, S, S)`` images.
        transform: uint8 batch -> normalised float batch (the eval transform).
        batch_size: images per forward pass.
        cache_key: name of the cache entry under ``$CNNLAB_CACHE/features``; the caller
            makes it unique to the backbone, the images and the input size; an entry made
            by other weights or another precision is recomputed. None: no caching.
        precision: ``bf16...``/``16...`` run under autocast; None or ``32``: fp32.
        views: 1 returns ``(N, F)``; K > 1 returns ``(K, N, F)`` where view 0 uses
            ``transform`` and views 1..K-1 use ``train_transform`` (augmented copies for
            training a head on a frozen backbone).
        train_transform: the augmenting transform, required when ``views > 1``.
        seed: seeds the augmentation of the extra views, so a cache entry is reproducible.
        device: where the pass runs (the backbone is moved there for it and back after);
            None: the GPU when CUDA has one, else the CPU (see ``precision.torch_device``).
    """
    if views > 1 and train_transform is None:
        raise ModelError("compute_features(views>1) needs a train_transform for the extra views")
    file = _cache_file(cache_key) if cache_key else None
    # Features depend on the weights and the numeric precision, beside what the key names.
    digest = f"{weights_digest(backbone)}/{precision or '32'}" if file else ""
    cached = _load_cached(file, images_u8.shape[0], views, digest) if file else None
    if cached is not None:
        info(f"features: {images_u8.shape[0]} images x {views} view(s) loaded from the cache")
        return cached
    from cnnlab.engine.precision import torch_device

    run_on = torch.device(device) if device is not None else torch_device()
    was_training = backbone.training
    backbone.eval()
    try:
        out = []
        with (
            on_device(run_on, backbone, transform, train_transform),
            torch.random.fork_rng(),  # view 1 (the eval transform) draws no random numbers
        ):
            torch.manual_seed(seed)
            for k in range(1, views + 1):
                tf = transform if k == 1 else train_transform
                view = f"view {k}/{views}"
                out.append(
                    _run_backbone(backbone, images_u8, tf, batch_size, precision, run_on, view)
                )
    finally:
        backbone.train(was_training)
    feats = torch.stack(out) if views > 1 else out[0]
    if file is not None:
        _save_cached(file, feats, digest)
        info(f"features: {images_u8.shape[0]} images x {views} view(s) computed and cached")
    return feats


@contextlib.contextmanager
def on_device(device: torch.device, *objects: object) -> Iterator[None]:
    """Move the ``nn.Module``s among ``objects`` to ``device`` for the block, then back.

    The caller's model stays where it was: a trained model lives on the CPU between passes,
    and a transform holds its mean and std as buffers that must sit beside the images.
    """
    modules = [m for m in objects if isinstance(m, nn.Module)]
    homes = [_device_of(m) for m in modules]
    try:
        for module in modules:
            module.to(device)
        yield
    finally:
        for module, home in zip(modules, homes, strict=True):
            module.to(home)


def _device_of(module: nn.Module) -> torch.device:
    """Where a module's first parameter or buffer lives (the CPU for one with neither)."""
    for tensor in (*module.parameters(), *module.buffers()):
        return tensor.device
    return torch.device("cpu")


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run the block on one CPU thread (torch's intra-op pool), then restore the count.

    Training a head on cached features is many tiny matrix products; split over two threads
    each waits for the other, worse when the machine is busy. Measured on this project's
    2-core machine under load (load average ~5): 90 AdamW steps of a linear head on 1,280
    features took 0.07 s on one thread and 0.7-4.9 s on two.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _sklearn_model(kind: str, seed: int):  # returns a scikit-learn estimator
    if kind == "logreg":
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(C=1.0, max_iter=2000, random_state=seed)
    if kind == "svm":
        from sklearn.svm import LinearSVC

        return LinearSVC(C=1.0, max_iter=5000, random_state=seed)
    raise ModelError(f"unknown scikit-learn head '{kind}'; valid: logreg, svm")


def fit_sklearn_head(
    features: torch.Tensor,
    labels: torch.Tensor,
    kind: str,
    seed: int = 0,
    num_classes: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fit a logistic-regression or linear-SVM probe and return it as linear-layer weights.

    Features are standardised for the fit, and the standardisation is folded back into the
    weights, so ``features @ weight.T + bias`` equals the estimator's ``decision_function``
    on raw features (for two classes: logit 1 is the decision, logit 0 is zero). A class
    absent from ``labels`` gets a zero row and a very low bias, so it is never predicted.

    Returns:
        ``(weight (K, F), bias (K,))`` as float32 CPU tensors.
    """
    import numpy as np

    x = features.detach().double().cpu().numpy()
    y = labels.detach().cpu().numpy().astype(np.int64)
    present = np.unique(y)
    if present.size < 2:
        raise DataError(
            f"a {kind} head needs at least two classes in the training split, "
            f"got {present.tolist()}"
        )
    k = int(num_classes or int(y.max()) + 1)
    mu, sd = x.mean(0), x.std(0)
    sd[sd < 1e-12] = 1.0  # constant features: leave them unscaled (their weight is ~0)
    est = _sklearn_model(kind, seed).fit((x - mu) / sd, y)
    coef, icpt = np.atleast_2d(est.coef_) / sd, np.atleast_1d(est.intercept_)
    icpt = icpt - coef @ mu
    weight, bias = np.zeros((k, x.shape[1])), np.full(k, -1e4)
    if present.size == 2:  # binary: one decision function d -> logits (0, d)
        weight[est.classes_[1]], bias[est.classes_[1]] = coef[0], icpt[0]
        bias[est.classes_[0]] = 0.0
    else:
        weight[est.classes_], bias[est.classes_] = coef, icpt
    return torch.from_numpy(weight).float(), torch.from_numpy(bias).float()


def load_linear_head(head: nn.Module, weight: torch.Tensor, bias: torch.Tensor) -> None:
    """Copy probe weights into a head's final linear layer (``head.fc`` or the head itself)."""
    fc = getattr(head, "fc", head)
    if not isinstance(fc, nn.Linear):
        raise ModelError("load_linear_head needs a linear head (model.head=logreg or svm)")
    if (
        tuple(fc.weight.shape) != tuple(weight.shape)
        or fc.bias is None
        or tuple(fc.bias.shape) != tuple(bias.shape)
    ):
        raise ModelError(
            f"probe weights {tuple(weight.shape)} do not fit the head's {tuple(fc.weight.shape)}"
        )
    hidden = getattr(head, "hidden", nn.Identity())
    if not isinstance(hidden, nn.Identity):
        raise ModelError("a scikit-learn probe replaces a linear head, not an mlp head")
    with torch.no_grad():
        fc.weight.copy_(weight.to(fc.weight))
        fc.bias.copy_(bias.to(fc.bias))
