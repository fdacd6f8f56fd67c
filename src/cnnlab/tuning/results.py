"""What a tune leaves behind: ``trials.csv``, ``best.yaml`` + ``best.json``, ``pareto.csv``.

Only complete trials can be best: pruned, failed (diverged, NaN, crashed) and running trials
are listed in ``trials.csv`` with their state and reason, never chosen.

Processes sharing one study (machines with one PostgreSQL storage) each train into their own
tune folder, and each one's results list every trial of the study. A trial trained in this
folder has its ``run_dir`` relative to it (``trials/trial-0003``); one trained elsewhere has
the other folder's absolute path, prefixed with its host when that is another machine
(``gpu2:/home/me/tunes/cnn/trials/trial-0003``). When the best trial was trained elsewhere,
``best.yaml`` is read from its run folder when this machine can, and otherwise rebuilt from
its sampled values (the same configuration the trial trained).
"""

from __future__ import annotations

import csv
import io
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from cnnlab.atomic import atomic_write_text
from cnnlab.runs import read_json, write_json
from cnnlab.schedule.worker import ERROR_ATTR, WORKER_ATTR
from cnnlab.tuning.folder import BEST_YAML, PARETO_CSV, SPLIT, TRIALS_CSV, Settings
from cnnlab.tuning.search import EPOCHS, REASON, RUN_DIR, SURPLUS, TRIAL_ONLY, TUNE_DIR

if TYPE_CHECKING:
    import optuna

BEST_JSON = "best.json"
BASE_COLUMNS = ["number", "state"]
TAIL_COLUMNS = ["reason", "epochs", "duration_s", "run_dir"]


def value_columns(settings: Settings) -> list[str]:
    return list(settings.objectives)


def _reason(trial: optuna.trial.FrozenTrial) -> str:
    from optuna.trial import TrialState

    if trial.state == TrialState.PRUNED:
        return str(trial.user_attrs.get(REASON) or "pruned")
    if trial.state == TrialState.FAIL:
        return str(trial.user_attrs.get(ERROR_ATTR) or "its worker stopped (the trial is retried)")
    return ""


def run_location(folder: Path, trial: optuna.trial.FrozenTrial) -> tuple[str, Path | None]:
    """Where a trial's run folder is: its ``run_dir`` text, and its path when this machine
    can read it (None: on another machine, or not made yet)."""
    rel = str(trial.user_attrs.get(RUN_DIR) or "")
    if not rel:
        return "", None
    if (folder / rel).is_dir():  # trial numbers are unique in a study: it is this trial's
        return rel, folder / rel
    trained_in = trial.user_attrs.get(TUNE_DIR)
    if not trained_in or Path(trained_in) == folder.resolve():
        return rel, None  # not started yet (or from before tune_dir was recorded)
    host = str(trial.user_attrs.get(WORKER_ATTR, "")).rpartition(":")[0]
    other = Path(trained_in) / rel
    if host and host != socket.gethostname():
        return f"{host}:{other}", None
    return str(other), other if other.is_dir() else None


def local_run(folder: Path, run_dir: str) -> Path | None:
    """The run folder a ``run_dir`` text names when it was trained in this tune folder."""
    if not run_dir or Path(run_dir).is_absolute() or ":" in Path(run_dir).parts[0]:
        return None
    return folder / run_dir if (folder / run_dir).is_dir() else None


def trial_rows(folder: Path, study: optuna.Study, settings: Settings) -> list[dict[str, Any]]:
    """One row per trial of the budget (surplus trials, dropped at once, are left out)."""
    from optuna.trial import TrialState

    rows = []
    for trial in study.get_trials(deepcopy=False):
        if trial.user_attrs.get(SURPLUS):
            continue
        row: dict[str, Any] = {"number": trial.number, "state": trial.state.name}
        values = trial.values if trial.state == TrialState.COMPLETE else None
        for i, name in enumerate(value_columns(settings)):
            row[name] = "" if values is None else values[i]
        duration = trial.duration.total_seconds() if trial.duration else ""
        row.update(
            reason=_reason(trial),
            epochs=trial.user_attrs.get(EPOCHS, ""),
            duration_s=round(duration, 2) if duration != "" else "",
            run_dir=run_location(folder, trial)[0],
        )
        row.update(trial.params)
        rows.append(row)
    return rows


def param_columns(rows: list[dict[str, Any]], settings: Settings) -> list[str]:
    fixed = {*BASE_COLUMNS, *value_columns(settings), *TAIL_COLUMNS}
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in fixed and k not in keys]
    return keys


