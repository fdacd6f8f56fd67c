"""The data half of ``fit``: check the dataset, split it, decode it once into tensors.

``prepare_data`` runs the same :func:`cnnlab.data.check.check_dataset` as ``cnnlab data
inspect``, refuses a folder with blocking problems before any work (one error listing all of
them), prints the warnings the data layer returns, and decodes every image once.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from cnnlab.config import DataConfig
from cnnlab.console import info, warn
from cnnlab.errors import DataError

SPLITS = ("train", "val", "test")


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
    check: Any = None  # cnnlab.data.check.DataCheck: problems and split seed for the report

    def subset(self, split: str) -> tuple[Any, torch.Tensor]:
        """Images and labels of one split: a uint8 tensor, or ``LazyImages`` with cache=off.

        ``prepare_data`` stores each split's images as one run of rows, so the tensor is a
        slice, a view of the cache (its memory map on disk): no split is copied into RAM.
        """
        idx = self.index[split]
        if isinstance(self.images, torch.Tensor):
            rows = contiguous(idx)
            images = self.images[rows] if rows is not None else self.images[idx]
            return images, self.labels[idx]
        lazy = dataclasses.replace(self.images, paths=[self.images.paths[i] for i in idx.tolist()])
        return lazy, self.labels[idx]

    def count(self, split: str) -> int:
        return int(self.index[split].numel())

    def tensor(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Like :meth:`subset` but always decoded (evaluation, features, statistics).

        With cache=off a file deleted or damaged since the scan is left out: warned with its
        path, added to ``skipped_at_load`` and dropped from ``index``, so the paths of
        ``index[split]`` stay aligned with the returned rows.
        """
        images, labels = self.subset(split)
        if isinstance(images, torch.Tensor):
            return images, labels
        x, keep, failed = decode_lazy(images)
        if failed:
            from cnnlab.data.cache import failed_lines

            for line in failed_lines(failed, "since the scan (final evaluation)"):
                warn(line)
            self.skipped_at_load.extend(failed)
            self.index[split] = self.index[split][keep]
        return x, labels[keep]

    def report(self) -> dict[str, Any]:
        """The run's ``data_report.json``: the same document ``cnnlab data inspect`` writes."""
        from cnnlab.data.check import data_report

        splits = {name: self.count(name) for name in SPLITS}
        return data_report(self.check, splits, self.skipped_at_load)


def decode_all(images: Any) -> torch.Tensor:
    """Every image as a uint8 tensor (a tensor passes through; ``LazyImages`` are decoded).

    For callers that need all rows aligned with the scan (``data issues``): a file gone or
    damaged since the scan is an error naming it, never a silent shift of the rows.

    Raises:
        DataError: an image can no longer be read.
    """
    if isinstance(images, torch.Tensor):
        return images
    x, _, failed = decode_lazy(images)
    if failed:
        raise DataError(
            f"{len(failed)} image(s) changed since the scan, e.g. {failed[0].path} "
            f"({failed[0].reason}); run the command again"
        )
    return x


def contiguous(idx: torch.Tensor) -> slice | None:
    """``idx`` as a slice when it is one ascending run of rows (a view, not a copy), else None."""
    n = int(idx.numel())
    if n == 0:
        return slice(0, 0)
    first, last = int(idx[0]), int(idx[-1])
    if last - first + 1 != n or not bool((idx.diff() == 1).all()):
        return None
    return slice(first, last + 1)


def decode_lazy(images: Any) -> tuple[torch.Tensor, list[int], list[Any]]:
    """Decode ``LazyImages`` (cache=off): the images that still load, their positions, and
    a ``Skipped`` for each file gone or damaged since the scan."""
    from cnnlab.data.scan import Skipped
    from cnnlab.errors import ImageLoadError

    rows, keep, failed = [], [], []
    for i in range(len(images)):
        try:
            rows.append(images.load(i))
            keep.append(i)
        except ImageLoadError as exc:
            failed.append(Skipped(images.paths[i], exc.reason))
    if not rows:
        raise DataError(f"none of {len(images)} images can be read any more; rescan the folder")
    return torch.stack(rows), keep, failed


def resolve_geometry(data: DataConfig, default_img_size: int) -> tuple[int, int, int]:
    """(img_size, resize, channels): the model's input side and the side images are stored at."""
    img_size = data.img_size or default_img_size
    resize = max(img_size, round(img_size / data.crop_pct))
    return img_size, resize, data.channels or 3


