"""Evaluation batch size on the CPU: a fixed pixel budget vs a cache-sized largest feature map.

Every evaluation pass (validation each epoch, the final evaluation, ``predict``, the app) runs
its network over batches. The batch used to be a fixed pixel budget (2^20 pixels, at most 256
images); on a CPU the activations of 256 small images spill out of the cache at every layer.
``cnnlab.batched.eval_batch_for`` now sizes the batch so its largest feature map is about
16 MiB. Measured side by side in one run, alternating, best of ``--repeats``: the same
forward pass (channels_last, inference mode, fp32, as the Predictor runs it) of N random
images through freshly built models at both batch sizes; the probabilities are compared too.

Usage: python bench/bench_eval_batch.py [--quick] [--repeats N]
"""

from __future__ import annotations

import argparse
import math
import time
from typing import Any

import torch

from common import ratio, save_result, table

CASES = (  # model, side, images
    ("cnn", 32, 1024),
    ("cnn", 64, 512),
    ("cnn", 128, 256),
    ("resnet18", 64, 512),
    ("resnet18", 128, 256),
    ("resnet18", 224, 128),
    ("efficientnet_lite0", 224, 128),
    ("mobilenetv3_small_100", 224, 128),
)


def pass_s(model: Any, x: torch.Tensor, batch: int) -> tuple[float, torch.Tensor]:
    """Seconds of one evaluation pass over ``x`` in batches of ``batch``, and its logits."""
    start = time.perf_counter()
    with torch.inference_mode():
        out = torch.cat([model(x[i : i + batch]) for i in range(0, len(x), batch)])
    return time.perf_counter() - start, out


def one_case(name: str, side: int, n: int, repeats: int) -> list[Any]:
    from cnnlab.batched import eval_batch_for
    from cnnlab.data.loaders import eval_batch_size
    from cnnlab.models.registry import create_model

    torch.manual_seed(0)
    model = create_model(name, 10, img_size=side).eval().to(memory_format=torch.channels_last)
    x = torch.randn(n, 3, side, side).contiguous(memory_format=torch.channels_last)
    old, new = eval_batch_size(side), eval_batch_for(model, 3, side, gpu=False)
    pass_s(model, x[:16], 8)  # warm-up
    best = {old: math.inf, new: math.inf}
    outs: dict[int, torch.Tensor] = {}
    for _ in range(repeats):
        for batch in (old, new):
            seconds, outs[batch] = pass_s(model, x, batch)
            best[batch] = min(best[batch], seconds)
    diff = float((outs[old] - outs[new]).abs().max())
    return [f"{name} {side} px", n, old, round(n / best[old]), new, round(n / best[new]),
            ratio(best[old], best[new]), f"{diff:.1e}"]  # fmt: skip


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two cases, one repeat")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    cases = CASES[:1] + CASES[3:4] if args.quick else CASES
    rows = [one_case(*case, repeats=1 if args.quick else args.repeats) for case in cases]
    headers = ["model", "images", "pixel-budget batch", "images/s", "cache-sized batch",
               "images/s", "speed-up", "max |logit diff|"]  # fmt: skip
    print(table(headers, rows), flush=True)
    speedups = [r[6] for r in rows if r[6]]
    geo = math.exp(sum(math.log(s) for s in speedups) / len(speedups)) if speedups else None
    print(f"geometric mean speed-up: {geo:.2f}x" if geo else "no speed-up measured")
    payload = {"rows": rows, "geometric_mean_speedup": geo}
    save_result("eval_batch", payload)
    return payload


if __name__ == "__main__":
    main()
