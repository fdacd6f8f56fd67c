"""Read W&B offline run files back with wandb's own reader (the tests' proof of what was logged)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class OfflineRun:
    """Everything the offline files of one W&B run id hold, in the order they were written."""

    files_found: int = 0
    name: str = ""
    group: str = ""
    job_type: str = ""
    tags: set[str] = field(default_factory=set)
    config: dict[str, Any] = field(default_factory=dict)
    history: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    files: set[str] = field(default_factory=set)
    exit_codes: list[int] = field(default_factory=list)


def _key(item: Any) -> str:
    return item.key or "/".join(item.nested_key)


def _apply(run: OfflineRun, kind: str, rec: Any) -> None:
    if kind == "run":
        run.name, run.group, run.job_type = rec.display_name, rec.run_group, rec.job_type
        run.tags |= set(rec.tags)
        run.config.update({_key(u): json.loads(u.value_json) for u in rec.config.update})
    elif kind == "config":
        run.config.update({_key(u): json.loads(u.value_json) for u in rec.update})
    elif kind == "history":
        row = {_key(i): json.loads(i.value_json) for i in rec.item}
        for key, value in row.items():
            if not key.startswith("_"):
                run.history.setdefault(key, []).append((int(row["_step"]), value))
    elif kind == "summary":
        run.summary.update({_key(u): json.loads(u.value_json) for u in rec.update})
    elif kind == "files":
        run.files |= {f.path for f in rec.files}
    elif kind == "exit":
        run.exit_codes.append(rec.exit_code)


def read_offline(folder: Path, run_id: str) -> OfflineRun:
    """The offline run ``run_id`` under ``folder/wandb`` (every file of it, oldest first)."""
    try:
        from wandb.proto import wandb_internal_pb2 as pb
        from wandb.sdk.internal import datastore
    except ImportError as exc:
        raise AssertionError(
            "reading W&B offline files needs wandb<0.30 (its datastore reader): "
            "pip install -e '.[dev]'"
        ) from exc
    run = OfflineRun()
    for file in sorted(folder.glob(f"wandb/offline-run-*-{run_id}/run-{run_id}.wandb")):
        run.files_found += 1
        store = datastore.DataStore()
        store.open_for_scan(str(file))
        while (data := store.scan_data()) is not None:
            rec = pb.Record()
            rec.ParseFromString(data)
            kind = rec.WhichOneof("record_type")
            _apply(run, kind, getattr(rec, kind))
    return run
