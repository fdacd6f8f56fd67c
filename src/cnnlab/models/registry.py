"""Choose a model by name: cnnlab's own CNNs and every timm architecture.

Example:
    >>> model = create_model("cnn", num_classes=10)
    >>> model.num_features, model.default_img_size
    (128, 32)
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from cnnlab.errors import ModelError
from cnnlab.models.classifier import Classifier, timm_stages
from cnnlab.models.cnn import BUILDERS
from cnnlab.models.heads import create_head
from cnnlab.models.timmlib import import_timm

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Our CNNs start from scratch; the engine normally swaps these for the data's own statistics.
_OWN_MEAN, _OWN_STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)

# name -> (description, default input side in px)
OWN_MODELS: dict[str, tuple[str, int]] = {
    "cnn": ("configurable CNN (model.cnn.*); the default", 32),
    "vanilla_cnn": ("3 x (conv, ReLU, max-pool), flatten, linear", 32),
    "basenet": ("LeNet-style: conv5-6, pool, conv5-16, pool, dense 50", 32),
    "basenet_plus": ("BaseNet with BN conv pairs, dropout, dense 50 + BN", 32),
    "tiny_cnn": ("~6k weights: tests, demos, tiny data", 32),
    "alexnet": ("AlexNet (torchvision architecture)", 224),
}


@dataclass(frozen=True)
class ModelInfo:
    """What cnnlab knows about a model name before building it."""

    name: str
    kind: str  # "cnnlab" (ours) or "timm"
    default_img_size: int  # input side (px) the model was designed / pretrained for
    default_mode: str  # transfer mode when model.mode is not set
    mean: tuple[float, ...]  # normalisation the (pretrained) weights expect
    std: tuple[float, ...]
    offline_weights: bool  # pretrained weights can be loaded without the internet
    description: str = ""


def _timm_names() -> list[str]:
    timm = import_timm()

    return timm.list_models()


def _is_timm(name: str) -> bool:
    timm = import_timm()

    return timm.is_model(name.split(".", 1)[0])


def _unknown(name: str) -> ModelError:
    pool = list(OWN_MODELS) + _timm_names()
    close = difflib.get_close_matches(name.lower(), pool, n=5, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return ModelError(f"unknown model '{name}'{hint} (list them with `cnnlab models PATTERN`)")


def _timm_info(name: str) -> ModelInfo:
    import_timm()
    from timm.models import get_pretrained_cfg

    from cnnlab.models.weights import offline_available

    cfg = get_pretrained_cfg(name)
    cfg = cfg.to_dict() if cfg is not None and hasattr(cfg, "to_dict") else (cfg or {})
    size = int((cfg.get("input_size") or (3, 224, 224))[-1])
    return ModelInfo(
        name=name,
        kind="timm",
        default_img_size=size,
        default_mode="finetune",
        mean=tuple(cfg.get("mean") or IMAGENET_MEAN),
        std=tuple(cfg.get("std") or IMAGENET_STD),
        offline_weights=offline_available(name),
        description="timm",
    )


def model_info(name: str) -> ModelInfo:
    """Facts about a model name (kind, default image size and mode, normalisation).

    Raises:
        ModelError: the name is unknown; the message lists close names.
    """
    if name in OWN_MODELS:
        text, size = OWN_MODELS[name]
        imagenet = name == "alexnet"
        return ModelInfo(
            name=name,
            kind="cnnlab",
            default_img_size=size,
            default_mode="scratch",
            mean=IMAGENET_MEAN if imagenet else _OWN_MEAN,
            std=IMAGENET_STD if imagenet else _OWN_STD,
            offline_weights=False,
            description=text,
        )
    if _is_timm(name):
        return _timm_info(name)
    raise _unknown(name)


def list_models(pattern: str | None = None) -> list[ModelInfo]:
    """Our CNNs, then every timm model, filtered by an fnmatch pattern (``resnet*``).

    A pattern without wildcards matches as a substring, so ``cnnlab models resnet`` works.
    """
    names = list(OWN_MODELS) + sorted(n for n in _timm_names() if n not in OWN_MODELS)
    if pattern:
        pat = pattern.lower() if any(c in pattern for c in "*?[") else f"*{pattern.lower()}*"
        names = [n for n in names if fnmatch.fnmatchcase(n.lower(), pat)]
    return [model_info(n) for n in names]


def _timm_backbone(name: str, in_chans: int) -> tuple[nn.Module, int, list[nn.Module]]:
    timm = import_timm()

    try:
        net = timm.create_model(name, pretrained=False, num_classes=0, in_chans=in_chans)
    except (RuntimeError, ValueError) as exc:
        raise ModelError(f"timm cannot build '{name}' with in_chans={in_chans}: {exc}") from None
    width = getattr(net, "head_hidden_size", None) or net.num_features
    return net, int(width), timm_stages(net)


def _build_backbone(
    name: str, in_chans: int, img_size: int, cnn_spec: Any
) -> tuple[nn.Module, int, list[nn.Module]]:
    if name in BUILDERS:
        kwargs = {"spec": cnn_spec} if name == "cnn" else {}
        net = BUILDERS[name](in_chans, img_size, **kwargs)
        return net, net.num_features, net.stage_modules()
    return _timm_backbone(name, in_chans)


def create_model(
    name: str,
    num_classes: int,
    in_chans: int = 3,
    pretrained: bool = False,
    weights: str | None = None,
    head: str = "linear",
    head_hidden: int | Sequence[int] = 256,
    head_activation: str = "relu",
    head_dropout: float = 0.0,
    cnn_spec: Any = None,
    img_size: int | None = None,
) -> Classifier:
    """Build a :class:`Classifier` by name, with pretrained weights when asked.

    Args:
        name: one of our CNNs (``cnn``, ``basenet``...) or any timm model name.
        num_classes: number of output logits.
        in_chans: input channels (1 for greyscale).
        pretrained: load pretrained backbone weights (file, cache, hub, bundled; see
            ``cnnlab.models.weights``); a missing weight is a ``WeightsError``.
        weights: a ``.safetensors``/``.pth`` file; loaded whenever given.
        head: ``linear``, ``mlp``, ``logreg`` or ``svm`` (the last two are linear heads
            that scikit-learn fills in).
        head_hidden, head_activation, head_dropout: the mlp head's shape: the units of its
            hidden layer, or a list with those of each (``[512, 256]``; 0 or ``[]``: none),
            the activation and dropout after each hidden layer.
        cnn_spec: a ``CNNSpec`` or dict for model ``cnn``.
        img_size: input side the model is built for (our flatten-pooled CNNs size their dense
            layer from it); None: the model's default.
    """
    info = model_info(name)
    size = img_size or info.default_img_size
    backbone, width, stages = _build_backbone(name, in_chans, size, cnn_spec)
    model = Classifier(
        backbone,
        create_head(head, width, num_classes, head_hidden, head_activation, head_dropout),
        width,
        stages,
        name=name,
        mean=info.mean,
        std=info.std,
        default_img_size=info.default_img_size,
    )
    if pretrained or weights:
        from cnnlab.models.weights import load_pretrained, resolve_weights

        state, source = resolve_weights(name, file=weights)
        load_pretrained(model, state, source)
    return model
