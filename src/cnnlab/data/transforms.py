"""Batched augmentation and normalisation of uint8 image batches, on whatever device they are.

Transforms run after the batch reaches its device (``on_after_batch_transfer``): on a GPU that
takes decoding-free augmentation off the CPU, on a CPU it avoids per-image Python work. Every
op draws its random numbers per image but works on the whole batch at once (one gather for
shift-crops, one ``grid_sample`` for zoom/rotation/shear); only the ``strong`` preset's
TrivialAugment runs per group of 8 images. Random numbers come from torch's global RNG, so
``torch.manual_seed`` makes augmentation repeatable.

Example:
    >>> tf = build_train_transform(32, [0.5] * 3, [0.25] * 3, "light")  # doctest: +SKIP
    >>> x = tf(uint8_batch)  # float (B, 3, 32, 32), normalised  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.errors import ConfigError


@dataclass(frozen=True)
class AugmentSpec:
    """Strength of each augmentation; 0 or False switches it off."""

    hflip: bool = False
    vflip: bool = False
    shift: float = 0.0  # max translation, fraction of the side
    zoom: float = 0.0  # max zoom in/out, fraction of the side
    rotation: float = 0.0  # degrees
    shear: float = 0.0  # degrees
    brightness: float = 0.0  # max relative change
    contrast: float = 0.0
    saturation: float = 0.0
    auto: bool = False  # TrivialAugmentWide per image
    erasing: float = 0.0  # probability of erasing one random box per image


PRESETS = {
    "none": AugmentSpec(),
    "light": AugmentSpec(hflip=True, shift=0.125),  # ~4 px on 32 px, airbench-style
    "standard": AugmentSpec(
        hflip=True, shift=0.1, zoom=0.25, brightness=0.2, contrast=0.2, saturation=0.2
    ),
    "strong": AugmentSpec(
        hflip=True,
        shift=0.1,
        zoom=0.3,
        brightness=0.3,
        contrast=0.3,
        saturation=0.3,
        auto=True,
        erasing=0.25,
    ),
}


def _stats_for(values: Sequence[float], channels: int) -> list[float]:
    """Model mean/std for this many channels (grey input with an RGB model averages them)."""
    values = list(values)
    if len(values) == channels:
        return values
    if channels == 1:
        return [sum(values) / len(values)]
    if len(values) == 1:
        return values * channels
    raise ConfigError(f"mean/std have {len(values)} values but images have {channels} channels")


def _resize_to(x: torch.Tensor, side: int) -> torch.Tensor:
    """Only for images stored smaller than the model input (a config mismatch, not the norm)."""
    return F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False)


class _Normalise(nn.Module):
    def __init__(self, img_size: int, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.img_size = img_size
        self.mean, self.std = list(mean), list(std)

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """Float pixels in 0..255 -> normalised, in one fused pass."""
        c, unit = x.shape[1], 255.0
        mean = torch.tensor(_stats_for(self.mean, c), device=x.device).view(1, c, 1, 1)
        std = torch.tensor(_stats_for(self.std, c), device=x.device).view(1, c, 1, 1)
        return torch.addcmul(-mean / std, x.float(), 1.0 / (std * unit))


class EvalTransform(_Normalise):
    """Centre crop ``img_size`` from the stored side, then normalise."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        side = x.shape[-1]
        if side > self.img_size:
            top = (side - self.img_size) // 2
            x = x[:, :, top : top + self.img_size, top : top + self.img_size]
        x = x.float()
        if side < self.img_size:
            x = _resize_to(x, self.img_size)
        return self.normalise(x)


