"""Log run folders to Weights & Biases, offline by default, with the same content as MLflow.

Params (the flattened config and the run's ``cnnlab.*`` tags) go to the W&B config, each epoch's
``metrics.csv`` row to the history with ``step`` = epoch, the final metrics to the summary, and
the artifact files (report, plots, model card, weights...) to the run's files. W&B has no
nested runs: a study's runs share its ``group``, and the study itself is a run of that group
whose ``job_type`` is its kind.

An offline W&B store cannot be asked what it holds, so each run folder's ``track.json`` records
what was sent to which W&B folder (last epoch, final metrics, files by size, end status):
syncing again sends only what is new, and a fully sent run is not opened again at all. A run
synced again later becomes one more offline file with the same run id; ``wandb sync`` joins
them into one run. This module imports wandb: it runs in the tracking process or in
``cnnlab track log``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cnnlab.track.content import RunContent, SyncReport, flatten, read_run
from cnnlab.track.target import Target, locked, read_state, write_state

MODE_ENV = "WANDB_MODE"  # offline unless the user asks W&B for online
EXIT_CODES = {"FINISHED": 0, "FAILED": 1, "KILLED": 255}  # W&B marks non-zero as failed
STATE_KEY = "wandb"  # in track.json: {"<folder>#<project>": what was sent there}
# Names W&B writes into a run's files itself; our config.yaml is in the W&B config already.
RESERVED = {"config.yaml", "wandb-summary.json", "wandb-metadata.json", "requirements.txt",
            "output.log"}  # fmt: skip


def wait_for_fresh_folder(folder: Path, uid: str) -> None:
    """Wait until W&B's folder name for a new session of ``uid`` is not taken.

    W&B names a session's folder ``offline-run-<YYYYmmdd_HHMMSS>-<id>``: a run resumed within
    the second it was last opened (tagged best right after training) would write into the
    previous session's folder and overwrite its ``.wandb`` file, losing what was logged.

    >>> import tempfile
    >>> wait_for_fresh_folder(Path(tempfile.mkdtemp()), "abc")  # nothing there yet: no wait
    """
    while True:
        now = datetime.now()
        stamp = now.strftime("%Y%m%d_%H%M%S")
        if not any((folder / f"{mode}-{stamp}-{uid}").exists() for mode in ("offline-run", "run")):
            return
        time.sleep(1.0 - now.microsecond / 1e6 + 0.01)


class WandbStore:
    """One W&B project in one local folder (offline runs in ``<folder>/wandb/``)."""

    def __init__(self, target: Target) -> None:
        os.environ.setdefault(MODE_ENV, "offline")
        os.environ.setdefault("WANDB_SILENT", "true")
        import wandb

        self.wandb = wandb
        self.target = target
        self.dir = Path(target.uri)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.open: dict[str, Any] = {}  # uid -> a W&B run open in this process

    def _run(self, uid: str, name: str, kind: str, group: str | None, config: dict,
             tags: list[str]) -> Any:  # fmt: skip
        """The open W&B run for ``uid``, started (or resumed) when not open yet."""
        run = self.open.get(uid)
        if run is None:
            wait_for_fresh_folder(self.dir / "wandb", uid)
            settings = self.wandb.Settings(
                mode=os.environ.get(MODE_ENV, "offline"), silent=True, console="off",
                x_disable_stats=True, disable_git=True, save_code=False,
                x_save_requirements=False,
            )  # fmt: skip
            run = self.wandb.init(
                project=self.target.experiment, dir=str(self.dir), id=uid, name=name,
                job_type=kind, group=group, config=config, tags=tags, resume="allow",
                reinit="create_new", settings=settings,
            )  # fmt: skip
            self.open[uid] = run
        return run

    def _close(self, uid: str, status: str) -> None:
        run = self.open.pop(uid, None)
        if run is not None:
            run.summary["cnnlab.status"] = status
            run.finish(exit_code=EXIT_CODES.get(status, 1))

    def _open_run(self, run_dir: Path, state: dict[str, Any], content: RunContent) -> Any:
        tags = dict(content.tags)
        if state.get("git_commit"):
            tags["cnnlab.git_commit"] = state["git_commit"]
        labels = [tags.get("cnnlab.model", ""), tags.get("cnnlab.mode", "")]
        labels += ["best"] if state.get("best") else []
        group = (state.get("parent") or {}).get("name")
        config = {**content.params, **{k: v for k, v in tags.items() if k.startswith("cnnlab.")}}
        config["cnnlab.uid"] = state["uid"]
        return self._run(state["uid"], run_dir.name, "run", group, config, [x for x in labels if x])

    def sync(self, run_dir: Path, end: str | None = None) -> SyncReport:
        """Send what this W&B folder has not had yet of one run folder (see module doc)."""
        run_dir = Path(run_dir)
        with locked(run_dir):
            state = read_state(run_dir)
            content = read_run(run_dir)
            sent = state.setdefault(STATE_KEY, {}).setdefault(self.key, {})
            report = SyncReport(state["uid"], created=not sent, store="W&B")
            todo = _Pending.of(run_dir, content, sent, end)
            if sent and not todo:
                return report  # nothing new: the run is not even opened
            run = self._open_run(run_dir, state, content)
            report.params = 0 if sent else len(content.params)
            for epoch, values in sorted(todo.epochs.items()):
                run.log(values, step=epoch)
            run.summary.update(todo.finals)
            for path, _ in todo.files:
                run.save(str(path), base_path=str(run_dir), policy="now")
            report.values = sum(map(len, todo.epochs.values())) + len(todo.finals)
            report.files = len(todo.files)
            todo.record(sent)
            if todo.finishing and end is not None:
                self._close(state["uid"], end)
                sent["status"] = report.status = end
            write_state(run_dir, state)
        return report

    @property
    def key(self) -> str:
        return f"{self.target.uri}#{self.target.experiment}"

    def parent(
        self,
        parent: dict[str, Any],
        status: str | None = None,
        files: list[tuple[Path, str]] | None = None,
        tags: dict[str, str] | None = None,
    ) -> str:
        """The run of a study or tune: its params, files and tags (summary), and its end."""
        if status and not (files or tags) and parent["uid"] not in self.open:
            return str(parent["uid"])  # already ended (an ensemble's folder sync closed it)
        params = flatten(parent.get("params") or {})
        name, kind = parent["name"], parent["kind"]
        run = self._run(parent["uid"], name, kind, name, params, [kind])
        if tags:
            run.summary.update(tags)
        for path, _ in files or []:
            run.save(str(path), base_path=str(path.parent), policy="now")
        if status:
            self._close(parent["uid"], status)
        return str(parent["uid"])

    def best(self, parent: dict[str, Any], run_dir: Path) -> None:
        """Tag a child run ``best`` and name it in the parent's summary."""
        uid = self._label(Path(run_dir), "best")
        best = {"cnnlab.best_run": Path(run_dir).name, "cnnlab.best_run_id": uid}
        self.parent(parent, tags=best)

    def member(self, parent: dict[str, Any], run_dir: Path, label: str) -> None:
        """Tag a run ``member:<parent>`` (an ensemble's member); the parent lists its members."""
        content = read_run(run_dir)  # a member this W&B folder lacks is logged whole first
        self.sync(Path(run_dir), "FINISHED" if content.complete else None)
        uid = self._label(Path(run_dir), f"member:{parent['name']}")
        self.parent(parent, tags={f"cnnlab.member.{Path(run_dir).name}": f"{uid} {label}"})

    def _label(self, run_dir: Path, label: str) -> str:
        """Add a tag to a run folder's W&B run (opened for it when not open); its uid."""
        with locked(run_dir):
            state = read_state(run_dir)
            was_open = state["uid"] in self.open
            run = self._open_run(run_dir, state, read_run(run_dir))
            run.tags = tuple(sorted({*run.tags, label}))
            if not was_open:
                sent = state.get(STATE_KEY, {}).get(self.key, {})
                self._close(state["uid"], sent.get("status") or "FINISHED")
            write_state(run_dir, state)  # a new uid must outlive this process
        return str(state["uid"])


