"""Hyperparameter search with Optuna on the shared scheduling engine (:mod:`cnnlab.schedule`).

- :mod:`~cnnlab.tuning.space`: search spaces (YAML, built-ins ``cnn``, ``train``, ``transfer``,
  ``head``), validated before any trial.
- :mod:`~cnnlab.tuning.tune`: settings, running (one or many workers), reporting; ``Tuning``.
- :mod:`~cnnlab.tuning.search`: sampler, pruner, the exact trial budget, the trial function.
- :mod:`~cnnlab.tuning.results` and :mod:`~cnnlab.tuning.html`: ``trials.csv``, ``best.yaml``,
  ``pareto.csv``, ``tune.html``.
- :mod:`~cnnlab.tuning.retrain`: ``--retrain-best`` as a study.

The tune folder is described in :mod:`cnnlab.tuning.folder` and docs/tuning.md.
"""