def prepare_data(
    data: DataConfig, default_img_size: int, split_file: Path | None = None
) -> DataBundle:
    """Scan, split, audit and decode the dataset once into a uint8 tensor cache.

    Every problem that would stop training is found first and raised as one DataError; the
    split is seeded by ``data.split_seed`` alone, so the training seed never moves it.
    """
    from cnnlab.data.audit import audit_warnings
    from cnnlab.data.check import check_dataset
    from cnnlab.data.scan import print_scan_summary

    split_path = split_file or (Path(data.split_file) if data.split_file else None)
    check = check_dataset(data, split_path, audit=data.audit)
    scan, split = check.scan, check.split
    print_scan_summary(scan)
    for line in check.notes:
        info(line)
    check.raise_blocking()
    for line in [*check.warnings, *audit_warnings(check.audit, _inspect_hint(data))]:
        warn(line)
    if split.new_files:
        info(
            f"{split.new_files} file(s) in the folder are not in {split_path} and are left "
            "out, so this run sees exactly the images of the runs it is compared with"
        )
    img_size, resize, channels = resolve_geometry(data, default_img_size)
    root = Path(scan.root)
    sha = {r.path: r.sha1 for r in scan.records}
    # one run of rows per split (train, val, test): each split is a slice of the cache
    order = {name: i for i, name in enumerate(SPLITS)}
    ordered = sorted(split.samples, key=lambda s: order.get(s.split, len(SPLITS)))
    samples, cache = _decode(data, root, ordered, sha, resize, channels)
    labels = torch.tensor([s.label for s in samples], dtype=torch.int64)
    names = [s.split for s in samples]
    index = {
        name: torch.tensor([i for i, s in enumerate(names) if s == name], dtype=torch.int64)
        for name in SPLITS
    }
    _check_splits(index, split.classes, labels)
    return DataBundle(
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
        cache_key=_cache_key(root, samples, sha, resize, channels),
        audit=check.audit,
        check=check,
    )


def _decode(
    data: DataConfig,
    root: Path,
    samples: list[Any],
    sha: dict[str, str],
    resize: int,
    channels: int,
) -> tuple[list[Any], Any]:
    """Decode the split's images once (cache keyed on their content hashes); returns the
    samples that decoded and the ``ImageCache``."""
    from cnnlab.data.cache import build_cache
    from cnnlab.data.check import max_file_bytes

    cache = build_cache(
        root,
        [s.path for s in samples],
        side=resize,
        channels=channels,
        mode=data.cache,
        max_pixels=data.max_pixels,
        min_side=data.min_image_side,
        hashes=[sha[s.path] for s in samples],
        max_bytes=max_file_bytes(data.max_file_mb),
    )
    if cache.reused:
        info(f"reusing decoded image cache {cache.path.name if cache.path else ''}")
    for line in cache.warnings:
        warn(line)
    return [samples[i] for i in cache.keep], cache


def _inspect_hint(data: DataConfig) -> str:
    """Where the paths behind an audit warning are listed (the run writes them too)."""
    exclude = f" data.exclude={data.exclude}" if data.exclude else ""
    return (
        f"`cnnlab data inspect {data.root}{exclude}` lists the paths (also in the run's "
        "data_report.json)"
    )


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


def _cache_key(
    root: Path, samples: list[Any], sha: dict[str, str], resize: int, channels: int
) -> str:
    """A stable name for this exact set of decoded images (used by the feature cache).

    It covers each file's content hash, so features are recomputed for an image replaced
    in place even when its size and mtime were kept.
    """
    h = hashlib.sha256(f"{root.resolve()}|{resize}|{channels}".encode())
    for s in samples:
        h.update(f"{s.path}|{sha[s.path]}|{s.label}|{s.split}\n".encode())
    return h.hexdigest()[:24]


def guard_runs_dir(cfg: Any) -> None:
    """Keep run folders out of the dataset: refuse a ``runs_dir`` set inside it; move the
    default ``runs`` (relative to the working folder) beside the dataset when the user works
    from inside it. Updates ``cfg.runs_dir`` so the saved config says where runs went."""
    from cnnlab.paths import dataset_folder, outside_dataset

    if cfg.data.root is None:
        return
    dataset = dataset_folder(cfg.data.root)
    given = Path(cfg.runs_dir) if "runs_dir" in cfg.model_fields_set else None
    where = outside_dataset(given, Path(cfg.runs_dir), dataset, "runs_dir")
    if given is None and where != Path(cfg.runs_dir):
        info(f"run folders go to {where}: '{cfg.runs_dir}' here would be inside the dataset")
        cfg.runs_dir = str(where)
