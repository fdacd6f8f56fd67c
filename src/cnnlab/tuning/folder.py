"""The tune folder: ``tune.yaml`` (what is searched and how), one split, trials, results.

Layout (a contract: the app, the bench and ``--retrain-best`` read it)::

    tune.yaml        the settings, the space, the command that made it
    split.csv        the one split every trial uses
    schedule.db      the Optuna storage (SQLite; absent when --storage names a server)
    trials/trial-NNNN/   ordinary run folders, one per trial
    trials.csv       number, state, value(s), reason, params, epochs, duration, run_dir
    best.yaml        the best trial's config: ``cnnlab train --config best.yaml`` trains it
    pareto.csv       two objectives: the trials on the Pareto front
    tune.html        the self-contained report
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from cnnlab.atomic import atomic_write_text
from cnnlab.errors import ConfigError, RunError
from cnnlab.tuning.space import Space, parse_space

FORMAT = "cnnlab-tune/1"
TUNE_YAML = "tune.yaml"
SPLIT = "split.csv"
TRIALS = "trials"
TRIALS_CSV = "trials.csv"
BEST_YAML = "best.yaml"
PARETO_CSV = "pareto.csv"
HTML = "tune.html"
METRICS = ("val/macro_f1", "val/accuracy")  # objectives read per epoch from metrics.csv
PARAMS = "params"  # objective: the model's parameter count (minimised)
SAMPLERS = ("tpe", "random", "cmaes", "nsga2", "grid")
PRUNERS = ("median", "hyperband", "none")
# Fields that must match when a command is run again on an existing tune folder.
_SAME = ("data", "space_name", "space", "objectives", "epochs", "values", "sampler", "pruner")
# Shared values no trial reads (trials train --epochs): train.epochs is the length of
# --retrain-best, so it may be chosen after the search; left out again, the saved one stays.
RETRAIN_ONLY = ("train.epochs",)
_OPTION = {"space_name": "--space", "epochs": "--epochs", "sampler": "--sampler",
           "pruner": "--pruner"}  # fmt: skip


@dataclass
class Settings:
    """Everything a worker needs to run trials of a tune; saved as ``tune.yaml``."""

    data: str
    space_name: str
    space: dict[str, Any]
    trials: int
    epochs: int
    objectives: list[str]
    sampler: str
    pruner: str
    values: dict[str, Any] = field(default_factory=dict)  # the user's KEY=VALUE, dotted
    study: str = ""  # the study's name in the storage
    seed: int = 42
    timeout_s: float | None = None
    target: float | None = None
    storage: str | None = None  # None: SQLite in the folder; a server URL, redacted
    command: str = ""

    @property
    def directions(self) -> list[str]:
        return ["minimize" if o == PARAMS else "maximize" for o in self.objectives]

    @property
    def multi(self) -> bool:
        return len(self.objectives) > 1

    def load_space(self) -> Space:
        return parse_space(self.space, self.space_name)


def parse_objectives(text: str) -> list[str]:
    """``val/accuracy,params`` -> two objectives; one metric, optionally with ``params``."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    metrics = [p for p in parts if p in METRICS]
    wrong = [p for p in parts if p not in METRICS and p != PARAMS]
    if wrong or len(metrics) != 1 or len(parts) != len(set(parts)) or len(parts) > 2:
        raise ConfigError(
            f"--objective {text!r}: give one of {', '.join(METRICS)}, optionally followed by "
            f",{PARAMS} (smallest model), e.g. val/accuracy,params"
        )
    return [metrics[0], *[p for p in parts if p == PARAMS]]


def default_folder(space_name: str) -> Path:
    """``tunes/<space>``: fixed, so running the same command again continues the tune."""
    return Path("tunes") / Path(space_name).stem


