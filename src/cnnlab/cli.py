"""The ``cnnlab`` command line: a thin shell over the Python API.

Commands parse arguments and print; the work happens in the API they call. Heavy libraries
(torch, timm, lightning) are imported inside the commands so ``cnnlab --help`` stays instant.
"""

from __future__ import annotations

import errno
import signal
import sys
from pathlib import Path
from typing import Any

import click
import typer
from typer.core import TyperGroup

from cnnlab.commands.app import app_command
from cnnlab.commands.cache import app as cache_app
from cnnlab.commands.data import app as data_app
from cnnlab.commands.ensemble import ensemble_command
from cnnlab.commands.evaluate import eval_command, export_command, predict_command
from cnnlab.commands.explain import explain_command
from cnnlab.commands.lr_find import lr_find_command
from cnnlab.commands.models import models_command
from cnnlab.commands.options import track_option
from cnnlab.commands.study import study_command
from cnnlab.commands.track import app as track_app
from cnnlab.commands.track import ui_command
from cnnlab.commands.tune import tune_command
from cnnlab.errors import CnnlabError, Interrupted
from cnnlab.paths import expand_home

try:  # Typer 0.2x carries its own copy of click, whose exceptions its commands raise
    from typer._click import exceptions as _clicks
except ImportError:  # pragma: no cover - older Typer runs on click itself
    from click import exceptions as _clicks  # type: ignore[no-redef]

_SHOWS_HELP = getattr(_clicks, "NoArgsIsHelpError", ())  # `cnnlab data`: its help, not an error


class _Stopped(BaseException):
    """Carries a ``KeyboardInterrupt`` past Typer, which turns one into a silent exit 130."""

    def __init__(self, interrupt: KeyboardInterrupt) -> None:
        super().__init__()
        self.interrupt = interrupt


def _usage_error(exc: _clicks.UsageError) -> typer.Exit:
    """A bad argument or option (``--top-k 0``, an unknown demo) as one ``error:`` line and
    exit code 2, like every other user mistake, instead of Typer's boxed usage block."""
    from cnnlab.console import error

    command = exc.ctx.command_path if exc.ctx is not None else "cnnlab"
    message = " ".join(exc.format_message().split()).rstrip(".")
    error(f"{message} (see {command} --help)")
    return typer.Exit(2)


class _Group(TyperGroup):
    """The root command: Ctrl-C reaches :func:`main`, and usage errors are one line.

    Subcommands parse their arguments inside :meth:`invoke`, the root's own options in
    :meth:`make_context`; a command with no arguments that shows its help is left alone.
    """

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        try:
            return super().make_context(*args, **kwargs)
        except _SHOWS_HELP:
            raise
        except _clicks.UsageError as exc:
            raise _usage_error(exc) from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt as exc:
            raise _Stopped(exc) from None
        except _SHOWS_HELP:
            raise
        except _clicks.UsageError as exc:
            raise _usage_error(exc) from None


app = typer.Typer(
    cls=_Group,
    name="cnnlab",
    help="Train, compare and understand CNN image classifiers on your own folder of images.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
    pretty_exceptions_enable=False,
)
app.add_typer(data_app, name="data", help="Inspect a dataset folder or write a demo dataset.")
app.command("models")(models_command)
app.command("eval")(eval_command)
app.command("predict")(predict_command)
app.command("export")(export_command)
app.command("lr-find")(lr_find_command)
app.add_typer(track_app, name="track", help="Log runs to MLflow later; register a run's model.")
app.command("ui")(ui_command)
app.command("study")(study_command)
app.command("explain")(explain_command)
app.command("ensemble")(ensemble_command)
app.command("app")(app_command)
app.add_typer(cache_app, name="cache", help="Show and free the decoded-image and other caches.")
app.command("tune")(tune_command)


@app.callback()
def _root(
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only results and errors."),
) -> None:
    from cnnlab.console import set_quiet

    set_quiet(quiet)


