"""Every command's help says what its source says (the help is rendered as Markdown)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import typer
from typer.testing import CliRunner

from cnnlab.cli import app

# Markdown drops `<word>` as an HTML tag: `ROOT/<class>/*` showed as `ROOT//*`.
TAG = re.compile(r"<[A-Za-z_][\w -]*>")


def _commands(cmd: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    yield path, cmd
    for name, sub in getattr(cmd, "commands", {}).items():  # typer's groups (its own click)
        yield from _commands(sub, (*path, name))


def test_no_help_text_holds_a_placeholder_markdown_would_swallow() -> None:
    root = typer.main.get_command(app)
    found, seen = [], 0
    for path, cmd in _commands(root):
        texts = [cmd.help or ""] + [getattr(p, "help", None) or "" for p in cmd.params]
        seen += 1
        found += [(" ".join(path), t) for t in texts if TAG.search(t)]
    assert seen > 20 and not found, (seen, found)  # every subcommand was looked at


def test_placeholders_survive_in_the_rendered_help() -> None:
    out = CliRunner().invoke(app, ["data", "inspect", "--help"], env={"COLUMNS": "160"}).output
    assert "ROOT/CLASS/*" in out and "./data_audit/NAME" in out


def test_quiet_before_any_command_is_accepted() -> None:
    """README: `cnnlab --quiet COMMAND` works for every command (only some take it after)."""
    root = typer.main.get_command(app)
    for path, _ in _commands(root):
        if path:
            out = CliRunner().invoke(app, ["--quiet", *path, "--help"])
            assert out.exit_code == 0, (path, out.output)
