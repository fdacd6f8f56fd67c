"""Inside ``deferred_figures`` a run returns once its numbers are written; its figures follow.

Studies and tunes train the next run while a forked child draws the last one's PNGs and
report (issue 11). Whatever the order, the folder must end the same as a run drawn at once,
and nothing that needs the figures (tracking) may see the run before they exist.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.conftest import write_folder

from cnnlab import runs
from cnnlab.api import fit_config, make_config
from cnnlab.evaluation import background
from cnnlab.evaluation.background import deferred_figures

pytestmark = pytest.mark.slow
FILES = ("report.html", "report.md", runs.SUMMARY)


def _cfg(data: Path, out: Path, name: str):
    return make_config(str(data), values={"train.epochs": 1, "data.img_size": 16, "name": name,
                                          "runs_dir": str(out), "track.backend": "none",
                                          "train.seed": 3})  # fmt: skip


class Seen:
    """A run observer noting, when told the run ended, which files the folder had."""

    def __init__(self) -> None:
        self.at_end: dict[str, bool] = {}

    def run_started(self, run_dir: Path) -> None:
        pass

    def epoch_ended(self, run_dir: Path, epoch: int) -> None:
        pass

    def run_ended(self, run_dir: Path, status: str) -> None:
        def note() -> None:
            self.at_end = {f: (run_dir / f).is_file() for f in FILES}

        background.when_drawn(run_dir, note)


def test_deferred_runs_end_like_runs_drawn_at_once(tmp_path: Path) -> None:
    data = write_folder(tmp_path / "data ü", classes=3, per_class=12)
    now = fit_config(_cfg(data, tmp_path / "runs", "now"))
    seen = Seen()
    with deferred_figures():
        later = fit_config(_cfg(data, tmp_path / "runs", "later"), observers=[seen])
        assert (later.path / runs.SUMMARY).is_file()  # the numbers are there at once
        second = fit_config(_cfg(data, tmp_path / "runs", "second"))
    assert seen.at_end == dict.fromkeys(FILES, True)  # told only once the report existed
    for run in (later, second):
        assert all((run.path / f).is_file() for f in FILES)
        assert sorted(p.name for p in (run.path / runs.PLOTS).iterdir()) == sorted(
            p.name for p in (now.path / runs.PLOTS).iterdir()
        )
        html = (run.path / "report.html").read_text(encoding="utf-8")
        pngs = list((run.path / runs.PLOTS).glob("*.png"))
        assert html.count("data:image/png;base64") == len(pngs)
    # the same seed and data: the same numbers, whenever the figures were drawn
    assert later.summary["metrics"] == now.summary["metrics"]
    assert not background.deferring() and not background._pending
