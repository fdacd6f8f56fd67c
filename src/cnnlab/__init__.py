"""cnnlab: train, compare, tune and understand CNN image classifiers on your own images.

The two entry points most people need:

Example:
    >>> import cnnlab
    >>> run = cnnlab.train("data/flowers", model="cnn", epochs=10)   # doctest: +SKIP
    >>> predictor = cnnlab.load(run.path)                             # doctest: +SKIP
    >>> predictor.predict(["rose.jpg"], top_k=3)                      # doctest: +SKIP

Heavy libraries (torch, timm, lightning) are imported only when a function needs them, so
``import cnnlab`` and ``cnnlab --help`` stay fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from cnnlab.predict import Predictor
    from cnnlab.runs import Run
    from cnnlab.studies.study import Study
    from cnnlab.tuning.tune import Tuning


def train(data: str | None = None, config: str | None = None, **overrides: Any) -> Run | None:
    """Train a model on a folder of images and write a run folder.

    Args:
        data: dataset folder (``ROOT/<class>/*`` or ``ROOT/{train,val,test}/<class>/*``) or CSV.
        config: an optional YAML config file.
        **overrides: config values by dotted key with ``.`` written as ``__``
            (``train__lr=3e-4``) or by the short names ``model``, ``mode``, ``epochs``,
            ``img_size``, ``batch_size``, ``lr``, ``seed``, ``name``, ``runs_dir``;
            ``resume=RUN`` continues (or, with ``epochs``, extends) a run folder.

    Returns:
        The run folder; ``None`` only on the helper processes of a multi-process (DDP) run.

    Example:
        >>> run = cnnlab.train("data/", model="resnet18", mode="frozen")  # doctest: +SKIP
    """
    from cnnlab.api import train as _train

    return _train(data, config=config, **overrides)


def load(run_dir: str, backend: str = "torch") -> Predictor:
    """Load a finished run folder as a :class:`~cnnlab.predict.Predictor` (an ensemble folder
    as an ``EnsemblePredictor``, which predicts the same way)."""
    from cnnlab.predict import load_predictor

    return load_predictor(run_dir, backend=backend)


def study(
    data: str | None = None,
    vary: dict[str, list[Any]] | None = None,
    seeds: int | list[int] = 3,
    recipe: str | None = None,
    plan: str | dict[str, Any] | None = None,
    out: str | None = None,
    workers: int = 1,
    storage: str | None = None,
    resume: str | None = None,
    **values: Any,
) -> Study:
    """Run a study: every cell of a grid (or plan, or recipe) over several seeds, one split.

    Args:
        data: dataset folder or CSV (omit with ``resume``).
        vary: dotted config keys to lists of values; the study is their cross product.
        seeds: training seeds per cell (a count, or the seeds themselves).
        recipe: a built-in study: ``lr``, ``optimizers``, ``models``, ``transfer``, ``ladder``.
        plan: a plan file (YAML) listing the cells explicitly, or the same as a dict.
        out: the study folder (default ``studies/<name>-<time>``).
        workers: processes training runs side by side on this machine.
        storage: an Optuna storage URL shared by several machines (PostgreSQL).
        resume: an existing study folder to continue (finished runs are kept).
        **values: values every cell shares, by dotted key with ``.`` written as ``__``
            (``train__epochs=5``) or by the short names of :func:`train`.

    Returns:
        The :class:`~cnnlab.studies.study.Study`: ``.table`` (one row per cell), ``.path``.

    Example:
        >>> s = cnnlab.study("data/", vary={"train.lr": [1e-3, 1e-2]}, seeds=3)  # doctest: +SKIP
    """
    from cnnlab.api import short_values
    from cnnlab.studies.study import make_plan, resume_study, run_study

    if resume is not None:
        return resume_study(resume, workers=workers, storage=storage)
    if data is None:
        from cnnlab.errors import ConfigError

        raise ConfigError("study needs a dataset (data=...) or resume=FOLDER")
    spec = make_plan(data, vary, seeds, recipe, plan, short_values(values))
    return run_study(spec, out, workers, storage)


def tune(
    data: str,
    space: str | dict[str, Any] = "cnn",
    trials: int = 20,
    epochs: int = 3,
    objective: str = "val/macro_f1",
    sampler: str | None = None,
    pruner: str | None = None,
    out: str | None = None,
    storage: str | None = None,
    study: str | None = None,
    workers: int = 1,
    timeout: float | None = None,
    target: float | None = None,
    **values: Any,
) -> Tuning:
    """Search hyperparameters with Optuna; calling it again on the same ``out`` continues.

    Args:
        data: dataset folder or CSV.
        space: a built-in space (``cnn``, ``train``, ``transfer``, ``head``), a YAML file, or
            the same mapping as a dict.
        trials: trials in total, over every call and worker sharing the study.
        epochs: epochs per trial.
        objective: ``val/macro_f1`` or ``val/accuracy``, optionally ``,params`` (two
            objectives: the Pareto front of accuracy and model size).
        sampler: ``tpe``, ``random``, ``cmaes``, ``nsga2`` or ``grid`` (default: TPE for one
            objective, NSGA-II for two).
        pruner: ``median``, ``hyperband`` or ``none`` (default: median for one objective).
        out: the tune folder (default ``tunes/<space>``).
        storage: an Optuna storage URL shared by several machines (PostgreSQL).
        study: the study's name in the storage.
        workers: processes running trials side by side on this machine.
        timeout: seconds after which no new trial starts.
        target: with ``,params``: the accuracy the chosen (smallest) model must reach.
        **values: values every trial shares, as in :func:`train` (``data__img_size=32``).

    Returns:
        The :class:`~cnnlab.tuning.tune.Tuning`: ``.best_params``, ``.trials``, ``.path``.

    Example:
        >>> t = cnnlab.tune("data/", space="head", trials=50)   # doctest: +SKIP
    """
    from cnnlab.api import short_values
    from cnnlab.tuning.tune import equivalent_command, make_settings, run_tune

    settings = make_settings(
        data, space, trials, epochs, objective, sampler, pruner, short_values(values),
        study=study or "", timeout_s=timeout, target=target,
    )  # fmt: skip
    settings.command = equivalent_command(settings, out)
    return run_tune(settings, out, storage, workers)


__all__ = ["__version__", "load", "study", "train", "tune"]
