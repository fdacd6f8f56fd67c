"""Precision: fp32 vs bf16 autocast + channels_last, training and inference, side by side.

Measures images/s of a training step (forward, backward, SGD step) and of inference for
ResNet-18 and efficientnet_lite0 (timm definitions, the ones cnnlab's registry wraps) on
random batches, so only the arithmetic differs between the columns. bf16 only pays off
where the CPU has native bf16 (AVX512-BF16 / AMX); the machine's flags are printed with the
table. ``train.precision=auto`` in cnnlab should pick whichever column wins here.

Usage: python bench/bench_precision.py [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
from typing import Any

import torch

from common import best_of, cpu_flags, save_result, table

MODELS = {"resnet18": 128, "efficientnet_lite0": 128}  # name -> input side (px)
VARIANTS = ("fp32", "fp32+cl", "bf16+cl")


def make_model(name: str, channels_last: bool) -> torch.nn.Module:
    """A randomly initialised timm model (weights do not change the arithmetic cost)."""
    import timm

    model = timm.create_model(name, pretrained=False, num_classes=10)
    return model.to(memory_format=torch.channels_last) if channels_last else model


def _autocast(variant: str) -> contextlib.AbstractContextManager[Any]:
    if variant.startswith("bf16"):
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def measure(name: str, variant: str, batch: int, steps: int) -> tuple[float, float]:
    """(train images/s, inference images/s) for one model and precision variant."""
    torch.manual_seed(0)
    cl = variant.endswith("+cl")
    side = MODELS[name]
    model = make_model(name, cl)
    x = torch.randn(batch, 3, side, side)
    x = x.contiguous(memory_format=torch.channels_last) if cl else x
    y = torch.randint(0, 10, (batch,))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def train_steps() -> None:
        model.train()
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            with _autocast(variant):
                loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()

    def infer_steps() -> None:
        model.eval()
        with torch.inference_mode(), _autocast(variant):
            for _ in range(steps):
                model(x)

    train_s = best_of(train_steps, repeats=1, warmup=1)
    infer_s = best_of(infer_steps, repeats=1, warmup=1)
    return batch * steps / train_s, batch * steps / infer_s


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps: a smoke run")
    args = parser.parse_args(argv)
    batch, steps = (16, 1) if args.quick else (32, 3)
    print(f"[precision] CPU flags: {', '.join(cpu_flags()) or 'none'}; batch {batch}", flush=True)
    results: dict[str, dict[str, dict[str, float]]] = {}
    rows = []
    for name in MODELS:
        results[name] = {v: {"train_ips": 0.0, "infer_ips": 0.0} for v in VARIANTS}
        # Interleaved rounds, best kept: load from other processes hits every variant alike.
        for _ in range(1 if args.quick else 2):
            for variant in VARIANTS:
                train_ips, infer_ips = measure(name, variant, batch, steps)
                best = results[name][variant]
                best["train_ips"] = max(best["train_ips"], train_ips)
                best["infer_ips"] = max(best["infer_ips"], infer_ips)
        base = results[name]["fp32"]
        for variant in VARIANTS:
            r = results[name][variant]
            rows.append([
                name, variant, r["train_ips"], r["train_ips"] / base["train_ips"],
                r["infer_ips"], r["infer_ips"] / base["infer_ips"],
            ])  # fmt: skip
        print(f"[precision] {name} done", flush=True)
    headers = ["model", "variant", "train img/s", "x fp32", "infer img/s", "x fp32"]
    print(table(headers, rows))
    payload = {"batch": batch, "steps": steps, "sides": MODELS, "results": results}
    print(f"[precision] saved {save_result('precision', payload)}")
    return payload


if __name__ == "__main__":
    main()
