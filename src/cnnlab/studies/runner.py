"""Run a study's (cell, seed) jobs through the shared scheduling engine.

The jobs are a grid handed out by Optuna's ``GridSampler`` (parameter ``job``); each trial
trains one ordinary run folder ``runs/<cell>-seed<N>`` with :func:`train_in_folder`, so a
killed study resumes where it stopped and several processes or machines share the work.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnnlab.console import quietly, warnings_once
from cnnlab.runs import Run
from cnnlab.schedule.pool import Pace
from cnnlab.schedule.runs import train_in_folder
from cnnlab.schedule.storage import open_storage, open_study, storage_url
from cnnlab.schedule.worker import grid_has_work, grid_points, run_worker, take_grid_point
from cnnlab.studies.folder import RUNS, SPLIT, load_plan, storage_study_name
from cnnlab.studies.plan import Plan

if TYPE_CHECKING:
    import optuna

PARAM = "job"  # the grid parameter: index into Plan.jobs()


def open_grid(folder: Path, plan: Plan, url: str | None) -> optuna.Study:
    """The study's Optuna study (created by the first worker, joined by the others)."""
    from optuna.samplers import GridSampler

    jobs = list(range(len(plan.jobs())))
    storage = open_storage(storage_url(url, folder))
    # A fixed seed gives every worker the same grid order, as Optuna advises for many workers.
    sampler = GridSampler({PARAM: jobs}, seed=0)
    return open_study(storage_study_name(folder, plan), storage, sampler, "maximize")


def progress_counts(study: optuna.Study, total: int) -> tuple[int, int]:
    """(finished runs, all runs): finished means done or failed."""
    taken = grid_points(study, PARAM)
    return sum(v in ("done", "failed") for v in taken.values()), total


def _score(summary: dict[str, Any]) -> float:
    metrics = summary.get("metrics", {})
    split = metrics.get("val") or metrics.get("test") or {}
    return float(split.get("accuracy", 0.0))


def make_objective(folder: Path, plan: Plan, study: optuna.Study, on_start: Any = None) -> Any:
    """The trial function: the grid point's cell and seed, trained into its run folder."""
    jobs = plan.jobs()
    points = list(range(len(jobs)))

    def objective(trial: Any) -> float:
        job = take_grid_point(study, trial, PARAM, points)
        cell, seed = jobs[job]
        rel = f"{RUNS}/{plan.run_name(cell, seed)}"
        trial.set_user_attr("cell", cell.id)
        trial.set_user_attr("seed", seed)
        trial.set_user_attr("run_dir", rel)
        if on_start is not None:
            on_start(cell, seed)
        cfg = plan.config(cell, seed, (folder / SPLIT).resolve())
        with quietly():
            run = train_in_folder(cfg, folder / rel)
        return _score(run.summary)

    return objective


def work(folder: str | Path, url: str | None = None, show_progress: bool = False) -> None:
    """One worker: train jobs of the study in ``folder`` until none is left for it.

    The entry point of every worker process (``--workers K``, other machines); importable and
    picklable by name for ``spawn``. Each run's figures are drawn while the next run trains
    (:func:`~cnnlab.evaluation.background.deferred_figures`); all exist when this returns.
    """
    from cnnlab.evaluation.background import deferred_figures
    from cnnlab.schedule.storage import quiet_storage_threads

    # the runs share one dataset's warnings; a lost storage is said once, not per thread
    with deferred_figures(), warnings_once(), quiet_storage_threads():
        _work(Path(folder), url, show_progress)


def _work(folder: Path, url: str | None, show_progress: bool) -> None:
    plan, _ = load_plan(folder)
    study = open_grid(folder, plan, url)
    points = list(range(len(plan.jobs())))

    def has_work(st: optuna.Study) -> bool:
        return grid_has_work(st, PARAM, points)

    if not show_progress:
        run_worker(study, make_objective(folder, plan, study), has_work)
        return
    from rich.console import Console

    from cnnlab.console import is_quiet, progress_bar

    with progress_bar(out=Console(highlight=False)) as bar:
        done, total = progress_counts(study, len(points))
        task = bar.add_task("study", total=total, completed=done, extra="")
        pace = Pace(done)

        def on_start(cell: Any, seed: int) -> None:
            bar.update(task, extra=f"{cell.id} seed {seed}: {cell.label}")

        def on_trial(st: optuna.Study, trial: Any) -> None:
            done = progress_counts(st, total)[0]
            bar.update(task, completed=done, extra="")
            line = finished_line(folder, plan, trial, done, total, pace)
            if line and not is_quiet():  # above the bar; the only progress in a log file
                bar.console.print(line, markup=False, soft_wrap=True)

        run_worker(study, make_objective(folder, plan, study, on_start), has_work, on_trial)


