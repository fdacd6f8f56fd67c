"""The GPU tests: they run where CUDA has a device, and say so where it has none.

CI and the development machines have no GPU, so these are skipped there with the reason
in pytest's summary (``-ra``); on a GPU machine run ``python -m pytest tests/gpu``
(docs/scaling.md, "Checking a GPU machine").
"""

from __future__ import annotations

import pytest
import torch


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (none here): run tests/gpu on a GPU machine")
    for item in items:
        if "tests/gpu/" in item.nodeid:
            item.add_marker(skip)
