"""What a tune leaves behind: ``trials.csv``, ``best.yaml`` + ``best.json``, ``pareto.csv``.

Only complete trials can be best: pruned, failed (diverged, NaN, crashed) and running trials
are listed in ``trials.csv`` with their state and reason, never chosen.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from cnnlab.atomic import atomic_write_text
from cnnlab.runs import read_json, write_json
from cnnlab.schedule.worker import ERROR_ATTR
from cnnlab.tuning.folder import BEST_YAML, PARETO_CSV, TRIALS_CSV, Settings
from cnnlab.tuning.search import EPOCHS, REASON, RUN_DIR, SURPLUS, TRIAL_ONLY

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


def trial_rows(study: optuna.Study, settings: Settings) -> list[dict[str, Any]]:
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
            run_dir=trial.user_attrs.get(RUN_DIR, ""),
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
    run_dir = folder / trial.user_attrs[RUN_DIR]
    config = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
    config["name"] = None  # `cnnlab train` names the new run itself
    config["runs_dir"] = "runs"
    _restore_defaults(config, {**settings.load_space().fixed, **settings.values})
    values = dict(zip(settings.objectives, trial.values, strict=True))
    shown = ", ".join(f"{k}={v:.4g}" for k, v in values.items())
    header = (
        f"# Best trial {trial.number} of the tune in {folder} ({shown}).\n"
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
            "run_dir": trial.user_attrs[RUN_DIR],
            "target": settings.target,
        },
    )


def read_best(folder: Path) -> dict[str, Any] | None:
    file = Path(folder) / BEST_JSON
    return read_json(file) if file.is_file() else None


def write_pareto(folder: Path, study: optuna.Study, settings: Settings) -> None:
    front = pareto_front(study)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["number", *settings.objectives, "run_dir"])
    for t in front:
        writer.writerow([t.number, *t.values, t.user_attrs.get(RUN_DIR, "")])
    atomic_write_text(folder / PARETO_CSV, buffer.getvalue())


def write_outputs(folder: Path, study: optuna.Study, settings: Settings) -> list[dict[str, Any]]:
    """Write every result file from the storage; returns the trial rows."""
    rows = trial_rows(study, settings)
    write_trials_csv(folder, rows, settings)
    best = chosen_trial(study, settings)
    if best is not None:
        write_best(folder, best, settings)
    if settings.multi and best is not None:
        write_pareto(folder, study, settings)
    return rows