def finished_line(
    folder: Path, plan: Plan, trial: Any, done: int, total: int, pace: Pace
) -> str | None:
    """``run 2/4 done: c1 seed 42 (lr=0.01): val acc 0.909, test acc 0.885, 12 s; eta 0:00:25``

    None for a trial that trained nothing (a grid point another worker already held).
    """
    from optuna.trial import TrialState

    from cnnlab.schedule.runs import is_divergence
    from cnnlab.schedule.worker import ERROR_ATTR

    attrs = trial.user_attrs
    if trial.state not in (TrialState.COMPLETE, TrialState.FAIL) or "cell" not in attrs:
        return None
    labels = {c.id: c.label for c in plan.cells}
    head, eta = f"run {done}/{total}", pace.eta(done, total)
    what = f"{attrs['cell']} seed {attrs['seed']} ({labels.get(attrs['cell'], '?')})"
    took = (trial.datetime_complete - trial.datetime_start).total_seconds()
    if trial.state == TrialState.FAIL:
        reason = attrs.get(ERROR_ATTR) or "stopped (queued again)"
        if attrs.get(ERROR_ATTR) and not is_divergence(reason):
            reason += f" (once fixed, `cnnlab study --resume {folder}` trains it again)"
        return f"{head} failed: {what}: {reason}; eta {eta}"
    metrics = Run(folder / attrs["run_dir"]).summary.get("metrics", {})
    scores = [
        f"{split} acc {metrics[split]['accuracy']:.3f}"
        for split in ("val", "test")
        if "accuracy" in metrics.get(split, {})
    ]
    return f"{head} done: {what}: {', '.join(scores)}, {took:.0f} s; eta {eta}"


def retry_failed(folder: Path, plan: Plan, url: str | None) -> list[str]:
    """Queue again each failed run whose failure was not divergence (``--resume``), once.

    A run that failed on a missing file, a full disk, memory or a killed worker may succeed
    once the cause is fixed, and following "restore them" must be able to finish the study.
    A diverged run is the setting's result and is kept. Returns the retried runs' folders.
    """
    from optuna.trial import TrialState

    from cnnlab.schedule.runs import clear_failure, is_divergence, read_failure
    from cnnlab.schedule.worker import ERROR_ATTR, queue_retry

    study = open_grid(folder, plan, url)
    failed = {p for p, status in grid_points(study, PARAM).items() if status == "failed"}
    latest: dict[Any, Any] = {}
    trials = study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
    for trial in sorted(trials, key=lambda t: t.number):  # the latest failure of each point
        if trial.params.get(PARAM) in failed and trial.user_attrs.get(ERROR_ATTR):
            latest[trial.params[PARAM]] = trial
    jobs, retried = plan.jobs(), []
    for point, trial in sorted(latest.items()):
        run_dir = folder / RUNS / plan.run_name(*jobs[point])
        if is_divergence(read_failure(run_dir) or str(trial.user_attrs[ERROR_ATTR])):
            continue
        queue_retry(study, trial)
        clear_failure(run_dir)
        retried.append(run_dir.name)
    return retried


def run_jobs(folder: Path, plan: Plan, url: str | None, workers: int) -> None:
    """Train every job: in this process, or in ``workers`` processes sharing the storage."""
    from cnnlab.console import warn
    from cnnlab.schedule.pool import run_pool
    from cnnlab.schedule.storage import STORAGE_LOST_EXIT, StorageLost

    study = open_grid(folder, plan, url)  # creates tables and study before workers start
    if workers <= 1:
        work(folder, url, show_progress=True)
        return
    total = len(plan.jobs())
    codes = run_pool(
        workers,
        work,
        (str(folder), url),
        progress=lambda: progress_counts(study, total),
        description="study",
    )
    if STORAGE_LOST_EXIT in codes:  # the workers said nothing: ask the storage why
        progress_counts(study, total)  # raises the driver's error while the server is down
        raise StorageLost("it stopped answering for a while")
    if any(codes):
        warn(f"{sum(c != 0 for c in codes)} worker process(es) ended with an error")
    work(folder, url, show_progress=True)  # picks up what a dead worker left behind
