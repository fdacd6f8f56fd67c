"""An interrupted ``cnnlab eval`` leaves no partial ``eval-*`` folder (it left one holding a
plot or two with nothing saying it was incomplete, and the next eval went to ``-N+1``)."""

from __future__ import annotations

from pathlib import Path

import pytest

import cnnlab.evaluation.evaluate as E
from cnnlab.runs import BUILDING


def test_an_interrupted_eval_leaves_no_folder(
    tiny_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = E.write_report

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt  # Ctrl-C after the plots and predictions were written

    monkeypatch.setattr(E, "write_report", interrupted)
    with pytest.raises(KeyboardInterrupt):
        E.evaluate_run(tiny_run)
    assert list(tiny_run.glob("eval-*")) == []
    monkeypatch.setattr(E, "write_report", real)
    result = E.evaluate_run(tiny_run)
    out = Path(result["out_dir"])
    assert out == tiny_run / "eval-test"  # the name the interrupted one had, not eval-test-2
    assert (out / "report.html").is_file() and (out / "predictions.csv").is_file()
    assert not (out / BUILDING).exists()
