"""Out-of-sample class probabilities for every image, by K-fold cross-validation.

Confident learning needs, for each image, probabilities from a model that never saw that
image. Two ways, both through the engine's own functions:

- ``features``: a pretrained backbone runs once over every image (``compute_features``,
  cached on disk, so a second run costs seconds), and a logistic regression is fitted per
  fold on the other folds (``fit_sklearn_head``). The fastest route that is good enough, and
  the default whenever the backbone's weights load offline.
- ``train``: the chosen model is trained per fold with ``engine.loop.train_full`` (a small
  part of the other folds picks its best epoch) and predicts the held-out fold through a
  ``Predictor``, exactly as a run's own evaluation does.
"""

from __future__ import annotations

import dataclasses
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cnnlab.console import counting, info, track
from cnnlab.errors import DataError

if TYPE_CHECKING:
    import torch

    from cnnlab.config import Config, TrainConfig
    from cnnlab.engine.setup import DataBundle, ModelBundle

INNER_VAL = 0.1  # share of each class of the training folds that picks the best epoch


@dataclass
class OutOfSample:
    """Probabilities ``(N, K)`` from models that did not see the image, and how they were made."""

    probs: np.ndarray
    features: np.ndarray | None  # (N, F) pretrained features, for the outlier score
    method: str  # one line for the report, e.g. "logistic regression on ... features"
    folds: int


def fold_assignments(labels: np.ndarray, folds: int, seed: int) -> list[np.ndarray]:
    """Held-out indices of each fold, stratified by class and seeded.

    Raises:
        DataError: fewer than 2 folds are possible (a class has a single image).
    """
    from sklearn.model_selection import StratifiedKFold

    smallest = int(np.bincount(labels).min())
    if smallest < 2:
        raise DataError(
            "a class has a single image: cross-validation needs at least 2 per class "
            "(add images or remove that class)"
        )
    if smallest < folds:
        info(f"folds: {folds} -> {smallest}, the size of the smallest class")
        folds = smallest
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return [test for _, test in splitter.split(np.zeros(len(labels)), labels)]


def _feature_pass(mb: ModelBundle, data: DataBundle, train: TrainConfig) -> tuple[Any, Any]:
    """The backbone and eval transform, in channels_last when ``train.channels_last`` allows:
    efficientnet_lite0's pass over 256 images at 128 px was measured here at 1.8x less CPU
    time in channels_last (its depthwise convolutions are faster in that layout)."""
    import torch

    from cnnlab.data.transforms import build_eval_transform
    from cnnlab.engine.precision import resolve_channels_last

    eval_tf = build_eval_transform(data.img_size, mb.mean, mb.std)
    if not resolve_channels_last(train.channels_last, train.accelerator):
        return mb.model.backbone, eval_tf

    def transform(batch: torch.Tensor) -> torch.Tensor:
        return eval_tf(batch).contiguous(memory_format=torch.channels_last)

    return mb.model.backbone.to(memory_format=torch.channels_last), transform


def features_probs(cfg: Config, data: DataBundle, folds: int) -> OutOfSample:
    """Logistic regression per fold on cached pretrained features."""
    import torch
    from threadpoolctl import threadpool_limits

    from cnnlab.engine.databundle import decode_all
    from cnnlab.engine.features import compute_features, fit_sklearn_head
    from cnnlab.engine.loop import feature_key
    from cnnlab.engine.precision import torch_device
    from cnnlab.engine.setup import build_model

    mb = build_model(cfg.model, len(data.classes), data.channels, data.img_size)
    backbone, transform = _feature_pass(mb, data, cfg.train)
    feats = compute_features(
        backbone,
        decode_all(data.images),
        transform,
        max(cfg.train.batch_size, 128),
        cache_key=feature_key(mb, data, "all", 1),
        device=torch_device(cfg.train.accelerator),
    ).numpy()
    seed, x, labels = cfg.train.seed, torch.from_numpy(feats), data.labels
    probs = np.zeros((len(labels), len(data.classes)))
    held = fold_assignments(labels.numpy(), folds, seed)
    # One BLAS thread: these matrices are small, and with two threads on a busy 2-core
    # machine each fit was measured 9x slower (threads waiting on each other).
    with threadpool_limits(1):
        for test in track(held, "cross-validating", total=len(held)):
            train = np.setdiff1d(np.arange(len(labels)), test)
            w, b = fit_sklearn_head(x[train], labels[train], "logreg", seed, len(data.classes))
            probs[test] = torch.softmax(x[test] @ w.T + b, dim=1).numpy()
    method = f"logistic regression on {mb.name} features ({data.img_size} px)"
    return OutOfSample(probs, feats, method, len(held))


