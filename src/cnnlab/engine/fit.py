"""``fit(cfg)``: the readable pipeline from a folder of images to a finished run folder.

data -> model -> train -> evaluate -> report, in that order; each step is a function of its
own module that takes only the config section it needs.

Example:
    >>> from cnnlab.config import load_config
    >>> run = fit(load_config(overrides=["data.root=data/flowers"]))  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from cnnlab.config import Config
from cnnlab.console import info, set_quiet
from cnnlab.paths import check_writable_dir
from cnnlab.runs import (
    CHECKPOINTS,
    CLASSES,
    CONFIG,
    DATA_REPORT,
    METRICS,
    MODEL_CARD,
    PLOTS,
    PREDICTIONS,
    REPORT_HTML,
    REPORT_MD,
    SPLIT,
    SUMMARY,
    WEIGHTS,
    Run,
    create_run_dir,
    read_json,
)

if TYPE_CHECKING:
    from cnnlab.engine.loop import Outcome
    from cnnlab.engine.observe import RunObserver
    from cnnlab.engine.setup import DataBundle, ModelBundle

# Rank 0's run folder, inherited by the processes Lightning's "ddp" strategy launches: they
# re-run the same command, and must train into this folder instead of creating their own.
RUN_DIR_ENV = "CNNLAB_DDP_RUN_DIR"


def default_run_name(model: str, mode: str) -> str:
    """``<model>-<mode>-<time>`` with the mode the run trains in (``model.mode`` unset: the
    model's default), e.g. ``cnn-scratch-20250101-120000`` or ``resnet18-partial2-...``."""
    return f"{model}-{mode.replace(':', '')}-{datetime.now():%Y%m%d-%H%M%S}"


def launched_rank_zero() -> bool:
    """False in the processes of a multi-process launch that are not global rank 0.

    torchrun sets ``RANK`` and SLURM's ``srun`` sets ``SLURM_PROCID`` in every process, from
    the start; the processes Lightning launches itself (its "ddp" strategy, or one command
    per node with ``NODE_RANK``) have ``NODE_RANK`` and ``LOCAL_RANK``.
    """
    for var in ("RANK", "SLURM_PROCID"):
        value = os.environ.get(var, "")
        if value.isdigit():
            return int(value) == 0
    node, local = os.environ.get("NODE_RANK", "0"), os.environ.get("LOCAL_RANK", "0")
    return int(node or 0) == 0 and int(local or 0) == 0


def ddp_helper_dir(resume_dir: Path | None = None) -> Path | None:
    """Where a DDP process other than global rank 0 trains; None in rank 0 (and plain runs).

    Ranks > 0 never write run files (Lightning saves checkpoints from global rank 0 only and
    broadcasts its checkpoint folder), so each needs a folder only to hand to the Trainer:
    rank 0's when Lightning launched it on this machine (the folder in ``RUN_DIR_ENV``), the
    resumed run's, else a private scratch folder (torchrun, SLURM, other nodes).
    """
    if launched_rank_zero():
        return None
    shared = os.environ.get(RUN_DIR_ENV)
    if shared:
        return Path(shared)
    if resume_dir is not None:
        return resume_dir
    return Path(tempfile.mkdtemp(prefix="cnnlab-rank-"))


def finished_epochs(run_dir: Path, epochs: int) -> int | None:
    """Epochs of a run that already finished (nothing left to resume), else ``None``."""
    summary = read_json(run_dir / SUMMARY) if (run_dir / SUMMARY).is_file() else {}
    if not summary.get("complete"):
        return None
    done = int(summary.get("epochs_run", 0))
    return done if summary.get("stopped_early") or done >= epochs else None


def fit(
    cfg: Config, resume_dir: Path | None = None, observers: Sequence[RunObserver] | None = None
) -> Run | None:
    """Train, evaluate and report one model; returns the run folder.

    Under the "ddp" strategy every rank runs this function; ranks > 0 train into rank 0's
    folder and return ``None`` after training (rank 0 alone evaluates and reports), so a
    caller prints results only when it gets a run back.

    Args:
        cfg: the resolved configuration.
        resume_dir: an existing run folder to continue from its last good checkpoint; its
            saved split is reused exactly. A run that already finished is left untouched.
        observers: told when the run starts, each epoch ends and the run ends
            (:mod:`cnnlab.engine.observe`); None: those the config asks for (tracking).
    """
    from cnnlab.startup import heavy_imports

    with heavy_imports():  # torch, Lightning: ~20 % less CPU per run without GC walks of them
        import cnnlab.engine.finalize
        import cnnlab.engine.observe
        import cnnlab.engine.setup  # noqa: F401

    helper_dir = ddp_helper_dir(resume_dir)
    if helper_dir is not None:
        set_quiet(True)  # rank 0 speaks for the run
        return _fit(cfg, resume_dir, observers, helper_dir)
    if resume_dir is None:
        check_writable_dir(cfg.runs_dir, "runs_dir")  # before the scan, not after training
        return _fit(cfg, None, observers, None)
    with run_locked(resume_dir) as locked_run:  # one training per folder (two resumes at once)
        if done := finished_epochs(resume_dir, cfg.train.epochs):
            info(
                f"{resume_dir} already finished ({done} epochs): nothing to resume; "
                f"to train longer, pass --epochs N with N > {done}"
            )
            return Run(resume_dir)
        return locked_run(_fit(cfg, resume_dir, observers, None))


@contextlib.contextmanager
def run_locked(run_dir: Path) -> Iterator[Callable[[Run | None], Run | None]]:
    """Hold ``run_dir``'s training lock (:mod:`cnnlab.runlock`) inside the block; a run the
    block hands to the yielded function keeps it until its figures and report are drawn
    (they may be drawn after ``fit`` returns), so no second training starts on a folder whose
    report is still being written."""
    from cnnlab.evaluation.background import when_drawn
    from cnnlab.runlock import lock_run, release_run

    fd = lock_run(run_dir)
    kept: list[Run] = []

    def keep(run: Run | None) -> Run | None:
        if run is not None:
            kept.append(run)
        return run

    try:
        yield keep
    finally:
        if kept:
            when_drawn(kept[0].path, lambda: release_run(fd))
        else:
            release_run(fd)


def _fit(
    cfg: Config,
    resume_dir: Path | None,
    observers: Sequence[RunObserver] | None,
    helper_dir: Path | None,
) -> Run | None:
    """``fit`` from the scan on; a new run's folder is locked as soon as it exists."""
    from cnnlab.engine.setup import prepare

    split_file = resume_dir / SPLIT if resume_dir and (resume_dir / SPLIT).is_file() else None
    data, mb = prepare(cfg, split_file)  # bad data or model names fail before a folder exists
    cfg = _plan(cfg, data, mb, resume=resume_dir is not None)
    if helper_dir is None and resume_dir is None:
        name = cfg.name or default_run_name(cfg.model.name, mb.mode)
        run_dir = create_run_dir(cfg.runs_dir, name)
        with run_locked(run_dir) as locked_run:
            return locked_run(_run(cfg, data, mb, run_dir, None, observers, None))
    return _run(cfg, data, mb, helper_dir or resume_dir, resume_dir, observers, helper_dir)


def _run(
    cfg: Config,
    data: DataBundle,
    mb: ModelBundle,
    run_dir: Path,
    resume_dir: Path | None,
    observers: Sequence[RunObserver] | None,
    helper_dir: Path | None,
) -> Run | None:
    """Train into ``run_dir`` (locked by the caller, or a DDP helper's), then finalize."""
    from cnnlab.engine.finalize import finalize, write_run_inputs
    from cnnlab.engine.observe import default_observers, observe_run, observer_fields

    if helper_dir is None:
        info(f"run folder: {run_dir}")
        if resume_dir is not None:
            _remove_leftovers(run_dir, everywhere=True)
        write_run_inputs(run_dir, cfg, data)
    if helper_dir is not None:
        observers = ()  # rank 0 reports the run
    elif observers is None:
        observers = default_observers(cfg)
    started = time.perf_counter()
    with observe_run(observers, run_dir) as callbacks:
        outcome = _train(cfg, data, mb, run_dir, resume_dir is not None, callbacks)
        if helper_dir is not None:
            if helper_dir.name.startswith("cnnlab-rank-"):
                shutil.rmtree(helper_dir, ignore_errors=True)  # scratch: nothing of the run
            return None  # this rank's share is done; rank 0 evaluates and reports
        train_time = outcome.prior_time_s + time.perf_counter() - started
        _remove_leftovers(run_dir, everywhere=False)  # training ended: no save is under way
        fields = observer_fields(observers)  # a tune's pruner: "pruned", said in the report
        return finalize(run_dir, cfg, data, mb, outcome, train_time, fields)


# The files fit writes at the top of a run folder (track.json is the tracker's: not ours).
_OWN_FILES = (CONFIG, CLASSES, SPLIT, DATA_REPORT, METRICS, SUMMARY, WEIGHTS, MODEL_CARD,
              REPORT_HTML, REPORT_MD)  # fmt: skip


def _remove_leftovers(run_dir: Path, everywhere: bool) -> None:
    """Delete temp files a killed save left in the run folder: in ``checkpoints/``, and with
    ``everywhere`` (a resume, before it writes anything) beside the run's own files too."""
    from cnnlab.atomic import remove_leftovers

    removed = remove_leftovers(run_dir / CHECKPOINTS)
    if everywhere:
        removed += remove_leftovers(run_dir, _OWN_FILES)
        removed += sum(remove_leftovers(run_dir / sub) for sub in (PLOTS, PREDICTIONS))
    if removed:
        info(f"removed {removed} temp file(s) that a killed save left in {run_dir}")


def _plan(cfg: Config, data: DataBundle, mb: ModelBundle, resume: bool) -> Config:
    """The config with its data-dependent training choices resolved (saved in config.yaml)."""
    from cnnlab.engine.plan import plan_training

    views = cfg.train.frozen_views if mb.mode == "frozen" else 1
    train = plan_training(cfg.train, mb, data.count("train") * views, resume)
    return cfg.model_copy(update={"train": train})


def _train(
    cfg: Config, data: DataBundle, mb: ModelBundle, run_dir: Path, resume: bool, callbacks: tuple
) -> Outcome:
    """Run the training step of ``fit``, publishing the run folder to any DDP ranks."""
    from cnnlab.engine.loop import train_frozen, train_full

    os.environ[RUN_DIR_ENV] = str(run_dir)
    try:
        if mb.mode == "frozen":
            if resume:
                info("frozen mode: the head is trained again from its start (features cached)")
            return train_frozen(mb, data, cfg.data, cfg.train, cfg.model.head, run_dir, callbacks)
        return train_full(mb, data, cfg.data, cfg.train, run_dir, resume, callbacks)
    finally:
        if launched_rank_zero():
            os.environ.pop(RUN_DIR_ENV, None)
