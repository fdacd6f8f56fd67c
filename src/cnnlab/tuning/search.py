"""Trials of a tune on the shared scheduling engine: sampler, pruner, budget, objective.

Each trial samples the space, trains one ordinary run folder ``trials/trial-NNNN`` through
:func:`cnnlab.schedule.runs.train_in_folder` (so a killed trial resumes from its checkpoint
when its retry runs) and returns the objective(s) read from the run's ``summary.json``.

``--trials N`` is the study's total over every invocation and worker: a trial counts once it
is complete, pruned, failed with a reason, running or queued; a trial that finds N others
numbered before it is surplus (two workers asked at once) and is dropped, so the study stops
at exactly N.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnnlab.console import quietly, warnings_once
from cnnlab.errors import CnnlabError, ConfigError
from cnnlab.runs import Run
from cnnlab.schedule.runs import train_in_folder
from cnnlab.schedule.storage import (
    open_storage,
    open_study,
    quiet_storage_threads,
    storage_error,
    storage_url,
)
from cnnlab.schedule.worker import ERROR_ATTR, RunFailed, run_worker
from cnnlab.tuning.folder import PARAMS, SPLIT, TRIALS, Settings, read_settings

if TYPE_CHECKING:
    import optuna

SURPLUS = "surplus"  # user attribute: a trial over the budget, dropped at once
REASON = "reason"  # user attribute: why a trial was pruned
PRUNED = "pruned"  # in a pruned trial's summary.json: by, after_epoch, of_epochs, metric, value
RUN_DIR = "run_dir"  # user attribute: the trial's run folder, relative to the tune folder
TUNE_DIR = "tune_dir"  # user attribute: the absolute tune folder it was trained in (machines
# sharing a study each train into their own folder)
EPOCHS = "epochs"  # user attribute: epochs the trial trained
# A trial's report leaves out the Grad-CAM galleries and the embedding (backbone passes that
# cost more than a head trial's training); a user's KEY=VALUE or the space's `set:` wins, and
# best.yaml and --retrain-best train with the config's own default again.
TRIAL_ONLY = {"eval.explain": False}


def make_sampler(settings: Settings, seed: int | None) -> optuna.samplers.BaseSampler:
    """Optuna's sampler for ``--sampler`` (TPE for one objective, NSGA-II for two)."""
    from optuna import samplers

    name = settings.sampler
    if name == "tpe":  # constant_liar: workers running side by side avoid the same region
        return samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True)
    if name == "random":
        return samplers.RandomSampler(seed=seed)
    if name == "cmaes":
        return samplers.CmaEsSampler(
            seed=seed,
            independent_sampler=samplers.TPESampler(seed=seed),
            warn_independent_sampling=False,
        )
    if name == "nsga2":  # a small population, so a few dozen trials get several generations
        population = max(4, min(50, settings.trials // 4))
        return samplers.NSGAIISampler(seed=seed, population_size=population)
    if name == "grid":
        return samplers.GridSampler(settings.load_space().grid(), seed=0)
    raise ConfigError(f"unknown sampler {name!r}")


def make_pruner(settings: Settings) -> optuna.pruners.BasePruner:
    """Median or Hyperband on the per-epoch validation metric; none for two objectives."""
    from optuna import pruners

    if settings.pruner == "median":
        # The first tenth of the budget (1 to 5 trials) is never pruned: it sets the bar. A
        # fifth was measured too patient: 0.63x the unpruned epochs for 30 trials against
        # 0.37x for a tenth, the same best trial found (bench/RESULTS.md section 11).
        startup = max(1, min(5, settings.trials // 10))
        return pruners.MedianPruner(n_startup_trials=startup, n_warmup_steps=0)
    if settings.pruner == "hyperband":
        return pruners.HyperbandPruner(min_resource=1, max_resource=settings.epochs)
    return pruners.NopPruner()


def open_tune(folder: Path, settings: Settings, url: str | None, pooled: bool) -> optuna.Study:
    """Create or join the tune's study; the sampler is seeded from the trials so far, so a
    resumed tune does not replay the first samples (pooled workers are not seeded)."""
    storage = open_storage(storage_url(url, folder))
    directions = settings.directions if settings.multi else settings.directions[0]
    study = open_study(settings.study, storage, make_sampler(settings, settings.seed), directions)
    seed = None if pooled else settings.seed + len(study.get_trials(deepcopy=False))
    study.sampler = make_sampler(settings, seed)
    study.pruner = make_pruner(settings)
    return study


def counted(trial: optuna.trial.FrozenTrial) -> bool:
    """Whether a trial uses a place of the budget (dead workers' trials do not: their retry
    does, and surplus trials do not)."""
    from optuna.trial import TrialState

    if trial.user_attrs.get(SURPLUS):
        return False
    if trial.state == TrialState.FAIL:
        return bool(trial.user_attrs.get(ERROR_ATTR))
    return True


def budget_counts(study: optuna.Study) -> tuple[int, int]:
    """(finished trials, trials started or queued) of the budget."""
    from optuna.trial import TrialState

    trials = [t for t in study.get_trials(deepcopy=False) if counted(t)]
    done = sum(t.state.is_finished() for t in trials)
    return done, sum(t.state != TrialState.WAITING for t in trials)


def has_work(study: optuna.Study, total: int, deadline: float | None) -> bool:
    """A retry is queued, or fewer than ``total`` trials have been started (before the
    ``--timeout`` deadline)."""
    from optuna.trial import TrialState

    if deadline is not None and time.monotonic() >= deadline:
        return False
    waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    return bool(waiting) or budget_counts(study)[1] < total


def take_place(study: optuna.Study, trial: Any, total: int) -> None:
    """Drop a trial that has ``total`` counted trials numbered before it."""
    before = [t for t in study.get_trials(deepcopy=False) if t.number < trial.number]
    if sum(counted(t) for t in before) >= total:
        trial.set_user_attr(SURPLUS, True)
        study.stop()
        raise RunFailed(f"{SURPLUS}: the study already has {total} trials")


class Pruning:
    """A run observer that reports each epoch's validation metric to the trial and stops
    training when the pruner says so (the run is still finished and reported).

    The last epoch (``epochs``) is reported but never pruned: the training it would save is
    done, and a trial pruned there would throw away a finished run's result.
    """

    def __init__(self, trial: Any, metric: str, epochs: int, pruner: str = "median") -> None:
        self.trial, self.metric, self.epochs, self.pruner = trial, metric, epochs, pruner
        self.stopped: tuple[int, float] | None = None
        self.lost = False  # the storage stopped answering: no more reports

    def run_started(self, run_dir: Path) -> None:
        pass

    def epoch_ended(self, run_dir: Path, epoch: int) -> None:
        from cnnlab.engine.observe import StopRun

        raw = (Run(run_dir).metrics()[-1].get(self.metric) or "").strip()
        value = float(raw) if raw else math.nan
        if not math.isfinite(value):
            return  # a diverged run is failed after training, with its reason
        if self.lost:
            return
        try:
            self.trial.report(value, epoch)
            prune = epoch < self.epochs and self.trial.should_prune()
        except Exception as exc:  # the storage went away: train on, the run is kept
            if storage_error(exc) is None:
                raise
            self.lost = True  # the trial's end meets it and stops the tune, in one line
            return
        if prune:
            self.stopped = (epoch, value)
            raise StopRun

    def run_ended(self, run_dir: Path, status: str) -> None:
        pass

    def summary_fields(self) -> dict[str, Any]:
        """``pruned`` for the run's summary when this pruned it: the trial's summary.json,
        report and ``cnnlab runs`` then say it is a shortened run, not a finished one."""
        if self.stopped is None:
            return {}
        epoch, value = self.stopped
        return {
            PRUNED: {"by": self.pruner, "after_epoch": epoch, "of_epochs": self.epochs,
                     "metric": self.metric, "value": value}
        }  # fmt: skip


def pruned_reason(record: dict[str, Any]) -> str:
    """The trial's reason in trials.csv and tune.html, from the run's ``pruned`` record."""
    return (
        f"pruned ({record.get('by')}) after epoch {record.get('after_epoch')}: "
        f"{record.get('metric')}={float(record.get('value', math.nan)):.4g}"
    )


def objective_values(run: Run, objectives: list[str]) -> list[float]:
    """The run's objective(s): a validation metric of its best epoch, and its parameters."""
    summary = run.summary
    out: list[float] = []
    for name in objectives:
        if name == PARAMS:  # the whole network, as shipped: a frozen backbone counts too
            out.append(float(summary.get("params", {}).get("total", math.nan)))
            continue
        value = summary.get("metrics", {}).get("val", {}).get(name.split("/", 1)[1])
        if value is None:
            raise RunFailed(f"the run has no {name} (is the validation split empty?)")
        out.append(float(value))
    bad = [n for n, v in zip(objectives, out, strict=True) if not math.isfinite(v)]
    if bad:
        raise RunFailed(f"{bad[0]} is not a number")
    return out


def make_objective(folder: Path, settings: Settings, study: optuna.Study) -> Any:
    """The trial function: sample, train the run folder, return the objective(s)."""
    import optuna

    from cnnlab.api import make_config

    space = settings.load_space()
    pruned_by = settings.pruner if not settings.multi else "none"

    def objective(trial: Any) -> Any:
        take_place(study, trial, settings.trials)
        rel = trial.user_attrs.get(RUN_DIR) or f"{TRIALS}/trial-{trial.number:04d}"
        trial.set_user_attr(RUN_DIR, rel)
        trial.set_user_attr(TUNE_DIR, str(folder.resolve()))  # a retry may run elsewhere
        values = {**TRIAL_ONLY, **space.config_values(space.suggest(trial), settings.values)}
        values.update({"train.epochs": settings.epochs, "train.seed": settings.seed})
        values["data.split_file"] = str((folder / SPLIT).resolve())
        try:
            cfg = make_config(settings.data, values=values)
        except CnnlabError as exc:
            raise RunFailed(str(exc)) from None
        pruning = None
        if pruned_by != "none":
            pruning = Pruning(trial, settings.objectives[0], settings.epochs, pruned_by)
        with quietly():
            run = train_in_folder(cfg, folder / rel, [pruning] if pruning else None)
        trial.set_user_attr(EPOCHS, int(run.summary.get("epochs_run", 0)))
        # recorded by Pruning.summary_fields; a trial picked up again after its run finished
        # finds it there too, and stays pruned
        record = run.summary.get(PRUNED)
        if isinstance(record, dict):
            reason = pruned_reason(record)
            trial.set_user_attr(REASON, reason)
            raise optuna.TrialPruned(reason)
        result = objective_values(run, settings.objectives)
        return result[0] if len(result) == 1 else result

    return objective


def work(
    folder: str | Path,
    url: str | None = None,
    pooled: bool = False,
    deadline_s: float | None = None,
    on_trial: Any = None,
) -> None:
    """One worker: run trials until the budget is used (the entry point of every process).

    ``deadline_s`` is seconds from now after which no new trial starts (``--timeout``).
    Each trial's figures are drawn while the next trial trains
    (:func:`~cnnlab.evaluation.background.deferred_figures`); all exist when this returns.
    """
    from cnnlab.evaluation.background import deferred_figures

    folder = Path(folder)
    settings = read_settings(folder)
    study = open_tune(folder, settings, url, pooled)
    deadline = None if deadline_s is None else time.monotonic() + deadline_s
    # the trials share one dataset's warnings; a lost storage is said once, not per thread
    with deferred_figures(), warnings_once(), quiet_storage_threads():
        run_worker(
            study,
            make_objective(folder, settings, study),
            lambda st: has_work(st, settings.trials, deadline),
            on_trial,
        )
