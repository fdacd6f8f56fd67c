"""The loop one worker process runs: take a trial, train its run, until no work is left.

``study.optimize(n_trials=None)`` alone is not enough for a shared grid: Optuna's grid sampler
keeps handing out grid points that other workers are still running (so they are not "finished"
yet), which would train the same run twice. ``run_worker`` asks ``has_work`` before every
trial and stops when the remaining work is all in other workers' hands; a trial that still
lands on a point another worker holds is pruned at once.

Example:
    >>> run_worker(study, objective, has_work=lambda s: len(s.trials) < 20)  # doctest: +SKIP
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna

WORKER_ATTR = "worker"  # user attribute: "host:pid" of the process running the trial
ERROR_ATTR = "error"  # user attribute: why a trial failed (RunFailed); not retried by itself
RETRY_ATTR = "retry"  # user attribute: a failed run queued again on purpose (retry_failed)


class RunFailed(Exception):
    """A run that ended without a usable result (diverged, crashed, bad cell): not retried
    within the same invocation (a study's ``--resume`` queues it again: :func:`queue_retry`)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def worker_id() -> str:
    """``host:pid`` of this process, recorded on every trial it runs."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _dead_here(trial: optuna.trial.FrozenTrial) -> bool:
    """A running trial whose worker was on this machine and no longer exists."""
    host, _, pid = str(trial.user_attrs.get(WORKER_ATTR, "")).rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    return int(pid) != os.getpid() and not _pid_alive(int(pid))


def reclaim_dead_trials(study: optuna.Study) -> int:
    """Queue again the running trials whose worker on this machine was killed.

    Other machines' dead workers are found by the heartbeat after the grace period; on this
    machine the process table says so at once, so ``--resume`` right after a crash needs no
    wait. Returns the number of trials queued again.
    """
    import optuna
    from optuna.trial import TrialState

    storage = study._storage
    retry = storage.get_heartbeat_stale_trial_callback()  # type: ignore[attr-defined]
    reclaimed = 0
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if not _dead_here(trial):
            continue
        try:
            if not storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another worker got there first
        if retry is not None:
            retry(study, storage.get_trial(trial._trial_id))
        reclaimed += 1
    return reclaimed


def _wrap(objective: Callable[[Any], float]) -> Callable[[Any], float]:
    def run(trial: Any) -> float:
        trial.set_user_attr(WORKER_ATTR, worker_id())
        trial.set_user_attr(ERROR_ATTR, None)  # a retried copy must not inherit an old reason
        try:
            return objective(trial)
        except RunFailed as exc:
            trial.set_user_attr(ERROR_ATTR, exc.reason)
            raise
        except KeyboardInterrupt:
            _queue_again(trial)
            raise

    return run


def _queue_again(trial: Any) -> None:
    """Queue a copy of a trial stopped by Ctrl-C or SIGTERM, so a resume trains its run.

    Optuna records the stopped trial as failed (with no reason: it takes no grid point and no
    place of a tune's budget); the copy keeps the parameters and does not count as a retry of
    a dead worker (``MAX_RETRIES``): stopping a study is no fault of the run.
    """
    _queue_copy(trial.study, trial.study._storage.get_trial(trial._trial_id), {})


def queue_retry(study: optuna.Study, failed: optuna.trial.FrozenTrial) -> None:
    """Queue a failed trial's grid point again, once: its cause may be fixed (a restored file,
    free memory or disk). The copy supersedes the failure (:func:`grid_points`); if it fails
    again, it stays failed until the next explicit retry."""
    _queue_copy(study, failed, {RETRY_ATTR: True})


def _queue_copy(study: optuna.Study, frozen: Any, extra: dict[str, Any]) -> None:
    import optuna

    drop = (WORKER_ATTR, ERROR_ATTR, RETRY_ATTR)
    attrs = {k: v for k, v in frozen.user_attrs.items() if k not in drop}
    study.add_trial(
        optuna.trial.create_trial(
            state=optuna.trial.TrialState.WAITING,
            params=frozen.params,
            distributions=frozen.distributions,
            user_attrs={**attrs, **extra},
            system_attrs=frozen.system_attrs,
        )
    )


def run_worker(
    study: optuna.Study,
    objective: Callable[[Any], float],
    has_work: Callable[[optuna.Study], bool],
    on_trial: Callable[[optuna.Study, Any], None] | None = None,
) -> None:
    """Run trials of ``study`` in this process until ``has_work(study)`` says none is left.

    Args:
        study: an Optuna study from :func:`cnnlab.schedule.storage.open_study`.
        objective: trains one run for a trial; raises :class:`RunFailed` for a failed run
            (recorded, the loop goes on) and ``optuna.TrialPruned`` to drop a trial.
        has_work: whether a trial started now would have something to do; checked before
            the first trial and after each one. For a grid see :func:`grid_has_work`; for a
            sampled search, a budget such as "fewer than N trials finished or running".
        on_trial: called after each trial (progress bars).
    """

    def after(st: optuna.Study, trial: Any) -> None:
        if on_trial is not None:
            on_trial(st, trial)
        if not has_work(st):
            st.stop()

    wrapped = _wrap(objective)
    reclaim_dead_trials(study)
    # optimize() can return while work is left: the grid sampler stops a worker as soon as no
    # point is unvisited, even when a retried trial is waiting in the queue.
    while has_work(study):
        study.optimize(wrapped, n_trials=None, catch=(RunFailed,), callbacks=[after])
        reclaim_dead_trials(study)


def grid_points(study: optuna.Study, param: str) -> dict[Any, str]:
    """Which grid points are taken, and how: ``done``, ``failed``, ``running`` or ``queued``.

    A point counts as taken when a trial finished it (complete, or failed with a reason),
    a worker is running it, or a retry of it is queued. Failed trials without a reason
    (dead workers) and pruned duplicates take nothing: the point is free or queued again.
    A finished run wins; otherwise the latest trial of the point says (a failure queued
    again on purpose is queued, then running, then done or failed anew).
    """
    from optuna.trial import TrialState

    taken: dict[Any, str] = {}
    for trial in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        if param not in trial.params:
            continue
        if trial.state == TrialState.COMPLETE:
            status = "done"
        elif trial.state == TrialState.FAIL and trial.user_attrs.get(ERROR_ATTR):
            status = "failed"
        elif trial.state == TrialState.RUNNING:
            status = "running"
        elif trial.state == TrialState.WAITING:
            status = "queued"
        else:
            continue
        point = trial.params[param]
        if taken.get(point) != "done":
            taken[point] = status
    return taken


def grid_has_work(study: optuna.Study, param: str, points: list[Any]) -> bool:
    """True while some grid point was never started, or a retry of one is queued.

    Points that are running elsewhere are not work for this worker. A point whose worker
    died more than ``MAX_RETRIES`` times is not started again by itself; it shows as
    missing in the results.
    """
    if "queued" in grid_points(study, param).values():
        return True
    started = {t.params[param] for t in study.get_trials(deepcopy=False) if param in t.params}
    return any(p not in started for p in points)


def held_elsewhere(study: optuna.Study, trial: Any, param: str) -> bool:
    """Whether another trial already holds this trial's grid point (a tail duplicate)."""
    from optuna.trial import TrialState

    point = trial.params[param]
    retry = bool(trial.user_attrs.get(RETRY_ATTR))
    for other in study.get_trials(deepcopy=False):
        if other.number == trial.number or other.params.get(param) != point:
            continue
        if other.state in (TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING):
            return True
        superseded = retry and other.number < trial.number  # the failure this retries
        if other.state == TrialState.FAIL and other.user_attrs.get(ERROR_ATTR) and not superseded:
            return True
    return False


def take_grid_point(study: optuna.Study, trial: Any, param: str, points: list[Any]) -> Any:
    """The grid point Optuna's grid sampler gives ``trial``; a tail duplicate is pruned.

    Call it first in a grid objective. When another worker already holds the point (two
    workers asked for the last point at once), this worker stops and the trial is pruned.
    """
    import optuna

    point = trial.suggest_categorical(param, points)
    if held_elsewhere(study, trial, param):
        study.stop()
        raise optuna.TrialPruned(f"{param}={point} is already taken by another worker")
    return point
