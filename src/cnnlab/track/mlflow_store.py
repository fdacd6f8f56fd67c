"""Log run folders to MLflow, idempotently: what the store already holds is never sent twice.

A run is found by its ``cnnlab.uid`` tag, so the live logger during ``fit`` and a later
``cnnlab track log`` fill the same MLflow run; metric values are sent only for epochs the
store lacks, params only when missing, artifacts only when missing or changed in size.
This module imports MLflow: it runs in the tracking process or in ``cnnlab track ...``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from cnnlab.track.content import RunContent, SyncReport, flatten, tracker_key
from cnnlab.track.target import Target, local_db, locked

UID_TAG = "cnnlab.uid"
PARENT_TAG = "mlflow.parentRunId"
MEMBER_TAG = "cnnlab.member_of."  # + the parent's name: a run is a member of that ensemble
RESUMED_TAG = "resumed."  # + a param's name: its value now, changed since it was logged
BATCH_METRICS, BATCH_PARAMS, BATCH_TAGS = 800, 100, 100  # log_batch allows 1000 / 100 / 100


@dataclass
class _Known:
    """What the store holds for one run, kept while this process syncs it."""

    params: dict[str, str]
    latest: dict[str, float]
    steps: dict[str, set[int]] = field(default_factory=dict)
    status: str = "RUNNING"
    resumed: set[str] = field(default_factory=set)  # params whose value now is a tag


class MlflowStore:
    """One MLflow experiment in one store, ready to receive run folders."""

    def __init__(self, target: Target) -> None:
        self.target = target
        db = local_db(target)
        if db is not None:
            db.parent.mkdir(parents=True, exist_ok=True)
            # two first runs must not both create the tables; the client's constructor opens
            # the store (and migrates a new one), so it is made inside the lock too
            with locked(db):
                self.client = MlflowClient(tracking_uri=target.uri)
                self.experiment_id = self._experiment()
        else:
            self.client = MlflowClient(tracking_uri=target.uri)
            self.experiment_id = self._experiment()
        self.run_ids: dict[str, str] = {}  # uid -> run id
        self.known: dict[str, _Known] = {}  # run id -> what the store holds
        self.parents: set[str] = set()  # parent uids whose params are logged

    def _experiment(self) -> str:
        name = self.target.experiment
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            if found.lifecycle_stage == "deleted":
                self.client.restore_experiment(found.experiment_id)
            return found.experiment_id
        try:
            return self.client.create_experiment(name, self.target.artifact_location)
        except MlflowException:  # created meanwhile by another process
            found = self.client.get_experiment_by_name(name)
            if found is None:
                raise
            return found.experiment_id

    def find_run(self, uid: str) -> str | None:
        """The id of the active run tagged with ``uid``, if the store has one."""
        if uid in self.run_ids:
            return self.run_ids[uid]
        hits = self.client.search_runs(
            [self.experiment_id], filter_string=f"tags.`{UID_TAG}` = '{uid}'", max_results=1
        )
        if not hits:
            return None
        run = hits[0]
        self.run_ids[uid] = run.info.run_id
        resumed = {k[len(RESUMED_TAG) :] for k in run.data.tags if k.startswith(RESUMED_TAG)}
        self.known[run.info.run_id] = _Known(
            dict(run.data.params), dict(run.data.metrics), status=run.info.status, resumed=resumed
        )
        return run.info.run_id

    def ensure_run(self, uid: str, tags: dict[str, str]) -> tuple[str, bool]:
        """Find the run tagged ``uid`` or create it; returns (run id, created)."""
        run_id = self.find_run(uid)
        if run_id is not None:
            return run_id, False
        db = local_db(self.target)
        if db is None:
            return self._create_run(uid, tags), True
        with locked(db.with_suffix(".runs")):  # a study's workers each have a tracking process
            run_id = self.find_run(uid)
            return (run_id, False) if run_id is not None else (self._create_run(uid, tags), True)

    def _create_run(self, uid: str, tags: dict[str, str]) -> str:
        run = self.client.create_run(
            self.experiment_id, tags={**tags, UID_TAG: uid}, run_name=tags.get("mlflow.runName")
        )
        run_id = run.info.run_id
        self.run_ids[uid] = run_id
        self.known[run_id] = _Known({}, {})
        return run_id

    def _steps(self, run_id: str, key: str) -> set[int]:
        known = self.known[run_id]
        if key not in known.steps:
            history = self.client.get_metric_history(run_id, key) if key in known.latest else []
            known.steps[key] = {m.step for m in history}
        return known.steps[key]

    def _send(
        self, run_id: str, metrics: list[Metric], params: list[Param], tags: list[RunTag]
    ) -> None:
        while metrics or params or tags:
            self.client.log_batch(
                run_id,
                metrics=metrics[:BATCH_METRICS],
                params=params[:BATCH_PARAMS],
                tags=tags[:BATCH_TAGS],
                synchronous=True,
            )
            metrics = metrics[BATCH_METRICS:]
            params, tags = params[BATCH_PARAMS:], tags[BATCH_TAGS:]

    def log_values(self, run_id: str, content: RunContent, tags: dict[str, str]) -> SyncReport:
        """Params, epoch metrics and final metrics the store lacks, and the current tags.

        MLflow params are immutable: a value changed since it was logged (a run extended with
        ``--resume --epochs N``) keeps its param and gets the tag ``resumed.<param>`` with the
        value the run folder holds now.
        """
        import time

        known, now = self.known[run_id], int(time.time() * 1000)
        params = [Param(k, v) for k, v in content.params.items() if k not in known.params]
        changed = {
            k: v
            for k, v in content.params.items()
            if k in known.params and (known.params[k] != v or k in known.resumed)
        }
        tags = {**tags, **{tracker_key(RESUMED_TAG + k): v for k, v in changed.items()}}
        known.resumed |= set(changed)
        metrics = []
        for key, series in content.history.items():
            done = self._steps(run_id, key)
            metrics += [Metric(key, v, now, step) for step, v in series.items() if step not in done]
        metrics += [
            Metric(k, v, now, 0) for k, v in content.finals.items() if known.latest.get(k) != v
        ]
        self._send(run_id, metrics, params, [RunTag(k, v) for k, v in tags.items()])
        known.params.update({p.key: p.value for p in params})
        for m in metrics:
            known.latest[m.key] = m.value
            if m.key in content.history:
                known.steps.setdefault(m.key, set()).add(m.step)
        return SyncReport(run_id, values=len(metrics), params=len(params))

    def log_files(self, run_id: str, files: list[tuple[Path, str]]) -> int:
        """Upload artifacts that are missing or differ in size; returns how many were sent."""
        present: dict[str, int | None] = {}
        for folder in sorted({f for _, f in files}):
            for info in self.client.list_artifacts(run_id, folder or None):
                present[info.path] = info.file_size
        sent = 0
        for path, folder in files:
            name = f"{folder}/{path.name}" if folder else path.name
            if present.get(name) == path.stat().st_size:
                continue
            self.client.log_artifact(run_id, str(path), folder or None)
            sent += 1
        return sent

    def finish(self, run_id: str, status: str) -> bool:
        """Set the run's end status unless it already has it."""
        known = self.known[run_id]
        if known.status == status:
            return False
        self.client.set_terminated(run_id, status)
        known.status = status
        return True

    def parent(
        self,
        parent: dict[str, Any],
        status: str | None = None,
        files: list[tuple[Path, str]] | None = None,
        tags: dict[str, str] | None = None,
    ) -> str:
        """Find or create a parent run (a study or a tune); log its params, files and tags."""
        base = {"mlflow.runName": parent["name"], "cnnlab.kind": parent["kind"]}
        run_id, _ = self.ensure_run(parent["uid"], base)
        if parent["uid"] not in self.parents:
            content = RunContent(Path("."), flatten(parent.get("params") or {}), {}, {}, {})
            self.log_values(run_id, content, base)
            self.parents.add(parent["uid"])
        if tags:
            self._send(run_id, [], [], [RunTag(k, str(v)) for k, v in tags.items()])
        if files:
            self.log_files(run_id, files)
        if status:
            self.finish(run_id, status)
        return run_id

    def sync(self, run_dir: Path, end: str | None = None) -> SyncReport:
        """Log what the store lacks of one run folder (see :func:`cnnlab.track.sync.sync_run`)."""
        from cnnlab.track.sync import sync_run

        return sync_run(self, run_dir, end)

    def best(self, parent: dict[str, Any], run_dir: Path) -> None:
        """Tag ``run_dir``'s run as the best child of ``parent``."""
        from cnnlab.track.sync import tag_best

        tag_best(self, parent, run_dir)

    def member(self, parent: dict[str, Any], run_dir: Path, label: str) -> None:
        """Tag ``run_dir``'s run as a member of ``parent`` (see :func:`member_tag`)."""
        from cnnlab.track.sync import tag_member

        tag_member(self, parent, run_dir, label)

    def tag_best(self, parent_id: str, run_id: str, run_name: str) -> None:
        """Mark the best child run and point the parent at it."""
        self.client.set_tag(run_id, "cnnlab.best", "true")
        self.client.set_tag(parent_id, "cnnlab.best_run_id", run_id)
        self.client.set_tag(parent_id, "cnnlab.best_run", run_name)
