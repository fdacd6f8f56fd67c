"""BatchOutput: a batched pass's rows written into one tensor (cnnlab.batched)."""

from __future__ import annotations

import pytest
import torch

from cnnlab.batched import BatchOutput


def test_batches_land_in_order_in_one_float32_tensor() -> None:
    out = BatchOutput(7)
    pieces = [torch.arange(6, dtype=torch.bfloat16).view(3, 2) + 10 * i for i in range(2)]
    pieces.append(torch.tensor([[99.0, 98.0]], dtype=torch.float64))
    for piece in pieces:
        out.add(piece)
    result = out.result()
    assert result is not None and result.dtype == torch.float32 and result.shape == (7, 2)
    assert torch.equal(result, torch.cat([p.float() for p in pieces]))
    # one storage of exactly the rows: no per-batch piece is kept alive behind it
    assert result.untyped_storage().nbytes() == 7 * 2 * 4


def test_no_batch_gives_none_and_a_partial_pass_gives_its_rows() -> None:
    assert BatchOutput(0).result() is None
    assert BatchOutput(5).result() is None
    out = BatchOutput(5)
    out.add(torch.ones(2, 3))
    assert out.result().shape == (2, 3)


def test_more_rows_than_announced_is_an_error() -> None:
    out = BatchOutput(3)
    out.add(torch.ones(2, 1))
    with pytest.raises(ValueError, match="4 rows added to an output of 3"):
        out.add(torch.ones(2, 1))


def _wide_net() -> torch.nn.Module:
    """32 channels at full resolution, then pooled: its largest map is 32 x side x side."""
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 32, 3, padding=1),
        torch.nn.BatchNorm2d(32),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(32, 4),
    )


def test_cpu_evaluation_batches_keep_the_largest_feature_map_cache_sized() -> None:
    from cnnlab.batched import CPU_ACTIVATION_BYTES, eval_batch_for, largest_activation
    from cnnlab.data.loaders import eval_batch_size

    net = _wide_net().train()
    assert largest_activation(net, 3, 32) == 32 * 32 * 32
    assert net.training and not any(m._forward_hooks for m in net.modules())  # left as it was
    for side, expected in ((32, CPU_ACTIVATION_BYTES // (4 * 32 * 32 * 32)), (16, 256), (512, 8)):
        assert eval_batch_for(net, 3, side, gpu=False) == expected
    assert eval_batch_for(net, 3, 32, gpu=False) == 128  # not the pixel budget's 256
    # a GPU (and the ONNX backend, with no torch model) keeps the pixel budget
    assert eval_batch_for(net, 3, 32, gpu=True) == eval_batch_size(32) == 256
    assert eval_batch_for(None, 3, 64, gpu=False) == eval_batch_size(64)
