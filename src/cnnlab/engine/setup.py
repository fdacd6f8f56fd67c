"""The first half of ``fit``: from a config to cached tensors and a ready model.

Each function takes the config section it needs, not the whole config, so studies and the
tuner can call them with their own values.
"""

from __future__ import annotations

import dataclasses
import hashlib
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from cnnlab.config import DataConfig, ModelConfig
from cnnlab.console import info, warn
from cnnlab.errors import ConfigError, DataError

SPLITS = ("train", "val", "test")

# Lightning 2.6 trips over its own deprecation of torch's LeafSpec on every run; it is not
# actionable for a cnnlab user, so keep it out of their console.
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
# Frozen backbones are kept in eval mode on purpose (their batch norm must not update).
warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")


@dataclass
class DataBundle:
    """Everything the engine needs from the data: uint8 tensors, labels and split indices."""

    root: Path
    classes: list[str]
    paths: list[str]  # relative to root, aligned with images/labels
    images: torch.Tensor  # uint8 (N, C, resize, resize)
    labels: torch.Tensor  # int64 (N,)
    index: dict[str, torch.Tensor]  # split name -> indices into images
    img_size: int
    resize: int
    channels: int
    split: Any  # cnnlab.data.split.Split, saved as split.csv
    scan: Any  # cnnlab.data.scan.ScanResult, saved as data_report.json
    cache_key: str
    skipped_at_load: list[Any] = field(default_factory=list)
    audit: dict[str, Any] = field(default_factory=dict)

    def subset(self, split: str) -> tuple[Any, torch.Tensor]:
        """Images and labels of one split: a uint8 tensor, or ``LazyImages`` with cache=off."""
        idx = self.index[split]
        if isinstance(self.images, torch.Tensor):
            return self.images[idx], self.labels[idx]
        lazy = dataclasses.replace(self.images, paths=[self.images.paths[i] for i in idx.tolist()])
        return lazy, self.labels[idx]

    def count(self, split: str) -> int:
        return int(self.index[split].numel())

    def tensor(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Like :meth:`subset` but always decoded (evaluation, features, statistics)."""
        images, labels = self.subset(split)
        return materialize(images), labels


def materialize(images: Any) -> torch.Tensor:
    """Decode ``LazyImages`` (cache=off) into a tensor; tensors pass through untouched."""
    if isinstance(images, torch.Tensor):
        return images
    return torch.stack([images.load(i) for i in range(len(images))])


def resolve_geometry(data: DataConfig, default_img_size: int) -> tuple[int, int, int]:
    """(img_size, resize, channels): the model's input side and the side images are stored at."""
    img_size = data.img_size or default_img_size
    resize = max(img_size, round(img_size / data.crop_pct))
    return img_size, resize, data.channels or 3


def prepare_data(
    data: DataConfig, seed: int, default_img_size: int, split_file: Path | None = None
) -> DataBundle:
    """Scan, split, audit and decode the dataset once into a uint8 tensor cache."""
    from cnnlab.data.cache import build_cache
    from cnnlab.data.scan import print_scan_summary, scan_dataset
    from cnnlab.data.split import load_split, make_split

    if data.root is None:
        raise DataError("no dataset folder given (data.root)")
    scan = scan_dataset(data.root, max_pixels=data.max_pixels, min_side=data.min_image_side)
    print_scan_summary(scan)
    split_path = split_file or (Path(data.split_file) if data.split_file else None)
    if split_path is not None:
        split = load_split(split_path, scan)
        if split.new_files:
            info(
                f"{split.new_files} file(s) in the folder are not in {split_path} and are left "
                "out, so this run sees exactly the images of the runs it is compared with"
            )
    else:
        split = make_split(
            scan,
            data.val_fraction,
            data.test_fraction,
            seed,
            drop_small_classes=data.drop_small_classes,
        )
    img_size, resize, channels = resolve_geometry(data, default_img_size)
    root = Path(scan.root)
    samples = list(split.samples)
    cache = build_cache(
        root,
        [root / s.path for s in samples],
        side=resize,
        channels=channels,
        mode=data.cache,
        max_pixels=data.max_pixels,
        min_side=data.min_image_side,
    )
    keep = list(cache.keep)
    samples = [samples[i] for i in keep]
    labels = torch.tensor([s.label for s in samples], dtype=torch.int64)
    names = [s.split for s in samples]
    index = {
        name: torch.tensor([i for i, s in enumerate(names) if s == name], dtype=torch.int64)
        for name in SPLITS
    }
    _check_splits(index, split.classes, labels)
    bundle = DataBundle(
        root=root,
        classes=list(split.classes),
        paths=[s.path for s in samples],
        images=cache.images,
        labels=labels,
        index=index,
        img_size=img_size,
        resize=resize,
        channels=channels,
        split=split,
        scan=scan,
        skipped_at_load=list(cache.failed),
        cache_key=_cache_key(root, samples, resize, channels),
    )
    if data.audit:
        bundle.audit = _quick_audit(scan, split)
    return bundle


def _check_splits(index: dict[str, torch.Tensor], classes: list[str], labels: torch.Tensor) -> None:
    if index["train"].numel() == 0:
        raise DataError("the training split is empty: add images or lower the val/test fractions")
    if index["val"].numel() == 0:
        raise DataError(
            "the validation split is empty: set data.val_fraction > 0 or add a "
            "val/ folder; it picks the best epoch"
        )
    present = set(labels[index["train"]].tolist())
    missing = [classes[i] for i in range(len(classes)) if i not in present]
    if missing:
        raise DataError(f"classes with no training image: {', '.join(missing)}")


def _cache_key(root: Path, samples: list[Any], resize: int, channels: int) -> str:
    """A stable name for this exact set of decoded images (used by the feature cache)."""
    h = hashlib.sha256(f"{root.resolve()}|{resize}|{channels}".encode())
    for s in samples:
        h.update(f"{s.path}|{s.label}|{s.split}\n".encode())
    return h.hexdigest()[:24]


def _quick_audit(scan: Any, split: Any) -> dict[str, Any]:
    """Duplicates, leakage and label conflicts, summarised in a line or two at train start."""
    from cnnlab.data.audit import audit_dataset

    found = audit_dataset(scan, split)
    leaks = found.get("leakage", [])
    conflicts = found.get("label_conflicts", [])
    if leaks:
        warn(
            f"{len(leaks)} image(s) appear in more than one split (leakage); "
            "see `cnnlab data inspect` for the paths"
        )
    if conflicts:
        warn(f"{len(conflicts)} image(s) appear under more than one class (label conflicts)")
    return found


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
) -> ModelBundle:
    """Create the network, load pretrained weights if asked and apply the transfer mode."""
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
    use_data_stats = not pretrained and data_mean is not None and data_std is not None
    mean = tuple(data_mean) if use_data_stats else tuple(info_.mean)  # type: ignore[arg-type]
    std = tuple(data_std) if use_data_stats else tuple(info_.std)  # type: ignore[arg-type]
    if len(mean) != channels:
        mean, std = _match_channels(mean, channels), _match_channels(std, channels)
    source = getattr(model, "weights_source", None) if pretrained else None
    if pretrained:
        info(f"pretrained weights: {source}")
    return ModelBundle(model, cfg.name, mode, pretrained, source, create_kwargs, mean, std)


