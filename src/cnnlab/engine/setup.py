"""The first half of ``fit``: from a config to cached tensors and a ready model.

Each function takes the config section it needs, not the whole config, so studies and the
tuner can call them with their own values. The data half lives in
:mod:`cnnlab.engine.databundle`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from cnnlab.config import ModelConfig
from cnnlab.console import info
from cnnlab.engine.databundle import DataBundle, decode_lazy, guard_runs_dir, prepare_data
from cnnlab.errors import ConfigError

__all__ = ["DataBundle", "ModelBundle", "prepare", "prepare_data"]  # DataBundle: re-exported


@dataclass
class ModelBundle:
    """The network plus what the model card and the engine need to know about it."""

    model: torch.nn.Module
    name: str
    mode: str
    pretrained: bool
    weights_source: str | None
    create_kwargs: dict[str, Any]
    mean: tuple[float, ...]
    std: tuple[float, ...]


def model_defaults(name: str) -> Any:
    """The registry's facts about a model (default image size, mode, normalisation)."""
    from cnnlab.models.registry import model_info

    return model_info(name)


def build_model(
    cfg: ModelConfig,
    num_classes: int,
    channels: int,
    img_size: int,
    data_mean: tuple[float, ...] | None = None,
    data_std: tuple[float, ...] | None = None,
    normalize: bool = True,
    data_stats: Callable[[], tuple[tuple[float, ...], tuple[float, ...]]] | None = None,
) -> ModelBundle:
    """Create the network, load pretrained weights if asked and apply the transfer mode.

    ``normalize=False`` keeps pixels in 0..1 (mean 0, std 1): the un-normalised baseline of
    a regularisation ladder. It is saved in the model card, so predict does the same.
    ``data_stats`` gives ``(mean, std)`` of the training images when no ``data_mean`` is
    passed; it is called only for a model that uses them (from scratch, normalised), as it
    reads the whole training split (seconds at 224 px, each trial of a tune).
    """
    from cnnlab.models.registry import create_model
    from cnnlab.models.transfer import apply_mode, resolve_mode, resolve_pretrained

    mode = resolve_mode(cfg.name, cfg.mode)
    pretrained = resolve_pretrained(cfg.pretrained, mode)
    if cfg.weights is not None:
        if mode == "scratch":
            raise ConfigError(
                "model.weights starts from trained weights but model.mode=scratch "
                "means random ones; use finetune, frozen or partial:N"
            )
        pretrained = True  # a weights file is a pretrained start, whatever pretrained says
    if cfg.head in ("logreg", "svm") and mode != "frozen":
        raise ConfigError(
            f"model.head={cfg.head} is fitted on frozen features; "
            "add model.mode=frozen or use head=linear|mlp"
        )
    create_kwargs: dict[str, Any] = {
        "name": cfg.name,
        "num_classes": num_classes,
        "in_chans": channels,
        "head": cfg.head,
        "head_hidden": cfg.head_hidden,
        "head_activation": cfg.head_activation,
        "head_dropout": cfg.head_dropout,
    }
    if cfg.name == "cnn":
        create_kwargs["cnn_spec"] = cfg.cnn.model_dump()
    info_ = model_defaults(cfg.name)
    if info_.kind == "cnnlab":
        create_kwargs["img_size"] = img_size  # dense layers of our CNNs are sized to the input
    model = create_model(**create_kwargs, pretrained=pretrained, weights=cfg.weights)
    apply_mode(model, mode)
    # Pretrained networks expect the statistics they were trained with; from-scratch models
    # are normalised with the training images' own statistics.
    if not pretrained and normalize and data_mean is None and data_stats is not None:
        data_mean, data_std = data_stats()
    use_data_stats = not pretrained and data_mean is not None and data_std is not None
    mean = tuple(data_mean) if use_data_stats else tuple(info_.mean)  # type: ignore[arg-type]
    std = tuple(data_std) if use_data_stats else tuple(info_.std)  # type: ignore[arg-type]
    if len(mean) != channels:
        mean, std = _match_channels(mean, channels), _match_channels(std, channels)
    if not normalize:
        mean, std = (0.0,) * channels, (1.0,) * channels
    source = getattr(model, "weights_source", None) if pretrained else None
    if pretrained:
        info(f"pretrained weights: {source}")
    return ModelBundle(
        model, cfg.name, mode, pretrained, _shareable_source(source), create_kwargs, mean, std
    )


def _shareable_source(source: str | None) -> str | None:
    """``file:/home/me/w.pth`` -> ``file:w.pth``: the model card never names the user's
    folders (the full path was printed at load time)."""
    if source and source.startswith("file:"):
        return "file:" + Path(source[5:]).name
    return source


def _match_channels(values: tuple[float, ...], channels: int) -> tuple[float, ...]:
    if channels == 1:
        return (sum(values) / len(values),)
    return tuple(values[0] for _ in range(channels)) if len(values) == 1 else values[:channels]


def channel_stats(
    images: Any, max_images: int = 2048, chunk: int = 128
) -> tuple[tuple[float, ...], ...]:
    """Per-channel mean and std (0..1 scale) of uint8 images, on an even sample of them.

    Sums run over ``chunk`` images at a time in float64, so the statistics of a memory-mapped
    split cost one chunk of float pixels (25 MB at 128 px), not a float copy of the sample.
    """
    step = max(1, len(images) // max_images)
    if not isinstance(images, torch.Tensor):  # cache=off: files gone since the scan left out
        images = decode_lazy(dataclasses.replace(images, paths=images.paths[::step]))[0]
        step = 1
    picked = images[::step]  # a strided view: nothing is read yet
    total = sq = None
    count = 0
    for start in range(0, len(picked), chunk):
        x = picked[start : start + chunk].to(torch.float64).div_(255)
        s, s2 = x.sum(dim=(0, 2, 3)), x.square().sum(dim=(0, 2, 3))
        total, sq = (s, s2) if total is None else (total + s, sq + s2)
        count += x.numel() // x.shape[1]
    mean = total / count
    var = (sq - count * mean.square()) / max(count - 1, 1)  # unbiased, as Tensor.std
    std = var.clamp_min(0).sqrt().clamp_min(1e-3)
    return tuple(round(v, 5) for v in mean.tolist()), tuple(round(v, 5) for v in std.tolist())


def prepare(cfg: Any, split_file: Path | None = None) -> tuple[DataBundle, ModelBundle]:
    """Seed, then the data and the model for a config: everything before training."""
    from cnnlab.cachedir import configure
    from cnnlab.engine.trainer import seed_everything

    guard_runs_dir(cfg)
    configure(cfg.cache.max_gb)
    seed_everything(cfg.train.seed)
    defaults = model_defaults(cfg.model.name)  # fails fast on an unknown model name
    data = prepare_data(cfg.data, defaults.default_img_size, split_file)
    mb = build_model(
        cfg.model, len(data.classes), data.channels, data.img_size,
        normalize=cfg.data.normalize,
        data_stats=lambda: channel_stats(data.subset("train")[0]),
    )  # fmt: skip
    return data, mb