@app.command("train")
def train_command(
    data: str = typer.Argument(
        None, help="Dataset folder or CSV manifest (omit with --resume).", callback=expand_home
    ),
    overrides: list[str] = typer.Argument(
        None, help="Config overrides KEY=VALUE, e.g. train.lr=3e-4"
    ),
    model: str = typer.Option(None, "--model", "-m", help="Model name (see `cnnlab models`)."),
    mode: str = typer.Option(None, help="scratch | frozen | finetune | partial:N | staged"),
    epochs: int = typer.Option(None, help="Training epochs."),
    img_size: int = typer.Option(None, "--img-size", help="Input side in pixels."),
    batch_size: int = typer.Option(None, "--batch-size", help="Images per step."),
    lr: float = typer.Option(None, help="Peak learning rate."),
    seed: int = typer.Option(None, help="Seed for weights and batches (split: data.split_seed)."),
    name: str = typer.Option(None, help="Run name (a suffix is added if it exists)."),
    runs_dir: str = typer.Option(
        None, "--runs-dir", help="Where run folders go [default: runs]", callback=expand_home
    ),
    config: Path = typer.Option(
        None, "--config", "-c", help="YAML config file.", callback=expand_home
    ),
    resume: Path = typer.Option(
        None,
        "--resume",
        help="Continue a killed run (or extend one with --epochs N).",
        callback=expand_home,
    ),
    track: str = track_option(),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only results and errors."),
) -> None:
    """Train a model on a folder of images and write a run folder with a report.

    Example:

        cnnlab train data/flowers --model resnet18 --mode frozen --epochs 10 train.lr=1e-3
    """
    from cnnlab import api
    from cnnlab.console import set_quiet

    if quiet:
        set_quiet(True)
    flags = {
        "model": model,
        "mode": mode,
        "epochs": epochs,
        "img_size": img_size,
        "batch_size": batch_size,
        "lr": lr,
        "seed": seed,
        "name": name,
        "runs_dir": runs_dir,
        "track": track,
    }
    values = api.short_values({k: v for k, v in flags.items() if v is not None})
    if resume is not None:
        overrides = list(overrides or [])
        if data is not None and "=" in data and not Path(data).exists():
            data, overrides = (
                None,
                [data, *overrides],
            )  # no DATA with --resume: KEY=VALUE came first
        api.fit_and_print(
            lambda: api.resume_run(resume, overrides, values, data=data, config=config)
        )
    else:
        if data is None and config is None:  # a config file may name its data.root
            raise CnnlabError("train needs a DATA folder (or --config FILE, or --resume RUN)")
        cfg = api.make_config(data, config=config, overrides=overrides or [], values=values)
        api.fit_and_print(lambda: api.fit_config(cfg))


@app.command("runs")
def runs_command(
    runs_dir: str = typer.Option(
        "runs", "--runs-dir", help="Folder holding run folders.", callback=expand_home
    ),
    sort: str = typer.Option(
        "created",
        "--sort",
        help="created | name | epochs | train_time_s | val_accuracy | val_macro_f1 | "
        "test_accuracy | test_macro_f1 (metrics: best first) | val_log_loss | test_log_loss "
        "| params | trainable_params (lowest first).",
    ),
    wide: bool = typer.Option(
        False,
        "--wide",
        help="Full names, plus dataset, lr, batch size, best epoch, val and test loss, "
        "parameters (total, trained), created.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the runs as JSON (full names)."),
) -> None:
    """List runs with their main metrics.

    Example:

        cnnlab runs --sort test_accuracy
    """
    from cnnlab.summary import run_rows, runs_table

    if as_json:
        import json

        typer.echo(json.dumps(run_rows(runs_dir, sort), indent=2, ensure_ascii=False))
    else:
        runs_table(runs_dir, sort=sort, wide=wide)


@app.command("demo")
def demo_command(
    runs_dir: str = typer.Option(
        "runs", "--runs-dir", help="Where the demo study goes.", callback=expand_home
    ),
    epochs: int = typer.Option(None, help="Override the demo's epochs (for a quicker look)."),
    seeds: int = typer.Option(3, help="Training seeds per model."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only results and errors."),
) -> None:
    """The main job on bundled digits: a small study, CNN vs frozen EfficientNet, with verdict.

    Example:

        cnnlab demo
    """
    from cnnlab.console import set_quiet
    from cnnlab.demo import run_demo

    if quiet:
        set_quiet(True)
    run_demo(runs_dir=runs_dir, epochs=epochs, seeds=seeds)


# Operating-system errors a user causes or can fix (a full disk, a read-only or wrong output
# path); any other OSError is a bug and keeps its traceback.
_USER_ERRNOS = {
    errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM,
    errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG,
}  # fmt: skip


def _elsewhere(filename: object) -> str:
    """Which setting moves the failed write: the cache's, or a command's output folder."""
    from cnnlab.paths import cache_root

    root = cache_root()
    if isinstance(filename, str | Path) and Path(filename).is_relative_to(root):
        return f"e.g. set CNNLAB_CACHE, now {root}, to a folder cnnlab can write"
    return "e.g. another --runs-dir or --out"


def main() -> None:
    """Console entry point: user mistakes become one-line errors with exit code 2."""
    from cnnlab.console import error

    try:
        app()
    except CnnlabError as exc:
        error(str(exc))
        sys.exit(2)
    except OSError as exc:
        if exc.errno not in _USER_ERRNOS:
            raise
        where = f": {exc.filename}" if exc.filename else ""
        full = exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
        hint = "free some space or write elsewhere" if full else "check the path"
        error(f"{exc.strerror}{where} ({hint}, {_elsewhere(exc.filename)})")
        sys.exit(2)
    except (KeyboardInterrupt, _Stopped) as caught:
        exc = caught.interrupt if isinstance(caught, _Stopped) else caught
        # Interrupted (training) says what was kept and how to go on; 128 + signal number,
        # as a shell reports a process a signal ended (130: Ctrl-C, 143: SIGTERM)
        text = str(exc) if isinstance(exc, Interrupted) else ""
        word = "terminated" if getattr(exc, "signum", None) == signal.SIGTERM else "interrupted"
        print(f"{word}: {text}" if text else word, file=sys.stderr)
        sys.exit(getattr(exc, "exit_code", 130))
    finally:
        from cnnlab.startup import freeze_before_exit

        freeze_before_exit()


if __name__ == "__main__":
    main()
