"""The Python API of tuning: set up, run (one or many workers), report, retrain the best.

Example:
    >>> import cnnlab
    >>> t = cnnlab.tune("data/", space="cnn", trials=30, epochs=5)   # doctest: +SKIP
    >>> t.best_params                                                 # doctest: +SKIP
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnnlab.console import info, result, warn
from cnnlab.errors import ConfigError, interrupted_as
from cnnlab.tuning.folder import (
    BEST_YAML,
    HTML,
    PRUNERS,
    SAMPLERS,
    TRIALS_CSV,
    Settings,
    default_folder,
    join_or_create,
    make_split,
    parse_objectives,
    read_settings,
)
from cnnlab.tuning.space import Space, load_space, split_key

if TYPE_CHECKING:
    import optuna

    from cnnlab.studies.study import Study


class Tuning:
    """A tune folder; the properties read its result files."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @property
    def settings(self) -> Settings:
        return read_settings(self.path)

    @property
    def trials(self) -> list[dict[str, str]]:
        """``trials.csv``: one row per trial (state, value(s), reason, params, run_dir)."""
        file = self.path / TRIALS_CSV
        if not file.is_file():
            return []
        with file.open(newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))

    @property
    def best(self) -> dict[str, Any] | None:
        """The best trial (``best.json``): number, values, params, run_dir; None if none."""
        from cnnlab.tuning.results import read_best

        return read_best(self.path)

    @property
    def best_params(self) -> dict[str, Any]:
        """The best trial's sampled values, by space entry (``{}`` when no trial completed)."""
        return dict((self.best or {}).get("params", {}))

    @property
    def best_config(self) -> Path:
        return self.path / BEST_YAML

    @property
    def report(self) -> Path:
        return self.path / HTML

    def retrain_best(self, seeds: int = 3, epochs: int | None = None) -> Study:
        """Train the best configuration over ``seeds`` seeds as a study; see
        :func:`cnnlab.tuning.retrain.retrain_best`."""
        from cnnlab.tuning.retrain import retrain_best

        return retrain_best(self.path, seeds, epochs)

    def __repr__(self) -> str:
        return f"Tuning({str(self.path)!r})"


def make_settings(
    data: str | Path,
    space: str | Path | dict[str, Any] = "cnn",
    trials: int = 20,
    epochs: int = 3,
    objective: str = "val/macro_f1",
    sampler: str | None = None,
    pruner: str | None = None,
    values: dict[str, Any] | None = None,
    **extra: Any,
) -> Settings:
    """Validated settings: every error (space, objective, sampler, pruner) before any trial."""
    loaded = load_space(space)
    values = dict(values or {})
    _check_values(loaded, values)
    objectives = parse_objectives(objective)
    multi = len(objectives) > 1
    sampler = sampler or ("nsga2" if multi else "tpe")
    pruner = pruner or ("none" if multi else "median")
    if sampler not in SAMPLERS:
        raise ConfigError(f"--sampler {sampler!r}: choose one of {', '.join(SAMPLERS)}")
    if pruner not in PRUNERS:
        raise ConfigError(f"--pruner {pruner!r}: choose one of {', '.join(PRUNERS)}")
    if multi and pruner != "none":
        raise ConfigError("pruning needs one objective; with two, use --pruner none")
    if multi and sampler == "cmaes":
        raise ConfigError("--sampler cmaes handles one objective; for two use nsga2 or tpe")
    if trials < 1 or epochs < 1:
        raise ConfigError("--trials and --epochs must be at least 1")
    if sampler == "grid" and trials > loaded.grid_size():
        info(f"the grid has {loaded.grid_size()} points: {loaded.grid_size()} trials")
        trials = loaded.grid_size()
    path = Path(data)
    return Settings(
        data=str(path.expanduser().resolve()) if path.exists() else str(data),
        space_name=loaded.name,
        space=loaded.to_dict(),
        trials=trials,
        epochs=epochs,
        objectives=objectives,
        sampler=sampler,
        pruner=pruner,
        values=values,
        seed=int(values.get("train.seed", 42)),
        **extra,
    )


