"""The Python API behind ``cnnlab.train`` and the CLI's ``train`` command."""

from __future__ import annotations

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


def fit_config(cfg: Config) -> Run:
    """Train with a resolved configuration and return the finished run."""
    from cnnlab.engine.fit import fit

    return fit(cfg)


def prepare_training(cfg: Config) -> Any:
    """Everything ``fit`` builds before training (data, model, module, loaders), no run folder.

    Used by ``cnnlab lr-find``; returns a :class:`cnnlab.engine.loop.Prepared`.
    """
    from cnnlab.engine.loop import prepare_full
    from cnnlab.engine.setup import prepare

    data, mb = prepare(cfg)
    return prepare_full(mb, data, cfg.data, cfg.train)


def train(
    data: str | Path | None = None,
    config: str | Path | None = None,
    resume: str | Path | None = None,
    **overrides: Any,
) -> Run:
    """Python entry point; see :func:`cnnlab.train`."""
    values = short_values(overrides)
    if resume is not None:
        return resume_run(resume, values=values)
    return fit_config(make_config(data, config=config, values=values))


def resume_run(
    run_dir: str | Path,
    overrides: list[str] | None = None,
    values: dict[str, Any] | None = None,
) -> Run:
    """Continue a killed run: its saved config, split and last good checkpoint.

    Only ``train.epochs`` and ``train.max_time`` may change on resume (to extend a run); other
    changes would make the result a different experiment, so they are refused.
    """
    from cnnlab.engine.fit import fit

    run_dir = Path(run_dir)
    saved = run_dir / "config.yaml"
    if not saved.is_file():
        raise RunError(f"{run_dir}: no config.yaml, not a run folder that can be resumed")
    allowed = {"train.epochs", "train.max_time"}
    changed = set((values or {}).keys()) | {o.split("=", 1)[0] for o in overrides or []}
    refused = sorted(changed - allowed - {"runs_dir", "name"})
    if refused:
        raise ConfigError(
            f"cannot change {', '.join(refused)} when resuming (only "
            "train.epochs and train.max_time)"
        )
    kept = {k: v for k, v in (values or {}).items() if k in allowed}
    cfg = load_config(
        saved, overrides=[o for o in overrides or [] if o.split("=")[0] in allowed], values=kept
    )
    return fit(cfg, resume_dir=run_dir)


def print_run_result(run: Run) -> None:
    """The few lines a user wants after training: metrics and where the report is."""
    from cnnlab.summary import print_summary

    print_summary(run)
