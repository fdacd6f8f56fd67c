"""``cnnlab explain``: a thin shell over :mod:`cnnlab.explain.run`."""

from __future__ import annotations

from pathlib import Path

import typer

from cnnlab.paths import expand_home


def _print_layers(run: Path) -> None:
    from rich.table import Table

    from cnnlab.console import result
    from cnnlab.explain.run import list_layers

    layers, auto = list_layers(run)
    table = Table("layer", "type", "output (C, H, W)", title=f"layers of {run} (auto: {auto})")
    for layer in layers:
        if layer.is_map:
            mark = "  <- auto" if layer.name == auto else ""
            table.add_row(layer.name, layer.kind, f"{tuple(layer.shape)}{mark}")
    result(table)


def explain_command(
    run: Path = typer.Argument(
        ..., help="Run folder with the trained model.", callback=expand_home
    ),
    paths: list[str] = typer.Argument(
        None, help="Image files and/or folders (recursed).", callback=expand_home
    ),
    method: str = typer.Option("gradcam", help="gradcam | gradcam++ | scorecam | eigencam"),
    layer: str = typer.Option("auto", help="CAM layer (see --layers); auto: last conv stage."),
    target: str = typer.Option(None, "--class", help="Class to explain [default: predicted]"),
    out: Path = typer.Option(
        None, "--out", "-o", help="Output folder [default: RUN/explain]", callback=expand_home
    ),
    layers: bool = typer.Option(False, "--layers", help="List the layer names and exit."),
    feature_maps: str = typer.Option(
        None, "--feature-maps", help="Also save this layer's activations per image (or auto)."
    ),
    filters: bool = typer.Option(False, "--filters", help="Save the first conv's filters."),
) -> None:
    """Show what a model looks at: CAM heatmaps (PNG + raw .npy), feature maps, filters.

    Example:

        cnnlab explain runs/cnn-scratch photos/cat.jpg --method gradcam++ --class cat
    """
    from cnnlab.console import info, result
    from cnnlab.errors import CnnlabError
    from cnnlab.paths import check_outside_run_data

    if layers:
        _print_layers(run)
        return
    if not paths and not filters:
        raise CnnlabError("explain needs image files or folders (or --filters, or --layers)")
    if out is not None:
        check_outside_run_data(out, run)
    from cnnlab.explain.run import explain_run

    done = explain_run(
        run, paths or [], method=method, layer=layer, target=target, out_dir=out,
        feature_maps=feature_maps, filters=filters,
    )  # fmt: skip
    for row in done["rows"]:
        info(
            f"{row['path']}: {row['label']} ({float(row['prob']):.3f}); "
            f"map of '{row['target']}' -> {row['cam']}"
            + (" (all zero)" if row["all_zero"] == "yes" else "")
        )
    for item in done["skipped"]:
        typer.echo(f"skipped {item['path']}: {item['reason']}", err=True)
    if paths and not done["rows"]:
        raise CnnlabError(f"none of the {len(done['skipped'])} files could be read")
    how = f"{done['method']}, layer {done['layer']}"
    result(f"{len(done['rows'])} explained ({how}): {done['out_dir']}")