def equivalent_command(settings: Settings, out: str | Path | None) -> str:
    """The ``cnnlab tune`` command line that makes (or continues) this tune."""
    import shlex

    parts = ["cnnlab", "tune", settings.data, "--space", settings.space_name]
    parts += ["--trials", str(settings.trials), "--epochs", str(settings.epochs)]
    parts += ["--objective", ",".join(settings.objectives), "--sampler", settings.sampler]
    parts += ["--pruner", settings.pruner]
    if settings.target is not None:
        parts += ["--target", str(settings.target)]
    if out is not None:
        parts += ["--out", str(out)]
    parts += [f"{k}={v}" for k, v in settings.values.items()]
    return " ".join(shlex.quote(p) for p in parts)


def _check_values(space: Space, values: dict[str, Any]) -> None:
    """The user's KEY=VALUE must be valid and must not set a searched key; the space's
    ranges must be valid with them; the model must be available."""
    from cnnlab.api import make_config
    from cnnlab.studies.plan import Cell
    from cnnlab.studies.study import _check_weights

    searched = {split_key(p.key)[0] for p in space.params}
    clash = sorted(searched & set(values))
    if clash:
        raise ConfigError(
            f"{clash[0]} is searched by the space {space.name}; drop {clash[0]}=... or "
            "use a space file without it"
        )
    space.check(values)
    cfg = make_config("data", values=space.config_values({}, values))
    _check_weights(Cell("space", space.name, {}), cfg)


def run_tune(
    settings: Settings,
    out: str | Path | None = None,
    storage: str | None = None,
    workers: int = 1,
) -> Tuning:
    """Create (or continue) the tune folder, run trials until the budget is used, report.

    Raises:
        StorageLost: the storage stopped answering; running the same command again goes on.
    """
    from cnnlab.schedule.storage import lost_storage, redact, storage_error, storage_url
    from cnnlab.tuning.tracking import parent_run, track_outputs

    if workers < 1:
        raise ConfigError(f"--workers {workers}: need at least 1")
    folder = _tune_folder(out, settings)  # refused inside the dataset before anything is made
    storage = storage or _recorded_storage(folder)
    settings.storage = redact(storage) if storage else None
    settings = _set_up(folder, settings, storage)
    info(f"tune folder: {folder} ({settings.trials} trials of {settings.epochs} epochs)")
    try:
        with parent_run(folder, settings) as parent:  # every trial is nested under the tune
            with interrupted_as(
                f"{folder} keeps its finished trials; the stopped trial is queued again",
                _resume_command(settings, folder),
            ):
                _run_workers(folder, settings, storage, workers)
            tuning = report_tune(folder, storage)
            track_outputs(parent, tuning)
    except Exception as exc:
        if storage_error(exc) is None:
            raise
        raise lost_storage(storage or storage_url(None, folder), exc) from None
    return tuning


def _tune_folder(out: str | Path | None, settings: Settings) -> Path:
    """``out`` or ``tunes/<space>``: never inside the dataset (its next scan would meet the
    tune folder as a class), where the default moves beside the dataset, as ``runs_dir``.

    Raises:
        ConfigError: ``out`` is inside the dataset folder.
    """
    from cnnlab.paths import dataset_folder, outside_dataset

    given = Path(out).expanduser() if out else None
    default = default_folder(settings.space_name)
    return outside_dataset(given, default, dataset_folder(settings.data), "--out")


def _set_up(folder: Path, settings: Settings, storage: str | None) -> Settings:
    """Check the storage, then make the folder, its split and the study in the storage.

    The storage is checked first (a wrong password or port is the commonest mistake), and a
    folder this call made is removed again when any step fails, so the next attempt starts
    clean instead of meeting a ``tune.yaml`` that records the wrong storage.
    """
    from cnnlab.schedule.storage import open_storage, storage_url
    from cnnlab.tuning.search import open_tune

    if storage:
        open_storage(storage_url(storage, folder)).engine.dispose()
    made = _new_files(folder)
    try:
        settings = join_or_create(folder, settings)
        make_split(folder, settings)
        open_tune(folder, settings, storage, pooled=False)  # tables and study before workers
    except BaseException:
        made()
        raise
    return settings


