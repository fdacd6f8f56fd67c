"""Tracking tests run with the user's true default: tracking on, embedded SQLite store."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _tracking_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CNNLAB_TRACK", raising=False)
