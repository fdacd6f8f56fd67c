"""Docs that describe behaviour stay in step with the code."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from cnnlab.config import valid_keys

ROOT = Path(__file__).resolve().parents[1]


def _render() -> str:
    spec = importlib.util.spec_from_file_location("gen", ROOT / "scripts" / "gen_config_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.render()


def test_config_reference_is_current() -> None:
    text = (ROOT / "docs" / "config.md").read_text()
    assert text == _render(), "run: .venv/bin/python scripts/gen_config_docs.py"
    sections = {"data", "model", "model.cnn", "train", "eval"}
    for key in valid_keys():
        if key not in sections:
            assert f"`{key}`" in text, key


def test_readme_opens_with_the_two_commands() -> None:
    lines = [line for line in (ROOT / "README.md").read_text().splitlines() if line.strip()]
    code = lines.index("```bash")
    assert lines[code + 1].startswith("make demo")
    assert lines[code + 2].startswith("make test")


def test_readme_lists_every_cli_command() -> None:
    from cnnlab.cli import app

    readme = (ROOT / "README.md").read_text()
    names = [c.name for c in app.registered_commands] + [g.name for g in app.registered_groups]
    for name in names:
        assert f"cnnlab {name}" in readme, name
