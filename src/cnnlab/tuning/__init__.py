"""Hyperparameter search with Optuna on the shared scheduling engine (:mod:`cnnlab.schedule`).

- :mod:`~cnnlab.tuning.space`: search spaces (YAML, built-ins ``cnn``, ``train``, ``transfer``,
  ``head``), validated before any trial.
"""
