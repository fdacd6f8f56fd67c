"""DataLoaders over decoded uint8 tensors: one tensor index per batch, seeded order.

``ArrayDataset.__getitems__`` lets the DataLoader fetch a whole batch with one fancy index
instead of B ``__getitem__`` calls and a ``torch.stack``: on a 2-core CPU that Python
overhead is otherwise a visible share of an epoch. The loader stays a plain ``DataLoader``
so Lightning can swap in a ``DistributedSampler`` under DDP.

Example:
    >>> loader = make_loader(images, labels, 128, shuffle=True, seed=0)  # doctest: +SKIP
    >>> x, y = next(iter(loader))  # uint8 (128, C, S, S), int64 (128,)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from cnnlab.console import warn
from cnnlab.data.cache import LazyImages
from cnnlab.errors import ImageLoadError

Batch = tuple[torch.Tensor, torch.Tensor]


class ArrayDataset(Dataset[Batch]):
    """uint8 images ``(N, C, S, S)`` with int64 labels; batches come from one index op."""

    def __init__(self, images: torch.Tensor, labels: Sequence[int] | torch.Tensor) -> None:
        self.images = images
        self.labels = torch.as_tensor(labels, dtype=torch.int64)
        if len(self.labels) != len(images):
            raise ValueError(f"{len(images)} images but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> Batch:
        return self.images[i], self.labels[i]

    def __getitems__(self, indices: list[int]) -> Batch:
        idx = torch.as_tensor(indices, dtype=torch.int64)
        return self.images[idx], self.labels[idx]


class FileDataset(Dataset[Any]):
    """``cache="off"``: decodes in workers; a bad file is skipped with a warning naming it."""

    def __init__(self, images: LazyImages, labels: Sequence[int] | torch.Tensor) -> None:
        self.images = images
        self.labels = torch.as_tensor(labels, dtype=torch.int64)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        try:
            return self.images.load(i), self.labels[i]
        except ImageLoadError as exc:  # deleted or damaged since the scan: skip, name it
            warn(f"{exc}; skipped this epoch")
            return None


class EpochShuffle(Sampler[int]):
    """A fresh permutation each epoch drawn from ``seed + epoch`` alone.

    Lightning calls ``set_epoch`` before every epoch, also after a resume, so epoch k of a
    resumed run sees exactly the order epoch k of an uninterrupted run saw; a generator
    seeded once would instead depend on how many epochs it had already served.
    """

    def __init__(self, n: int, seed: int) -> None:
        self.n = n
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(torch.randperm(self.n, generator=generator).tolist())

    def __len__(self) -> int:
        return self.n


EVAL_PIXELS = 2**20  # pixels per evaluation batch (64 images of 128 px, 256 of 64 px)


def eval_batch_size(side: int, largest: int = 256) -> int:
    """Images per evaluation batch for ``side``-px inputs: a fixed pixel budget, so the
    activations of a forward pass (which grow with batch x side^2) stay about the same at
    any input size; 256 images of 128 px would hold gigabytes of activations."""
    return max(8, min(largest, EVAL_PIXELS // max(1, side * side)))


def _whole_batch(batch: Batch) -> Batch:
    """The dataset already built the batch; module-level so workers can pickle it."""
    return batch


def _stack_present(samples: list[tuple[torch.Tensor, torch.Tensor] | None]) -> Batch:
    kept = [s for s in samples if s is not None]
    if not kept:
        return torch.empty(0, dtype=torch.uint8), torch.empty(0, dtype=torch.int64)
    return torch.stack([s[0] for s in kept]), torch.stack([s[1] for s in kept])


def make_loader(
    images: torch.Tensor | LazyImages,
    labels: Sequence[int] | torch.Tensor,
    batch_size: int,
    shuffle: bool,
    seed: int,
    drop_last: bool = False,
    num_workers: int = 0,
) -> DataLoader[Any]:
    """A DataLoader yielding ``(uint8 (B, C, S, S), int64 (B,))``; same seed, same batches.

    ``num_workers`` only matters for lazily decoded images (``cache="off"``); a decoded
    tensor is indexed faster in the main process than it could be shipped from a worker.
    """
    generator = torch.Generator().manual_seed(seed)
    if isinstance(images, LazyImages):
        return DataLoader(
            FileDataset(images, labels),
            batch_size=batch_size,
            shuffle=shuffle,
            drop_last=drop_last,
            num_workers=num_workers,
            generator=generator,
            collate_fn=_stack_present,
            persistent_workers=num_workers > 0,
        )
    dataset = ArrayDataset(images, labels)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=EpochShuffle(len(dataset), seed) if shuffle else None,
        drop_last=drop_last,
        generator=generator,
        collate_fn=_whole_batch,
    )