def write_settings(folder: Path, settings: Settings) -> None:
    from cnnlab import __version__

    doc = {
        "format": FORMAT,
        "cnnlab": __version__,
        "updated": datetime.now().isoformat(timespec="seconds"),
        **asdict(settings),
    }
    text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=100)
    atomic_write_text(folder / TUNE_YAML, text)


def read_settings(folder: str | Path) -> Settings:
    file = Path(folder) / TUNE_YAML
    if not file.is_file():
        raise RunError(f"{folder}: no {TUNE_YAML}, not a tune folder")
    try:
        doc = yaml.safe_load(file.read_text(encoding="utf-8"))
        names = Settings.__dataclass_fields__
        return Settings(**{k: v for k, v in doc.items() if k in names})
    except (yaml.YAMLError, TypeError, AttributeError) as exc:
        raise RunError(f"{file}: not readable tune settings ({exc})") from None


def join_or_create(folder: Path, settings: Settings) -> Settings:
    """Create the tune folder, or continue the tune already in it when it is the same one.

    Running the same command again continues until ``trials`` have finished (a larger
    ``--trials`` extends the tune), and may give another ``train.epochs`` (the length of
    ``--retrain-best``, never read by a trial); any other difference is refused, naming
    each one with its saved and its new value.
    """
    if (folder / TUNE_YAML).is_file():
        saved = read_settings(folder)
        for key in RETRAIN_ONLY:
            if key in saved.values and key not in settings.values:
                settings.values[key] = saved.values[key]
        changed = [text for name in _SAME for text in differences(name, saved, settings)]
        if changed:
            raise ConfigError(
                f"{folder} was made with {'; '.join(changed)}; run the same command to "
                "continue that tune, or choose another --out"
            )
        settings.study = saved.study
        write_settings(folder, settings)
        return settings
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise ConfigError(f"{folder} exists and is not a tune folder; choose another --out")
    folder.mkdir(parents=True, exist_ok=True)
    settings.study = settings.study or f"cnnlab-tune-{folder.resolve().name}"
    write_settings(folder, settings)
    return settings


def differences(name: str, saved: Settings, given: Settings) -> list[str]:
    """How field ``name`` of the saved settings differs from the given ones, as the user
    types it: ``--epochs 4 (now 6)``, ``track.backend=none (not given now)``."""
    old, new = getattr(saved, name), getattr(given, name)
    if old == new or (name == "space" and saved.space_name != given.space_name):
        return []  # another --space is said once, by its name
    if name == "values":
        return _value_differences(old, new)
    if name == "space":
        entries = {**old.get("set", {}), **old.get("params", {})}
        now = {**new.get("set", {}), **new.get("params", {})}
        keys = sorted(k for k in {*entries, *now} if entries.get(k) != now.get(k))
        return [f"another version of the space {saved.space_name} (entries changed since: "
                f"{', '.join(keys)})"]  # fmt: skip
    if name == "objectives":
        return [f"--objective {','.join(old)} (now {','.join(new)})"]
    if name == "data":
        return [f"the data {old} (now {new})"]
    return [f"{_OPTION.get(name, name)} {old} (now {new})"]


def _value_differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    out = []
    for key in sorted({*old, *new} - set(RETRAIN_ONLY)):
        if key not in new:
            out.append(f"{key}={old[key]} (not given now)")
        elif key not in old:
            out.append(f"no {key} (now {key}={new[key]})")
        elif old[key] != new[key]:
            out.append(f"{key}={old[key]} (now {key}={new[key]})")
    return out


def make_split(folder: Path, settings: Settings) -> Path:
    """Scan the data once and save the split every trial uses (the study's own split maker)."""
    from cnnlab.studies.folder import make_split as study_split
    from cnnlab.studies.plan import Cell, Plan

    if (folder / SPLIT).is_file():
        return folder / SPLIT
    base = {**settings.load_space().fixed, **settings.values}
    plan = Plan(settings.data, [Cell("c1", "tune", {})], [settings.seed], base)
    return study_split(folder, plan)
