"""Evaluation: metrics, plots and reports from predictions or a finished run.

Import from the submodules (``cnnlab.evaluation.metrics``, ``.plots``, ``.report``,
``.evaluate``); this package module stays empty so importing it pulls in nothing heavy.
"""
