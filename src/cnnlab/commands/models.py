"""``cnnlab models [PATTERN]``: what you can train, and which weights work offline."""

from __future__ import annotations

from typing import Any

import typer

MAX_SIZED_ROWS = 30  # counting parameters builds each model; beyond this, ask for a pattern


def _param_count(name: str) -> str:
    """Backbone parameters (the head depends on the dataset), built on the meta device."""
    import torch

    from cnnlab.errors import CnnlabError
    from cnnlab.models.registry import create_model

    try:
        with torch.device("meta"):  # shapes only: no memory, no initialisation cost
            model = create_model(name, num_classes=1000)
    except (CnnlabError, RuntimeError, ValueError, NotImplementedError):
        return "?"
    total = sum(p.numel() for p in model.backbone.parameters())
    return f"{total / 1e6:.2f}M" if total >= 1e5 else f"{total / 1e3:.1f}k"


def _rows(pattern: str | None, pretrained_only: bool) -> tuple[list[Any], int]:
    """Models to show and how many timm models were left out of a pattern-less listing."""
    from cnnlab.models.registry import list_models

    infos = list_models(pattern)
    if pretrained_only:
        infos = [i for i in infos if i.offline_weights]
    if pattern or pretrained_only:
        return infos, 0
    shown = [i for i in infos if i.kind == "cnnlab" or i.offline_weights]
    return shown, len(infos) - len(shown)


def models_command(
    pattern: str | None = typer.Argument(
        None, help="Filter by name: a wildcard pattern ('resnet*') or a substring ('efficientnet')."
    ),
    pretrained: bool = typer.Option(
        False, "--pretrained", help="Only models whose pretrained weights load offline."
    ),
) -> None:
    """List models: cnnlab's own CNNs and timm's, with size and offline pretrained weights.

    Example:

        cnnlab models "resnet*"
    """
    from rich.table import Table

    from cnnlab.console import info, result

    infos, hidden = _rows(pattern, pretrained)
    if not infos:
        info(f"no model matches '{pattern}'; try a shorter pattern or `cnnlab models`")
        return
    sized = len(infos) <= MAX_SIZED_ROWS
    table = Table(title="cnnlab models", show_lines=False)
    table.add_column("name", no_wrap=True)
    table.add_column("kind")
    table.add_column("backbone params", justify="right")
    table.add_column("img size", justify="right")
    table.add_column("default mode")
    table.add_column("offline weights")
    for item in infos:
        params = _param_count(item.name) if sized else "-"
        table.add_row(
            item.name, item.kind, params, str(item.default_img_size), item.default_mode,
            "yes" if item.offline_weights else "no",
        )  # fmt: skip
    result(table)
    if not sized:
        info(f"{len(infos)} models: parameter counts shown for {MAX_SIZED_ROWS} or fewer; "
             "narrow the list with a pattern, e.g. `cnnlab models 'resnet*'`")  # fmt: skip
    if hidden:
        info(f"{hidden} more timm models (pretrained weights need the hub, a file or the cache): "
             "list them with a pattern, e.g. `cnnlab models 'resnet*'`")  # fmt: skip
