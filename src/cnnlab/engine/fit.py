"""``fit(cfg)``: the readable pipeline from a folder of images to a finished run folder.

data -> model -> train -> evaluate -> report, in that order; each step is a function of its
own module that takes only the config section it needs.

Example:
    >>> from cnnlab.config import load_config
    >>> run = fit(load_config(overrides=["data.root=data/flowers"]))  # doctest: +SKIP
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

from cnnlab.config import Config
from cnnlab.console import info
from cnnlab.runs import SPLIT, Run, create_run_dir


def default_run_name(cfg: Config) -> str:
    mode = cfg.model.mode or "auto"
    return f"{cfg.model.name}-{mode.replace(':', '')}-{datetime.now():%Y%m%d-%H%M%S}"


def fit(cfg: Config, resume_dir: Path | None = None) -> Run:
    """Train, evaluate and report one model; returns the run folder.

    Args:
        cfg: the resolved configuration.
        resume_dir: an existing run folder to continue from its last good checkpoint; its
            saved split is reused exactly.
    """
    from cnnlab.engine.finalize import finalize, write_run_inputs
    from cnnlab.engine.loop import train_frozen, train_full
    from cnnlab.engine.setup import prepare

    split_file = resume_dir / SPLIT if resume_dir and (resume_dir / SPLIT).is_file() else None
    data, mb = prepare(cfg, split_file)  # bad data or model names fail before a folder exists
    run_dir = resume_dir or create_run_dir(cfg.runs_dir, cfg.name or default_run_name(cfg))
    info(f"run folder: {run_dir}")
    write_run_inputs(run_dir, cfg, data)
    started = time.perf_counter()
    if mb.mode == "frozen":
        outcome = train_frozen(mb, data, cfg.data, cfg.train, cfg.model.head, run_dir)
    else:
        outcome = train_full(mb, data, cfg.data, cfg.train, run_dir, resume=resume_dir is not None)
    train_time = time.perf_counter() - started
    return finalize(run_dir, cfg, data, mb, outcome, train_time)