def _match_channels(values: tuple[float, ...], channels: int) -> tuple[float, ...]:
    if channels == 1:
        return (sum(values) / len(values),)
    return tuple(values[0] for _ in range(channels)) if len(values) == 1 else values[:channels]


def channel_stats(images: Any, max_images: int = 2048) -> tuple[tuple[float, ...], ...]:
    """Per-channel mean and std (0..1 scale) of uint8 images, on an even sample of them."""
    step = max(1, len(images) // max_images)
    if isinstance(images, torch.Tensor):
        picked = images[::step]
    else:
        picked = torch.stack([images.load(i) for i in range(0, len(images), step)])
    sample = picked.float().div_(255)
    mean = sample.mean(dim=(0, 2, 3))
    std = sample.std(dim=(0, 2, 3)).clamp_min(1e-3)
    return tuple(round(v, 5) for v in mean.tolist()), tuple(round(v, 5) for v in std.tolist())


def prepare(cfg: Any, split_file: Path | None = None) -> tuple[DataBundle, ModelBundle]:
    """Seed, then the data and the model for a config: everything before training."""
    from cnnlab.engine.trainer import seed_everything

    seed_everything(cfg.train.seed)
    defaults = model_defaults(cfg.model.name)  # fails fast on an unknown model name
    data = prepare_data(cfg.data, cfg.train.seed, defaults.default_img_size, split_file)
    mean, std = channel_stats(data.subset("train")[0])
    mb = build_model(cfg.model, len(data.classes), data.channels, data.img_size, mean, std)
    return data, mb
