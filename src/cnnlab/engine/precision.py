"""Pick numeric precision and memory format from what the hardware does natively.

Measured on this machine (2 cores, Xeon with AVX512-BF16; full training step, SGD, images/s;
all four settings timed side by side in one process, after two warm-up steps)::

    model / input            fp32 NCHW  fp32 NHWC  bf16 NCHW  bf16 NHWC
    6-conv BN CNN, 32 px, b64     52.7       65.1      116.1      152.9
    resnet18, 128 px, b32         36.9       37.6       19.2       69.7

bf16 autocast with channels_last is the fastest everywhere (2.9x and 1.9x). bf16 in NCHW is
*slower* than fp32 for resnet18 (oneDNN reorders every activation), so ``auto`` chooses bf16
on a CPU only together with channels_last. Without native bf16 (no AVX512-BF16 / AMX) bf16 is
emulated and slow, so ``auto`` stays at fp32 there, and an explicit ``bf16-mixed`` is warned
about: on an AMD EPYC with AVX2 only, ``bench/bench_precision.py`` measured bf16 + channels_last
at 0.09x fp32 for training resnet18 and 0.10x for efficientnet_lite0 (inference 0.18x / 0.07x),
while fp32 + channels_last was 1.26x / 1.14x (inference 1.48x / 0.96x). On GPUs, bf16 where
supported (Ampere and newer), else fp16 with loss scaling.

Depthwise convolutions are the exception (bench/RESULTS.md, ``make bench``): training
efficientnet_lite0 at 128 px ran 45.5 img/s in fp32 NHWC but 35.2 img/s in bf16 NHWC, while
its inference was still 1.7x faster in bf16. :func:`prefers_fp32_training` spots such nets so
``auto`` trains them in fp32 on a CPU.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import torch

from cnnlab.console import warn
from cnnlab.errors import ConfigError

PRECISIONS = ("auto", "32", "bf16-mixed", "16-mixed")


@cache
def cpu_has_native_bf16() -> bool:
    """True when the CPU executes bf16 math natively (AVX512-BF16 or AMX)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        try:
            text = cpuinfo.read_text(errors="ignore")
        except OSError:
            text = ""
        flags = set()
        for line in text.splitlines():
            if line.startswith("flags"):
                flags.update(line.split(":", 1)[-1].split())
                break
        if flags & {"avx512_bf16", "amx_bf16"}:
            return True
    capability = str(torch.backends.cpu.get_cpu_capability()).upper()
    return "AMX" in capability or "BF16" in capability


def resolve_accelerator(accelerator: str) -> str:
    """``auto`` -> ``gpu`` when CUDA is available, else ``cpu``; other names pass through."""
    if accelerator != "auto":
        return accelerator
    return "gpu" if torch.cuda.is_available() else "cpu"


def torch_device(accelerator: str = "auto") -> torch.device:
    """The device of a one-process pass (frozen features, evaluation) for ``train.accelerator``.

    The GPU when the setting allows one and CUDA has one, else the CPU. Models are built on
    the CPU and Lightning moves a trained one back there, so a pass that followed the model's
    own device ran on the CPU of a GPU machine.
    """
    if resolve_accelerator(accelerator) in {"gpu", "cuda"} and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def resolve_precision(precision: str, accelerator: str, channels_last: bool = True) -> str:
    """Lightning precision string for a setting (``auto`` decided by the hardware).

    Args:
        precision: ``auto``, ``32``, ``bf16-mixed`` or ``16-mixed``.
        accelerator: ``cpu``, ``gpu``/``cuda`` or ``auto``.
        channels_last: whether the run uses NHWC; on a CPU bf16 only pays off with it.
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"train.precision '{precision}' is not one of {', '.join(PRECISIONS)}")
    device = resolve_accelerator(accelerator)
    if precision != "auto":
        if precision == "bf16-mixed" and device == "cpu" and not cpu_has_native_bf16():
            warn(
                "train.precision=bf16-mixed on a CPU without native bf16 (AVX512-BF16 or AMX) is "
                "emulated, about 10x slower than fp32 (measured); train.precision=auto picks 32 "
                "here"
            )
        return precision
    if device in {"gpu", "cuda"}:
        if not torch.cuda.is_available():
            return "32"
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    if device == "cpu" and channels_last and cpu_has_native_bf16():
        return "bf16-mixed"
    return "32"


def prefers_fp32_training(model: torch.nn.Module, accelerator: str) -> bool:
    """True on a CPU for nets built mostly from depthwise convolutions (MobileNet/EfficientNet
    style), whose bf16 training kernels are slower than fp32 there (measured above)."""
    if resolve_accelerator(accelerator) != "cpu":
        return False
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    depthwise = [m for m in convs if m.groups > 1 and m.groups == m.in_channels]
    return bool(convs) and len(depthwise) * 4 >= len(convs)


def resolve_channels_last(setting: str | bool, accelerator: str) -> bool:
    """Whether to use channels_last: ``auto`` is on for CPUs and GPUs (faster in both here)."""
    if isinstance(setting, bool):
        return setting
    if setting in {"true", "false"}:
        return setting == "true"
    if setting != "auto":
        raise ConfigError(f"train.channels_last '{setting}' is not one of auto, true, false")
    return resolve_accelerator(accelerator) in {"cpu", "gpu", "cuda"}
