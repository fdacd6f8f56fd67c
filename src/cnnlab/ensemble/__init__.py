"""Ensembles of finished runs: soft, hard, weighted and greedy, in folders that act like runs.

Example:
    >>> from cnnlab.ensemble.folder import build_ensemble  # doctest: +SKIP
    >>> run = build_ensemble(["runs/cnn", "runs/effnet"], method="greedy")  # doctest: +SKIP
"""
