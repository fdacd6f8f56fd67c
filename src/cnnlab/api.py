"""The Python API behind ``cnnlab.train`` and the CLI's ``train`` command."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cnnlab.config import Config, load_config
from cnnlab.errors import ConfigError, RunError
from cnnlab.runs import Run

# Short names accepted by cnnlab.train(...) and the CLI flags, mapped to dotted config keys.
SHORT_KEYS = {
    "model": "model.name",
    "mode": "model.mode",
    "pretrained": "model.pretrained",
    "weights": "model.weights",
    "epochs": "train.epochs",
    "img_size": "data.img_size",
    "batch_size": "train.batch_size",
    "lr": "train.lr",
    "seed": "train.seed",
    "optimizer": "train.optimizer",
    "scheduler": "train.scheduler",
    "precision": "train.precision",
    "augment": "data.augment",
    "name": "name",
    "runs_dir": "runs_dir",
    "track": "track.backend",
}


def short_values(values: dict[str, Any]) -> dict[str, Any]:
    """Turn short names (``lr``) and ``section__field`` names into dotted config keys."""
    dotted: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Path):
            value = str(value)  # the API takes paths; the config stores them as text
        if key in SHORT_KEYS:
            dotted[SHORT_KEYS[key]] = value
        else:
            dotted[key.replace("__", ".")] = value
    if "model.pretrained" in dotted and isinstance(dotted["model.pretrained"], bool):
        dotted["model.pretrained"] = "true" if dotted["model.pretrained"] else "false"
    return dotted


def make_config(
    data: str | Path | None,
    config: str | Path | None = None,
    overrides: list[str] | None = None,
    values: dict[str, Any] | None = None,
) -> Config:
    """Resolve defaults + YAML file + dotted values + ``KEY=VALUE`` overrides + the data path."""
    merged = dict(values or {})
    if data is not None:
        merged["data.root"] = str(data)
    cfg = load_config(config, overrides=overrides, values=merged)
    if cfg.data.root is None:
        raise ConfigError("no dataset given: pass DATA or set data.root in the config")
    return cfg


def fit_config(cfg: Config, observers: Sequence[Any] | None = None) -> Run | None:
    """Train with a resolved configuration and return the finished run.

    ``observers`` (:mod:`cnnlab.engine.observe`) follow the run besides those the config asks
    for (tracking). ``None`` only on the helper processes of a multi-process (DDP) run: rank 0
    returns it.
    """
    from cnnlab.engine.fit import fit

    return fit(cfg, observers=_with_defaults(cfg, observers))


def _with_defaults(cfg: Config, observers: Sequence[Any] | None) -> list[Any] | None:
    if not observers:
        return None  # fit picks the config's own
    from cnnlab.engine.observe import default_observers

    return [*default_observers(cfg), *observers]


def prepare_training(cfg: Config) -> Any:
    """Everything ``fit`` builds before training (data, model, module, loaders), no run folder.

    Used by ``cnnlab lr-find``; returns a :class:`cnnlab.engine.loop.Prepared`.
    """
    from cnnlab.engine.loop import prepare_full
    from cnnlab.engine.plan import plan_training
    from cnnlab.engine.setup import prepare

    data, mb = prepare(cfg)
    train = plan_training(cfg.train, mb, data.count("train"))
    return prepare_full(mb, data, cfg.data, train)


def train(
    data: str | Path | None = None,
    config: str | Path | None = None,
    resume: str | Path | None = None,
    **overrides: Any,
) -> Run | None:
    """Python entry point; see :func:`cnnlab.train`."""
    values = short_values(overrides)
    if resume is not None:
        return resume_run(resume, values=values, data=data, config=config)
    return fit_config(make_config(data, config=config, values=values))


# What may differ from the saved config when resuming: how long to train, nothing else.
RESUMABLE = ("train.epochs", "train.max_time")


def _flat(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _resume_config(
    saved: Path, overrides: list[str], values: dict[str, Any], data: str | Path | None
) -> Config:
    """The saved config with only ``RESUMABLE`` keys changed; anything else is refused."""
    before = load_config(saved)
    if data is not None and Path(data).expanduser().resolve() != Path(before.data.root or ""):
        raise ConfigError(
            f"--resume continues the run on its own dataset ({before.data.root}); "
            f"drop DATA ({data}) or start a new run"
        )
    after = load_config(saved, overrides=overrides, values=values)
    old, new = _flat(before.model_dump(mode="json")), _flat(after.model_dump(mode="json"))
    resolved = _resolved(before, saved.parent)
    repeated = {k for k in resolved if old.get(k) is None and _same(new.get(k), resolved[k])}
    changed = [k for k in new if new[k] != old.get(k) and k not in (*RESUMABLE, *repeated)]
    if changed:
        shown = ", ".join(_change(k, old.get(k), new[k], resolved.get(k)) for k in changed)
        raise ConfigError(
            f"--resume cannot change {shown}: a resumed run continues the saved one exactly; "
            f"only {' and '.join(RESUMABLE)} may change (start a new run for the rest)"
        )
    for key in repeated:  # the value the run trained with: config.yaml keeps saying "auto"
        section, field = key.split(".")
        part = getattr(after, section).model_copy(update={field: None})
        after = after.model_copy(update={section: part})
    return after


def _resolved(cfg: Config, run_dir: Path) -> dict[str, Any]:
    """What the run trained with where its config.yaml leaves the choice to cnnlab (None):
    the mode and the peak lr (summary.json's, or the defaults they resolve to)."""
    from cnnlab.engine.optim import default_lr
    from cnnlab.models.transfer import resolve_mode
    from cnnlab.runs import SUMMARY, read_json

    summary = read_json(run_dir / SUMMARY) if (run_dir / SUMMARY).is_file() else {}
    mode = summary.get("mode") or resolve_mode(cfg.model.name, cfg.model.mode)
    lr = cfg.train.lr if cfg.train.lr is not None else default_lr(cfg.train.optimizer, mode)
    return {"model.mode": mode, "train.lr": summary.get("lr") or lr}


def _same(value: Any, resolved: Any) -> bool:
    if isinstance(value, int | float) and isinstance(resolved, int | float):
        return math.isclose(value, resolved, rel_tol=1e-9)
    return value == resolved


def _change(key: str, old: Any, new: Any, resolved: Any) -> str:
    if old is None and resolved is not None:
        return f"{key} (auto: the run trained with {resolved!r} -> {new!r})"
    return f"{key} ({old!r} -> {new!r})"


def resume_run(
    run_dir: str | Path,
    overrides: list[str] | None = None,
    values: dict[str, Any] | None = None,
    data: str | Path | None = None,
    config: str | Path | None = None,
    observers: Sequence[Any] | None = None,
) -> Run | None:
    """Continue a killed run, or extend a finished one: its saved config, split and checkpoint.

    Only ``train.epochs`` and ``train.max_time`` may change on resume (to train longer); any
    other value that differs from the saved config, a dataset other than the run's, or a
    config file would make the result a different experiment, so they are refused with the
    reason, never silently dropped. Values equal to the saved ones are accepted.
    """
    from cnnlab.engine.fit import fit
    from cnnlab.ensemble.folder import is_ensemble

    run_dir = Path(run_dir)
    if is_ensemble(run_dir):
        raise RunError(
            f"{run_dir} is an ensemble: it has no training to resume; resume or extend its "
            "member runs one at a time, then build the ensemble again"
        )
    saved = run_dir / "config.yaml"
    if not saved.is_file():
        raise RunError(f"{run_dir}: no config.yaml, not a run folder that can be resumed")
    if config is not None:
        raise ConfigError(
            f"--resume uses the run's own {saved}; drop --config {config} "
            "(only --epochs and train.max_time may change)"
        )
    cfg = _resume_config(saved, overrides or [], values or {}, data)
    return fit(cfg, resume_dir=run_dir, observers=_with_defaults(cfg, observers))


def fit_and_print(fit: Callable[[], Run | None]) -> Run | None:
    """Call ``fit`` (a training) and print its results as soon as its numbers exist; return
    once its figures and report exist too.

    ``cnnlab train`` uses it: the run's figures are drawn by a forked child
    (:func:`~cnnlab.evaluation.background.deferred_figures`) while the results table is
    printed, so the user reads the numbers about two seconds earlier (bench_overhead.py) and
    the command still ends with every file of the run folder written. Prints nothing when
    ``fit`` returns None (a DDP helper process: rank 0 prints the run).
    """
    from cnnlab.console import info
    from cnnlab.evaluation.background import deferred_figures, is_drawing
    from cnnlab.summary import print_report_path, print_summary

    with deferred_figures(share=True, strict=True):
        run = fit()
        if run is not None:
            print_summary(run)
            if is_drawing(run.path):  # not for a finished run that --resume left as it was
                info("drawing the figures and the report...")
    if run is not None:  # deferred_figures waited for the report (or raised)
        print_report_path(run)
    return run