@dataclass
class _Pending:
    """What one run folder has that a W&B folder has not had yet."""

    epochs: dict[int, dict[str, float]]  # epoch -> the metric values of its row
    finals: dict[str, float]
    files: list[tuple[Path, str]]  # (file, path relative to the run folder)
    finishing: bool

    @classmethod
    def of(cls, run_dir: Path, content: RunContent, sent: dict, end: str | None) -> _Pending:
        epochs: dict[int, dict[str, float]] = {}
        for key, series in content.history.items():
            for epoch, value in series.items():
                if epoch > sent.get("epoch", 0):
                    epochs.setdefault(epoch, {})[key] = value
        done = sent.get("finals", {})
        finals = {k: v for k, v in content.finals.items() if done.get(k) != v}
        files = _new_files(run_dir, content, sent.get("files", {})) if end else []
        return cls(epochs, finals, files, end is not None and sent.get("status") != end)

    def __bool__(self) -> bool:
        return bool(self.epochs or self.finals or self.files or self.finishing)

    def record(self, sent: dict[str, Any]) -> None:
        """Note in the run folder's state that this was sent."""
        sent["epoch"] = max([sent.get("epoch", 0), *self.epochs])
        sent["finals"] = {**sent.get("finals", {}), **self.finals}
        sizes = {rel: path.stat().st_size for path, rel in self.files}
        sent["files"] = {**sent.get("files", {}), **sizes}


def _new_files(run_dir: Path, content: RunContent, sent: dict[str, int]) -> list[tuple[Path, str]]:
    """Artifact files not sent yet, or changed in size since."""
    out = []
    for path, _ in content.files:
        rel = path.relative_to(run_dir).as_posix()
        if rel not in RESERVED and sent.get(rel) != path.stat().st_size:
            out.append((path, rel))
    return out
