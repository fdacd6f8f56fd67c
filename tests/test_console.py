"""Console output is for people and for scripts: long lines must never be cut by rich."""

from __future__ import annotations

import subprocess
import sys


def test_long_messages_are_not_broken_when_piped() -> None:
    # Piped output makes rich assume 80 columns; a long path must still come out on one line.
    path = "/tmp/" + "a-very-long-folder-name/" * 6 + "run"
    code = (
        "from cnnlab.console import info, result, warn\n"
        f"info('{path}: up to date (info)')\n"
        f"result('{path}: up to date (result)')\n"
        f"warn('{path}: up to date (warn)')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "80", "PYTHONPATH": ":".join(sys.path)},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert f"{path}: up to date (info)\n" in out.stdout
    assert f"{path}: up to date (result)\n" in out.stdout
    assert f"{path}: up to date (warn)" in out.stderr


def test_warnings_once_prints_each_distinct_warning_once_and_counts_the_repeats(capsys) -> None:
    from cnnlab.console import warn, warnings_once

    with warnings_once():
        for _ in range(3):
            warn("2 group(s) of identical images")
        warn("run c2-seed43: stopped by the time budget")
    warn("2 group(s) of identical images")  # outside the block: printed again
    out = capsys.readouterr()
    assert out.err.count("warning: 2 group(s) of identical images") == 2
    assert out.err.count("stopped by the time budget") == 1
    assert "2 repeated warning line(s) not shown again" in out.out


def test_file_names_with_brackets_print_as_they_are(capsys) -> None:
    """A path like `a [/b].jpg` used to raise rich's MarkupError inside a warning, and
    `[bold]` in a name was taken as a style and dropped."""
    from cnnlab.console import info, warn

    info("skipped photos/cat [bold].jpg: broken")
    warn("photos/a [/b].jpg could not be read")
    out = capsys.readouterr()
    assert "photos/cat [bold].jpg" in out.out
    assert "photos/a [/b].jpg could not be read" in out.err and "warning:" in out.err


def test_long_work_prints_plain_progress_lines_without_a_terminal(capsys, monkeypatch) -> None:
    """In a log file a bar shows nothing: `data issues` said nothing for 100 s."""
    from cnnlab.console import quietly, track

    monkeypatch.setattr("cnnlab.console.LINE_EVERY_S", 0.0)  # every step is "long" here
    assert list(track(range(3), "hashing images", total=3)) == [0, 1, 2]
    lines = capsys.readouterr().out.splitlines()
    assert [ln.split(",")[0] for ln in lines] == [f"hashing images: {i}/3" for i in (1, 2, 3)]
    assert "left" in lines[0] and lines[-1].endswith("so far")
    with quietly():  # --quiet (and a study's runs): nothing
        list(track(range(3), "hashing images", total=3))
    assert capsys.readouterr().out == ""


def test_stage_lines_wait_for_slow_work_and_end_a_stage_they_began() -> None:
    from cnnlab.console import StageProgress

    shown: list[str] = []
    now = [0.0]
    lines = StageProgress(lambda _, text: shown.append(text), 10, lambda: now[0], lazy=True)
    for t, done in ((0, 0), (1, 50), (2, 100)):  # quick work: not a line
        now[0] = t
        lines("scanning", done, 100)
    for t, done in ((2, 0), (5, 10), (12, 40), (15, 60), (23, 90), (24, 100)):
        now[0] = t
        lines("computing features", done, 100)
    assert shown == [
        "computing features: 40/100, 0:10 so far, about 0:15 left",
        "computing features: 90/100, 0:21 so far, about 0:02 left",
        "computing features: 100/100, 0:22 so far",
    ]
    lines("unknown size", 5, 0)  # no total: a count, never an early end
    assert shown[-1] == "computing features: 100/100, 0:22 so far"
