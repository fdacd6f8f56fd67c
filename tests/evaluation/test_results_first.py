"""`cnnlab train` prints its results while the run's figures are drawn, and ends once they exist."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests.conftest import RUN_FILES

from cnnlab import api, summary
from cnnlab.evaluation import background, plotjobs


@pytest.mark.slow
def test_results_print_before_the_figures_and_the_report_is_there_at_the_end(
    tiny_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[tuple[str, Any]] = []
    printed, reported = summary.print_summary, summary.print_report_path

    def print_table(run: Any) -> None:
        # the drawing was handed to a forked child, half of it left for this process
        drawing = background._pending[run.path]
        events.append(("table", (len(drawing.children) == 1, len(drawing.mine))))
        printed(run)

    def print_path(run: Any) -> None:
        events.append(("report", run.report.is_file() and not background._pending))
        reported(run)

    drawn_here: list[str] = []
    draw = plotjobs._draw_here

    def draw_here(jobs: list[Any]) -> None:
        drawn_here.extend(getattr(fn, "__name__", "?") for fn, _, _ in jobs)
        draw(jobs)

    monkeypatch.setattr(summary, "print_summary", print_table)
    monkeypatch.setattr(summary, "print_report_path", print_path)
    monkeypatch.setattr(plotjobs, "_draw_here", draw_here)
    monkeypatch.setattr(plotjobs, "default_processes", lambda: 2)  # whatever the load
    values = {"train.epochs": 1, "data.img_size": 32, "track.backend": "none"}
    cfg = api.make_config(str(tiny_folder), values={**values, "runs_dir": str(tmp_path / "runs")})
    run = api.fit_and_print(lambda: api.fit_config(cfg))
    assert run is not None
    (table, (forked, left_here)), (report, exists) = events
    assert (table, report) == ("table", "report") and forked and left_here >= 1 and exists
    assert 1 <= len(drawn_here) < 12  # this process drew its share, the child the rest
    for name in RUN_FILES:
        assert (run.path / name).is_file(), name
    assert len(list((run.path / "plots").glob("*.png"))) >= 9