def _new_files(folder: Path) -> Callable[[], None]:
    """A function that removes what was added to ``folder`` since now, if it held no tune
    (nothing, when it did: a continued tune keeps everything)."""
    import shutil

    if (folder / "tune.yaml").is_file():
        return lambda: None
    existed = folder.is_dir()
    before = set(folder.iterdir()) if existed else set()

    def remove() -> None:
        if not existed:
            shutil.rmtree(folder, ignore_errors=True)
            return
        for path in set(folder.iterdir()) - before:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)

    return remove


def _resume_command(settings: Settings, folder: Path) -> str:
    """The command that continues the tune; tune.yaml keeps no password, so say to put it
    back where ``***`` stands (without printing it)."""
    command = settings.command or f"the same cnnlab tune command with --out {folder}"
    if settings.storage and "***" in settings.storage:
        command += " (with the --storage password in place of ***)"
    return command


def _recorded_storage(folder: Path) -> str | None:
    """The storage a tune folder was made with, so running the command again without
    ``--storage`` continues the same study instead of starting one in a new SQLite file."""
    if not (folder / "tune.yaml").is_file():
        return None
    recorded = read_settings(folder).storage
    if recorded and "***" in recorded:
        raise ConfigError(
            f"{folder} uses the storage {recorded}; pass it again with --storage "
            "(its password is not saved in tune.yaml)"
        )
    return recorded


def _run_workers(folder: Path, settings: Settings, url: str | None, workers: int) -> None:
    from cnnlab.schedule.pool import run_pool
    from cnnlab.schedule.storage import STORAGE_LOST_EXIT, StorageLost
    from cnnlab.tuning.search import work

    timeout = settings.timeout_s
    if workers > 1:
        from cnnlab.tuning.search import budget_counts, open_tune

        study = open_tune(folder, settings, url, pooled=True)  # the parent only reads it
        codes = run_pool(
            workers,
            work,
            (str(folder), url, True, timeout),
            progress=lambda: (budget_counts(study)[0], settings.trials),
            description="tune",
        )
        if STORAGE_LOST_EXIT in codes:  # the workers said nothing: ask the storage why
            budget_counts(study)  # raises the driver's error while the server is down
            raise StorageLost("it stopped answering for a while")
        if any(codes):
            warn(f"{sum(c != 0 for c in codes)} worker process(es) ended with an error")
    _work_with_progress(folder, settings, url, timeout)  # also picks up a dead worker's trial


def _work_with_progress(
    folder: Path, settings: Settings, url: str | None, timeout: float | None
) -> None:
    """Run trials in this process, a line per trial; after workers, only what they left (a
    dead worker's trial), without a second bar starting at 0 when nothing is left."""
    from cnnlab.console import is_quiet, progress_bar
    from cnnlab.schedule.pool import Pace
    from cnnlab.schedule.worker import reclaim_dead_trials
    from cnnlab.tuning.search import budget_counts, has_work, open_tune, work

    study = open_tune(folder, settings, url, pooled=True)
    reclaim_dead_trials(study)  # what work() does first, so has_work sees the retries
    if not has_work(study, settings.trials, None):
        return
    with progress_bar() as bar:
        done = budget_counts(study)[0]
        task = bar.add_task("tune", total=settings.trials, completed=done, extra="")
        pace = Pace()

        def on_trial(study: optuna.Study, trial: Any) -> None:
            done, best = budget_counts(study)[0], _best_text(study, settings)
            bar.update(task, completed=done, extra=best)
            line = _trial_line(trial, settings, f"{done}/{settings.trials}", best)
            if line and not is_quiet():  # above the bar; the only progress in a log file
                eta = pace.eta(done, settings.trials)
                bar.console.print(f"{line}; eta {eta}", markup=False, soft_wrap=True)

        work(folder, url, False, timeout, on_trial)