def _inner_split(labels: np.ndarray, train: np.ndarray, seed: int) -> tuple[np.ndarray, ...]:
    """(fit, val): ``INNER_VAL`` of each class of ``train`` picks the best epoch.

    With too few images for that, validation runs on the training images themselves (it
    then only picks an epoch, never a held-out image's prediction).
    """
    rng = np.random.default_rng(seed)
    val = []
    for c in np.unique(labels[train]):
        members = train[labels[train] == c]
        n = int(len(members) * INNER_VAL)
        val.extend(rng.choice(members, n, replace=False).tolist() if n else [])
    if not val:
        return train, train
    return np.setdiff1d(train, val), np.asarray(sorted(val))


def _fold_probs(cfg: Config, fold: DataBundle, work: Path) -> torch.Tensor:
    """Train one fold's model with the engine, then predict its test part via a Predictor."""
    from cnnlab.engine.finalize import model_card
    from cnnlab.engine.loop import train_full
    from cnnlab.engine.setup import build_model, channel_stats
    from cnnlab.engine.trainer import seed_everything
    from cnnlab.models.state import save_weights
    from cnnlab.predict import Predictor
    from cnnlab.runs import CLASSES, MODEL_CARD, WEIGHTS, write_json

    seed_everything(cfg.train.seed)
    mb = build_model(cfg.model, len(fold.classes), fold.channels, fold.img_size,
                     data_stats=lambda: channel_stats(fold.subset("train")[0]))  # fmt: skip
    outcome = train_full(mb, fold, cfg.data, cfg.train, work)
    mb.model.eval()
    save_weights(mb.model, work / WEIGHTS)
    card = model_card(cfg, fold, mb, outcome)
    write_json(work / MODEL_CARD, card)
    write_json(work / CLASSES, fold.classes)
    x, _ = fold.tensor("test")
    return Predictor(work).predict_arrays(x, tta=card["tta"] is not None)


def trained_probs(cfg: Config, data: DataBundle, folds: int) -> OutOfSample:
    """Train the configured model on K-1 folds and predict the K-th, K times."""
    import torch

    labels = data.labels.numpy()
    probs = np.zeros((len(labels), len(data.classes)))
    held = fold_assignments(labels, folds, cfg.train.seed)
    with (
        tempfile.TemporaryDirectory(prefix="cnnlab-issues-") as tmp,
        counting("training one model per fold", len(held), show=False) as advance,
    ):  # each fold says its own line; the app's bar is told
        for k, test in enumerate(held):
            rest = np.setdiff1d(np.arange(len(labels)), test)
            info(f"fold {k + 1}/{len(held)}: training {cfg.model.name} on {len(rest)} images")
            fit, val = _inner_split(labels, rest, seed=k)
            parts = {"train": fit, "val": val, "test": test}
            index = {name: torch.from_numpy(rows) for name, rows in parts.items()}
            fold = dataclasses.replace(data, index=index)
            probs[test] = _fold_probs(cfg, fold, Path(tmp, f"fold{k}")).numpy()
            advance(1)
    method = f"{cfg.model.name} trained per fold ({cfg.train.epochs} epochs)"
    return OutOfSample(probs, None, method, len(held))
