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
    """Load a finished run folder as a :class:`~cnnlab.predict.Predictor`."""
    from cnnlab.predict import Predictor

    return Predictor(run_dir, backend=backend)


__all__ = ["__version__", "load", "train"]
