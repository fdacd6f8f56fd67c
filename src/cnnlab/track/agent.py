"""The tracking process: logs run folders to MLflow (or W&B) while training goes on elsewhere.

Started by :mod:`cnnlab.track.live` as ``python -m cnnlab.track.agent TARGET_JSON``. It reads
one JSON command per line on stdin and answers on stdout with ``{"ack": seq}`` after each and
at most one ``{"warn": text}`` (written to the command's terminal instead, when the command
has returned and had one). Importing MLflow or wandb (seconds) and creating a new store
happen here, at low CPU priority, never in the training process. When stdin closes (training
ended, or its process exited) it finishes the commands it has, then exits.

Commands: ``sync`` (run_dir, end), ``parent`` (parent, end, files, tags), ``best`` (parent,
run_dir), ``member`` (parent, run_dir, label).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import sys
import threading
from pathlib import Path
from typing import Any

from cnnlab.track.target import Target, one_line, quiet_libraries

NICE_ENV = "CNNLAB_TRACK_NICE"  # the tracking process's niceness (0-19; default 19)
LATE_FD_ENV = "CNNLAB_TRACK_LATE_FD"  # the terminal of the command that started this process


def _reply(message: dict[str, Any]) -> None:
    try:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()
    except (BrokenPipeError, OSError, ValueError):
        if "warn" in message:  # the command has returned: tell its terminal, if it had one
            _tell_terminal(str(message["warn"]))


def _tell_terminal(text: str) -> None:
    fd = os.environ.get(LATE_FD_ENV, "")
    if fd.isdigit():
        with contextlib.suppress(OSError):
            os.write(int(fd), f"warning: {text}\n".encode())


class Worker:
    """Runs the commands in order; a failure warns once and never stops the process."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.store: Any = None
        self.warned = False
        self.failed_runs: set[str] = set()  # runs not logged live any more (server trouble)

    def connect(self) -> Any:
        if self.store is None:
            from cnnlab.track.target import open_store

            self.store = open_store(self.target)
        return self.store

    def handle(self, msg: dict[str, Any]) -> None:
        op, run_dir = msg.get("op"), msg.get("run_dir")
        if op == "sync" and run_dir:
            if msg.get("end") is None and run_dir in self.failed_runs:
                return  # retried once at the run's end, not every epoch
            self.connect().sync(Path(run_dir), msg.get("end"))
        elif op == "parent":
            files = [(Path(f), "") for f in msg.get("files") or []]
            self.connect().parent(msg["parent"], msg.get("end"), files, msg.get("tags"))
        elif op == "best" and run_dir:
            self.connect().best(msg["parent"], Path(run_dir))
        elif op == "member" and run_dir:
            self.connect().member(msg["parent"], Path(run_dir), str(msg.get("label", "")))

    def run(self, msg: dict[str, Any]) -> None:
        try:
            self.handle(msg)
        except Exception as exc:
            if msg.get("run_dir"):
                self.failed_runs.add(msg["run_dir"])
            if not self.warned:
                self.warned = True
                where = msg.get("run_dir") or "RUNS_DIR/*"
                _reply({
                    "warn": f"tracking to {self.target.uri} failed ({one_line(exc)}); "
                    "training is not affected and the run folder keeps everything: log it "
                    f"later with `cnnlab track log {where}`"
                })  # fmt: skip


def _superseded(msg: dict[str, Any], later: list[dict[str, Any]]) -> bool:
    """A mid-run sync is covered by a later sync of the same run (it reads the same folder)."""
    if msg.get("op") != "sync" or msg.get("end") is not None:
        return False
    return any(m.get("op") == "sync" and m.get("run_dir") == msg.get("run_dir") for m in later)


def serve(target: Target, lines: Any) -> None:
    """Process commands from ``lines`` (an iterable of JSON lines) until it ends."""
    inbox: queue.Queue = queue.Queue()

    def read() -> None:
        for line in lines:
            if line.strip():
                inbox.put(json.loads(line))
        inbox.put(None)

    threading.Thread(target=read, daemon=True).start()
    worker = Worker(target)
    with contextlib.suppress(Exception):  # else the first command tries again and says why
        worker.connect()  # import MLflow and open the store while training starts
    ended = False
    while not ended:
        batch = [inbox.get()]
        while not inbox.empty():
            batch.append(inbox.get())
        for i, msg in enumerate(batch):
            if msg is None:
                ended = True
                continue
            if not _superseded(msg, batch[i + 1 :]):
                worker.run(msg)
            _reply({"ack": msg.get("seq", 0)})


def main() -> None:
    with contextlib.suppress(OSError, ValueError):
        # lowest priority by default: training first, logging uses the cycles it leaves
        os.nice(int(os.environ.get(NICE_ENV, "19")))
    quiet_libraries()
    serve(Target.from_json(sys.argv[1]), sys.stdin)


if __name__ == "__main__":
    main()