def write_trials_csv(folder: Path, rows: list[dict[str, Any]], settings: Settings) -> None:
    columns = [*BASE_COLUMNS, *value_columns(settings), *param_columns(rows, settings)]
    columns += TAIL_COLUMNS
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(folder / TRIALS_CSV, buffer.getvalue())


def pareto_front(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Complete trials no other trial beats on both objectives, most accurate first."""
    return sorted(study.best_trials, key=lambda t: (-t.values[0], t.values[1]))


def chosen_trial(study: optuna.Study, settings: Settings) -> optuna.trial.FrozenTrial | None:
    """The best complete trial; with two objectives, the smallest model on the front that
    reaches ``--target`` (else the most accurate one on the front). None: none complete."""
    from optuna.trial import TrialState

    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return None
    if not settings.multi:
        return study.best_trial
    front = pareto_front(study)
    if settings.target is not None:
        reaching = [t for t in front if t.values[0] >= settings.target]
        if reaching:
            return min(reaching, key=lambda t: (t.values[1], -t.values[0]))
    return front[0]


def _restore_defaults(config: dict[str, Any], chosen: dict[str, Any]) -> None:
    """Put back the config's defaults for the trial-only settings nobody chose (a full
    report with Grad-CAM for the run ``best.yaml`` trains)."""
    from cnnlab.config import Config

    defaults = Config()
    for key in TRIAL_ONLY:
        if key not in chosen:
            section, name = key.split(".")
            config.setdefault(section, {})[name] = getattr(getattr(defaults, section), name)


def write_best(folder: Path, trial: optuna.trial.FrozenTrial, settings: Settings) -> None:
    """``best.yaml`` (the trial's resolved config, trainable with ``cnnlab train --config``)
    and ``best.json`` (its number, values and sampled parameters)."""
    where, run_dir = run_location(folder, trial)
    if run_dir is not None and (run_dir / "config.yaml").is_file():
        config = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
        came = ""
    else:  # trained by another machine sharing the study
        config = trial_config(folder, trial, settings)
        came = f"# Its run folder, {where}, is not readable here: rebuilt from its values.\n"
    config["name"] = None  # `cnnlab train` names the new run itself
    config["runs_dir"] = "runs"
    _restore_defaults(config, {**settings.load_space().fixed, **settings.values})
    values = dict(zip(settings.objectives, trial.values, strict=True))
    shown = ", ".join(f"{k}={v:.4g}" for k, v in values.items())
    header = (
        f"# Best trial {trial.number} of the tune in {folder} ({shown}).\n{came}"
        f"# Train it again, e.g. with more epochs:\n"
        f"#   cnnlab train --config {folder / BEST_YAML} --epochs 30\n"
    )
    body = yaml.safe_dump(config, sort_keys=False, allow_unicode=True, width=100)
    atomic_write_text(folder / BEST_YAML, header + body)
    write_json(
        folder / BEST_JSON,
        {
            "trial": trial.number,
            "values": values,
            "params": dict(trial.params),
            "run_dir": where,
            "target": settings.target,
        },
    )


def trial_config(
    folder: Path, trial: optuna.trial.FrozenTrial, settings: Settings
) -> dict[str, Any]:
    """The configuration a trial trained, made again from its sampled values (as the
    objective made it, on this folder's split: the same data and seed give the same one)."""
    from cnnlab.api import make_config

    space = settings.load_space()
    values = space.config_values(dict(trial.params), settings.values)
    values.update({"train.epochs": settings.epochs, "train.seed": settings.seed})
    values["data.split_file"] = str((folder / SPLIT).resolve())
    return make_config(settings.data, values=values).model_dump(mode="json")


def read_best(folder: Path) -> dict[str, Any] | None:
    file = Path(folder) / BEST_JSON
    return read_json(file) if file.is_file() else None


def write_pareto(folder: Path, study: optuna.Study, settings: Settings) -> None:
    front = pareto_front(study)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["number", *settings.objectives, "run_dir"])
    for t in front:
        writer.writerow([t.number, *t.values, run_location(folder, t)[0]])
    atomic_write_text(folder / PARETO_CSV, buffer.getvalue())


def write_outputs(folder: Path, study: optuna.Study, settings: Settings) -> list[dict[str, Any]]:
    """Write every result file from the storage; returns the trial rows."""
    rows = trial_rows(folder, study, settings)
    write_trials_csv(folder, rows, settings)
    best = chosen_trial(study, settings)
    if best is not None:
        write_best(folder, best, settings)
    if settings.multi and best is not None:
        write_pareto(folder, study, settings)
    return rows
