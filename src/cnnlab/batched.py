"""Batched evaluation passes: their outputs in one tensor, and their batch size on the CPU.

Why: a pass over many images (evaluation, ``predict``, the frozen feature pass) used to keep
each batch's output (features, probabilities) as its own tensor and ``torch.cat`` them at the
end. Those pieces are small (128 KiB of features per batch of 256) and each one is allocated
between the large activations that the batch then frees; glibc's allocator can neither reuse
nor return the heap around them. Measured (issue 18): a flip-TTA pass of the default ``cnn``
over 15,000 images at 32 px peaked at +379 MB and held +342 MB after it ended; writing into
one tensor allocated at the first batch: +77 MB peak, +12 MB after. That was most of the
+0.47 GB of ``finalize`` at 100,000 images against 2,000.

The batch size of an evaluation pass on the CPU (:func:`eval_batch_for`) follows the network's
largest feature map, so a batch's activations stay about cache-sized (bench_eval_batch.py).

Example:
    >>> import torch
    >>> out = BatchOutput(5)
    >>> out.add(torch.ones(2, 3))
    >>> out.add(torch.zeros(3, 3))
    >>> out.result().sum().item(), tuple(out.result().shape)
    (6.0, (5, 3))
"""

from __future__ import annotations

import torch


class BatchOutput:
    """Rows of ``total`` results, filled batch by batch into one CPU tensor.

    Args:
        total: rows the whole pass will produce (the number of inputs).
        dtype: the result's dtype (each batch is converted on copy; default float32).
    """

    def __init__(self, total: int, dtype: torch.dtype = torch.float32) -> None:
        self.total = total
        self.dtype = dtype
        self.filled = 0
        self._out: torch.Tensor | None = None

    def add(self, batch: torch.Tensor) -> None:
        """Copy one batch's rows (any device or dtype) into place, after the previous ones."""
        n = int(batch.shape[0])
        if self._out is None:
            self._out = torch.empty((self.total, *batch.shape[1:]), dtype=self.dtype)
        if self.filled + n > self.total:
            raise ValueError(f"{self.filled + n} rows added to an output of {self.total}")
        self._out[self.filled : self.filled + n].copy_(batch.detach())
        self.filled += n

    def result(self) -> torch.Tensor | None:
        """The rows added so far (all of them once every batch is in); None if none were."""
        if self._out is None:
            return None
        return self._out if self.filled == self.total else self._out[: self.filled]


# Largest activation of one CPU evaluation batch: about half of a 32 MiB L3 cache. Measured
# (bench/bench_eval_batch.py): a batch whose biggest feature map stays near this size runs the
# default cnn 1.4-1.6x faster than a fixed pixel budget, whose batches of 256 small images
# spill every layer out of the cache.
CPU_ACTIVATION_BYTES = 16 * 2**20


def largest_activation(model: torch.nn.Module, channels: int, side: int) -> int:
    """Elements of the largest output of any leaf module for one ``side``-px image (a dry run)."""
    sizes: list[int] = []

    def record(_module: torch.nn.Module, _inputs: object, output: object) -> None:
        if isinstance(output, torch.Tensor):
            sizes.append(output.numel())

    leaves = [m for m in model.modules() if not any(True for _ in m.children())]
    hooks = [m.register_forward_hook(record) for m in leaves]
    was_training = model.training
    device = next(model.parameters(), torch.zeros(0)).device
    try:
        model.eval()  # batch norm refuses a batch of one in training mode
        with torch.inference_mode():
            model(torch.zeros(1, channels, side, side, device=device))
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    return max(sizes, default=0)


def eval_batch_for(model: torch.nn.Module | None, channels: int, side: int, gpu: bool) -> int:
    """Images per evaluation batch of ``model`` on ``side``-px inputs.

    On a GPU (or without a torch model: ONNX) a fixed pixel budget
    (:func:`cnnlab.data.loaders.eval_batch_size`): big batches keep it busy. On the CPU the
    batch whose largest feature map is about :data:`CPU_ACTIVATION_BYTES`, 8 to 256 images:
    what fits the cache depends on the network (the default cnn keeps 32 channels at full
    resolution, a ResNet divides the side by 4 at once), not on the pixels alone.
    """
    from cnnlab.data.loaders import eval_batch_size

    if gpu or model is None:
        return eval_batch_size(side)
    largest = largest_activation(model, channels, side)
    if largest <= 0:
        return eval_batch_size(side)
    return max(8, min(256, CPU_ACTIVATION_BYTES // (4 * largest)))
