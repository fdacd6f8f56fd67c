"""The examples in docstrings are run, so documentation cannot drift from the code."""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import pkgutil
from pathlib import Path

import pytest

import cnnlab

# Streamlit page scripts run their page when imported; they hold no doctests.
_NOT_IMPORTED = ("cnnlab.app.pages", "cnnlab.__main__")


def _modules() -> list[str]:
    """Modules whose source holds a ``>>>`` example (importing the others would only cost time)."""
    found = []
    for info in pkgutil.walk_packages(cnnlab.__path__, "cnnlab."):
        if info.name.startswith(_NOT_IMPORTED):
            continue
        spec = importlib.util.find_spec(info.name)
        origin = Path(spec.origin) if spec and spec.origin else None
        if origin and origin.suffix == ".py" and ">>> " in origin.read_text(encoding="utf-8"):
            found.append(info.name)
    return sorted(found)


def test_examples_are_found() -> None:
    assert "cnnlab.models.registry" in _modules()  # a module known to hold examples


@pytest.mark.parametrize("name", _modules())
def test_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
