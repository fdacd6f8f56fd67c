"""Which layer to look at: list a model's layers and pick the last convolutional stage.

CAMs and feature maps need a layer whose output is a spatial map ``(B, C, H, W)``. Names are
the model's own ``named_modules()`` names (``backbone.blocks.2``, ``backbone.layer4``), so a
name printed by ``cnnlab explain RUN --layers`` is exactly what ``--layer`` accepts.

``auto`` walks the :class:`~cnnlab.models.classifier.Classifier`'s ``stages`` (deepest last;
every model family is cut into stages by the registry) and takes the deepest stage member
that still outputs a map larger than 1x1: ``blocks[-1]`` of our CNNs and AlexNet, ``layer4``
of a ResNet, ``bn2`` (after the head conv) of an EfficientNet, ``stages.3`` of a ConvNeXt,
the last max-pool of a VGG. A 1x1 map says nothing about *where*, so on inputs so small that
the deepest stage is 1x1 the stage before it is used.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

import torch
from torch import nn

from cnnlab.errors import ModelError

AUTO = "auto"


@dataclass(frozen=True)
class LayerInfo:
    """One module of the model and the shape it outputs for one input image."""

    name: str
    kind: str  # the module's class name, e.g. Conv2d, Sequential
    shape: tuple[int, ...]  # output shape without the batch dimension; () if not a tensor
    order: int  # position in the forward pass (when its forward returned)

    @property
    def is_map(self) -> bool:
        """A spatial ``(C, H, W)`` output: usable for CAMs and feature maps."""
        return len(self.shape) == 3


def trace_layers(model: nn.Module, img_size: int, channels: int) -> list[LayerInfo]:
    """Every submodule that runs on one ``img_size`` image, in the order its forward returned.

    A dry run on zeros in eval mode; modules never called in ``forward`` are left out.
    """
    names = {id(m): n for n, m in model.named_modules() if n}
    seen: list[tuple[str, str, tuple[int, ...]]] = []

    def hook(module: nn.Module, _inputs: object, output: object) -> None:
        shape = tuple(output.shape[1:]) if isinstance(output, torch.Tensor) else ()
        seen.append((names[id(module)], type(module).__name__, shape))

    handles = [m.register_forward_hook(hook) for n, m in model.named_modules() if n]
    was_training = model.training
    model.eval()
    ref = next(model.parameters(), None)
    device = ref.device if ref is not None else torch.device("cpu")
    try:
        with torch.no_grad():
            model(torch.zeros(1, channels, img_size, img_size, device=device))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return [LayerInfo(n, k, s, i) for i, (n, k, s) in enumerate(seen)]


def _stage_members(model: nn.Module) -> list[nn.Module]:
    """The modules that make up ``model.stages``, in order (a timm stage is a ModuleList)."""
    members: list[nn.Module] = []
    for stage in getattr(model, "stages", None) or []:
        members.extend(stage if isinstance(stage, nn.ModuleList) else [stage])
    return members


def auto_layer(model: nn.Module, layers: list[LayerInfo]) -> str:
    """Name of the last convolutional stage (see the module docstring for the rule)."""
    by_name = {info.name: info for info in layers}
    names = {id(m): n for n, m in model.named_modules() if n}
    candidates = [
        by_name[names[id(m)]]
        for m in _stage_members(model)
        if id(m) in names and names[id(m)] in by_name and not isinstance(m, nn.Identity)
    ]
    maps = sorted((c for c in candidates if c.is_map), key=lambda c: c.order)
    if not maps:  # no stage metadata: the deepest spatial map anywhere in the model
        maps = [info for info in layers if info.is_map]
    if not maps:
        raise ModelError("this model has no layer with a spatial output; nothing to explain")
    spatial = [c for c in maps if c.shape[1] * c.shape[2] > 1]
    return (spatial or maps)[-1].name


def resolve_layer(
    model: nn.Module, name: str, img_size: int, channels: int
) -> tuple[str, nn.Module]:
    """``(name, module)`` for a layer name or ``auto``; an unknown name lists close ones.

    Raises:
        ModelError: the name is not a module of the model, or its output is not a spatial map.
    """
    layers = trace_layers(model, img_size, channels)
    if name == AUTO:
        name = auto_layer(model, layers)
    modules = dict(model.named_modules())
    info = next((i for i in layers if i.name == name), None)
    if name not in modules or info is None:
        pool = [i.name for i in layers if i.is_map]
        close = difflib.get_close_matches(name, pool, n=5, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ModelError(f"no layer '{name}' in this model{hint} (list them with --layers)")
    if not info.is_map:
        raise ModelError(
            f"layer '{name}' outputs {info.shape or 'no tensor'}, not a (C, H, W) map; "
            "pick a convolutional layer (list them with --layers)"
        )
    return name, modules[name]