def _trial_line(trial: Any, settings: Settings, count: str, best: str) -> str | None:
    """``trial 3 complete (4/20): val/macro_f1 0.7682, 12 s; best: 0.7682`` (None for a
    trial outside the budget: a surplus one, or one whose worker died and is retried)."""
    from optuna.trial import TrialState

    from cnnlab.schedule.worker import ERROR_ATTR
    from cnnlab.tuning.search import REASON, counted

    if not counted(trial) or not trial.state.is_finished():
        return None
    state = {TrialState.FAIL: "failed"}.get(trial.state, trial.state.name.lower())
    head = f"trial {trial.number} ({count})"
    if trial.state == TrialState.COMPLETE:
        took = (trial.datetime_complete - trial.datetime_start).total_seconds()
        pairs = zip(settings.objectives, trial.values, strict=True)
        values = ", ".join(f"{o} {v:.4g}" for o, v in pairs)
        return f"{head} complete: {values}, {took:.0f} s; {best}".rstrip("; ")
    reason = str(trial.user_attrs.get(REASON if state == "pruned" else ERROR_ATTR) or state)
    return f"{head} {reason}" if reason.startswith(state) else f"{head} {state}: {reason}"


def _best_text(study: optuna.Study, settings: Settings) -> str:
    from cnnlab.tuning.results import chosen_trial

    best = chosen_trial(study, settings)
    if best is None:
        return ""
    return "best: " + ", ".join(f"{v:.4g}" for v in best.values)


def report_tune(folder: str | Path, storage: str | None = None) -> Tuning:
    """Rebuild trials.csv, best.yaml, pareto.csv and tune.html from the storage.

    Without ``storage``, the one the tune was made with (``tune.yaml``) is used.

    Raises:
        ConfigError: the storage is unknown (a password to give again), holds no such study,
            or holds no trial while ``trials.csv`` lists some: the results are left as they
            are rather than replaced by an empty table.
    """
    from cnnlab.tuning.html import write_html
    from cnnlab.tuning.results import write_outputs

    folder = Path(folder)
    settings = read_settings(folder)
    storage = storage or _recorded_storage(folder)
    study = _load_tune(folder, settings, storage)
    rows = write_outputs(folder, study, settings)
    write_html(folder, study, settings, rows)
    _print_result(folder, settings, rows)
    return Tuning(folder)


def _load_tune(folder: Path, settings: Settings, url: str | None) -> optuna.Study:
    """The tune's study, only if the storage really holds it (a report creates nothing)."""
    import optuna

    from cnnlab.schedule.storage import DEFAULT_DB, open_storage, redact, storage_url
    from cnnlab.tuning.search import open_tune

    where = redact(url) if url else str(folder / DEFAULT_DB)
    if url is None and not (folder / DEFAULT_DB).is_file():
        raise ConfigError(f"{folder}: no {DEFAULT_DB}; pass the tune's storage with --storage")
    names = optuna.get_all_study_names(open_storage(storage_url(url, folder)))
    if settings.study not in names:
        raise ConfigError(f"storage {where} holds no study {settings.study!r} (see --storage)")
    study = open_tune(folder, settings, url, pooled=True)
    if not study.get_trials(deepcopy=False) and Tuning(folder).trials:
        raise ConfigError(
            f"storage {where} holds no trial of {settings.study!r}, but {folder / TRIALS_CSV} "
            "lists some: left as it is (is this the storage the tune used?)"
        )
    return study


def _print_result(folder: Path, settings: Settings, rows: list[dict[str, Any]]) -> None:
    from collections import Counter

    from cnnlab.tuning.results import local_run, read_best

    states = Counter(r["state"] for r in rows)
    result(f"tune: {folder}: " + ", ".join(f"{n} {s.lower()}" for s, n in sorted(states.items())))
    if states["RUNNING"]:
        result(
            f"{states['RUNNING']} trial(s) still running in other processes sharing the study; "
            f"when they end, `cnnlab tune report {folder}` brings the results up to date"
        )
    best = read_best(folder)
    if best is None:
        result("no trial completed, so there is no best configuration")
        return
    shown = ", ".join(f"{k}={v:.4g}" for k, v in best["values"].items())
    result(f"best: trial {best['trial']} ({shown}): {best['params']}")
    if local_run(folder, best["run_dir"]) is None:  # another process sharing the study
        result(f"its run folder: {best['run_dir']} (trained by another process of the study)")
    if settings.multi and settings.target is not None:
        reached = best["values"][settings.objectives[0]] >= settings.target
        if not reached:
            result(f"no trial on the Pareto front reaches {settings.target}: most accurate shown")
    result(f"config: {folder / BEST_YAML}  (cnnlab train --config {folder / BEST_YAML})")
    result(f"report: {folder / HTML}")