class TrainTransform(_Normalise):
    """Random geometry, flips and colour per image, batched; output ``img_size``, normalised."""

    def __init__(
        self, img_size: int, mean: Sequence[float], std: Sequence[float], spec: AugmentSpec
    ) -> None:
        super().__init__(img_size, mean, std)
        self.spec = spec
        self._auto: nn.Module | None = None
        if spec.auto:
            from torchvision.transforms import v2

            self._auto = v2.TrivialAugmentWide()

    def extra_repr(self) -> str:
        on = {k: v for k, v in asdict(self.spec).items() if v}
        return f"img_size={self.img_size}, {on}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.spec
        if self._auto is not None:
            # One random op per group of 8 images: per-image calls cost ~10 ms each on CPU.
            x = torch.cat([self._auto(group) for group in x.split(8)])
        x = x.float()  # 0..255; torch's uint8 kernels (pad, index) are several times slower
        x = self._affine(x) if s.zoom or s.rotation or s.shear else self._shift_crop(x)
        x = self._flips(x)
        if s.brightness or s.contrast or s.saturation:
            x = _colour(x, s.brightness, s.contrast, s.saturation)
        x = self.normalise(x)
        return _erase(x, s.erasing) if s.erasing else x

    def _flips(self, x: torch.Tensor) -> torch.Tensor:
        if self.spec.hflip:
            x = _maybe(x, x.flip(3))
        if self.spec.vflip:
            x = _maybe(x, x.flip(2))
        return x

    def _shift_crop(self, x: torch.Tensor) -> torch.Tensor:
        """Random crop of a reflect-padded batch: a per-image shift in one gather."""
        b, _, side, _ = x.shape
        out = self.img_size
        pad = round(self.spec.shift * out)
        if not pad:  # no shift asked for: the same centre crop as evaluation
            top = max(0, (side - out) // 2)
            x = x[:, :, top : top + out, top : top + out]
            return x if x.shape[-1] == out else _resize_to(x, out)
        x = F.pad(x, (pad, pad, pad, pad), mode="reflect" if pad < side else "replicate")
        room = x.shape[-1] - out
        if room < 0:
            return _resize_to(x, out)
        # unfold makes a view of every window; indexing picks one per image (rows, then cols).
        batch = torch.arange(b, device=x.device)
        oy = torch.randint(0, room + 1, (b,), device=x.device)
        ox = torch.randint(0, room + 1, (b,), device=x.device)
        rows = x.unfold(2, out, 1)[batch, :, oy]  # (B, C, W, out): axes swapped by unfold
        return rows.unfold(2, out, 1)[batch, :, ox]  # (B, C, out, out)

    def _affine(self, x: torch.Tensor) -> torch.Tensor:
        """Zoom (with aspect jitter), rotation, shear and shift as one grid_sample."""
        s, b, dev = self.spec, x.shape[0], x.device
        base = self.img_size / x.shape[-1]  # the centre-crop share of the stored image
        frac = 1.0 + (torch.rand(b, device=dev) * 2 - 1) * s.zoom
        log_r = math.log(4 / 3) if s.zoom else 0.0
        aspect = torch.exp((torch.rand(b, device=dev) * 2 - 1) * log_r).sqrt()
        angle = torch.deg2rad((torch.rand(b, device=dev) * 2 - 1) * s.rotation)
        shear = torch.tan(torch.deg2rad((torch.rand(b, device=dev) * 2 - 1) * s.shear))
        cos, sin = torch.cos(angle), torch.sin(angle)
        sx, sy = base * frac * aspect, base * frac / aspect
        theta = torch.zeros(b, 2, 3, device=dev)
        theta[:, 0, 0], theta[:, 0, 1] = cos * sx, (cos * shear - sin) * sy
        theta[:, 1, 0], theta[:, 1, 1] = sin * sx, (sin * shear + cos) * sy
        room = 2 * s.shift + (1 - base * frac).clamp(min=0)
        theta[:, :, 2] = (torch.rand(b, 2, device=dev) * 2 - 1) * room[:, None]
        grid = F.affine_grid(
            theta, [b, x.shape[1], self.img_size, self.img_size], align_corners=False
        )
        return F.grid_sample(
            x, grid, mode="bilinear", padding_mode="reflection", align_corners=False
        )


def _maybe(x: torch.Tensor, changed: torch.Tensor, p: float = 0.5) -> torch.Tensor:
    """Per image: ``changed`` with probability p, else ``x``."""
    mask = torch.rand(x.shape[0], 1, 1, 1, device=x.device) < p
    return torch.where(mask, changed, x)


def _colour(x: torch.Tensor, brightness: float, contrast: float, saturation: float) -> torch.Tensor:
    b = x.shape[0]

    def factor(strength: float) -> torch.Tensor:
        return 1.0 + (torch.rand(b, 1, 1, 1, device=x.device) * 2 - 1) * strength

    if brightness:
        x = x * factor(brightness)
    grey = (
        x.mean(1, keepdim=True)
        if x.shape[1] == 1
        else (0.299 * x[:, :1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])
    )
    if contrast:
        mean = grey.mean((2, 3), keepdim=True)
        x = (x - mean) * factor(contrast) + mean
    if saturation and x.shape[1] == 3:
        x = (x - grey) * factor(saturation) + grey
    return x.clamp(0.0, 255.0)


def _erase(x: torch.Tensor, p: float) -> torch.Tensor:
    """Random erasing: per image, with probability p, zero a box (zero = the mean pixel)."""
    b, _, h, w = x.shape
    dev = x.device
    area = torch.empty(b, device=dev).uniform_(0.02, 0.25)
    ratio = torch.exp(torch.empty(b, device=dev).uniform_(math.log(0.3), math.log(3.3)))
    bh = (area * ratio).sqrt().mul(h).clamp(max=h)
    bw = (area / ratio).sqrt().mul(w).clamp(max=w)
    top = torch.rand(b, device=dev) * (h - bh)
    left = torch.rand(b, device=dev) * (w - bw)
    ys = torch.arange(h, device=dev).view(1, h, 1)
    xs = torch.arange(w, device=dev).view(1, 1, w)
    box = (
        (ys >= top.view(b, 1, 1))
        & (ys < (top + bh).view(b, 1, 1))
        & (xs >= left.view(b, 1, 1))
        & (xs < (left + bw).view(b, 1, 1))
    )
    box &= (torch.rand(b, device=dev) < p).view(b, 1, 1)
    return x.masked_fill(box[:, None], 0.0)


def build_eval_transform(img_size: int, mean: Sequence[float], std: Sequence[float]) -> nn.Module:
    """Centre crop + normalise: what validation, predict, the app and export all use."""
    return EvalTransform(img_size, mean, std)


def build_train_transform(
    img_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    preset: str = "light",
    hflip: bool | None = None,
    vflip: bool | None = None,
    shift: float | None = None,
    zoom: float | None = None,
    rotation: float | None = None,
    shear: float | None = None,
    brightness: float | None = None,
    contrast: float | None = None,
) -> nn.Module:
    """A preset (none | light | standard | strong) with any knob given here overriding it."""
    if preset not in PRESETS:
        raise ConfigError(f"data.augment={preset!r} is not a preset; use {', '.join(PRESETS)}")
    knobs = {
        "hflip": hflip,
        "vflip": vflip,
        "shift": shift,
        "zoom": zoom,
        "rotation": rotation,
        "shear": shear,
        "brightness": brightness,
        "contrast": contrast,
    }
    spec = replace(PRESETS[preset], **{k: v for k, v in knobs.items() if v is not None})
    return TrainTransform(img_size, mean, std, spec)


def mix_batch(
    x: torch.Tensor,
    y: torch.Tensor,
    num_classes: int,
    mixup_alpha: float = 0.0,
    cutmix_alpha: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixup or CutMix (one per batch, chosen at random when both are on) -> (x, soft labels)."""
    soft = y.float() if y.ndim == 2 else F.one_hot(y, num_classes).float()
    if not (mixup_alpha or cutmix_alpha):
        return x, soft
    use_cutmix = bool(cutmix_alpha) and (not mixup_alpha or torch.rand(()).item() < 0.5)
    alpha = cutmix_alpha if use_cutmix else mixup_alpha
    lam = float(torch.distributions.Beta(alpha, alpha).sample())
    perm = torch.randperm(x.shape[0], device=x.device)
    if use_cutmix:
        h, w = x.shape[-2:]
        cut = math.sqrt(1.0 - lam)
        ch, cw = round(h * cut), round(w * cut)
        cy, cx = int(torch.randint(0, h, ())), int(torch.randint(0, w, ()))
        y1, y2 = max(cy - ch // 2, 0), min(cy + ch - ch // 2, h)
        x1, x2 = max(cx - cw // 2, 0), min(cx + cw - cw // 2, w)
        x = x.clone()
        x[:, :, y1:y2, x1:x2] = x[perm][:, :, y1:y2, x1:x2]
        lam = 1.0 - (y2 - y1) * (x2 - x1) / (h * w)
    else:
        x = lam * x + (1.0 - lam) * x[perm]
    return x.contiguous(), lam * soft + (1.0 - lam) * soft[perm]
