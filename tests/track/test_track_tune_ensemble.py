"""A tune is a parent run with its trials nested; an ensemble is a parent run naming members."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.conftest import write_folder
from tests.track.track_helpers import artifact_paths, runs_of

import cnnlab
from cnnlab.ensemble.folder import build_ensemble
from cnnlab.track import flush
from cnnlab.track.target import default_uri
from cnnlab.tuning.tune import Tuning

pytestmark = pytest.mark.slow
TINY = {"data__img_size": 16, "eval__worst_mistakes": 0, "eval__explain": False}


@pytest.fixture(scope="module")
def tune_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A two-trial tune logged to its default store (tracking on, as a user has it)."""
    tmp = tmp_path_factory.mktemp("tracked-tune")
    data = write_folder(tmp / "data", classes=3, per_class=10, size=16)
    space = tmp / "lr.yaml"
    space.write_text(
        "set: {train.optimizer: adam, train.scheduler: none}\n"
        "params:\n  train.lr: {type: categorical, choices: [3.0e-3, 1.0e-2]}\n",
        encoding="utf-8",
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("CNNLAB_TRACK", raising=False)
        t = cnnlab.tune(data, space=str(space), sampler="grid", trials=2, epochs=1,
                        pruner="none", out=str(tmp / "tune"), **TINY)  # fmt: skip
        assert flush(600)
    return t.path


def test_a_tune_nests_its_trials_and_tags_the_best(tune_dir: Path) -> None:
    uri = default_uri(tune_dir / "trials")  # the trials' runs live there, so does their store
    runs = runs_of(uri)
    [top] = [r for r in runs if r.data.tags["cnnlab.kind"] == "tune"]
    assert top.info.run_name == tune_dir.name and top.info.status == "FINISHED"
    assert top.data.params["trials"] == "2" and top.data.params["sampler"] == "grid"
    children = {r.info.run_name: r for r in runs if r is not top}
    assert sorted(children) == ["trial-0000", "trial-0001"]
    assert all(c.data.tags["mlflow.parentRunId"] == top.info.run_id for c in children.values())
    best = Tuning(tune_dir).best
    assert best is not None and top.data.tags["cnnlab.best_trial"] == str(best["trial"])
    tagged = [n for n, r in children.items() if r.data.tags.get("cnnlab.best") == "true"]
    assert tagged == [Path(best["run_dir"]).name]
    assert top.data.tags["cnnlab.best_run_id"] == children[tagged[0]].info.run_id
    files = artifact_paths(uri, top.info.run_id)
    assert {"tune.yaml", "trials.csv", "best.yaml", "tune.html"} <= files


def test_an_ensemble_is_a_parent_run_with_its_members_tagged(
    tune_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CNNLAB_TRACK", raising=False)
    members = sorted((tune_dir / "trials").glob("trial-*"))
    out = tmp_path / "ensembles" / "pair"
    run = build_ensemble(members, method="weighted", out=out)
    assert flush(600)
    uri = default_uri(tune_dir / "trials")  # the members' store, wherever --out puts it
    assert not (out.parent / "mlflow.db").exists()  # no stray store beside the ensemble
    runs = runs_of(uri)
    [top] = [r for r in runs if r.data.tags["cnnlab.kind"] == "ensemble"]
    assert top.info.run_name == "pair" and top.info.status == "FINISHED"
    assert top.data.params["ensemble.method"] == "weighted"
    test_acc = run.summary["metrics"]["test"]["accuracy"]
    assert top.data.metrics["final/test/accuracy"] == pytest.approx(test_acc)
    assert {"report.html", "ensemble.json", "summary.json"} <= artifact_paths(uri, top.info.run_id)
    # the members are their own store runs (not logged a second time), still nested under
    # their tune, and tagged with their weight
    named = {r.info.run_name: r for r in runs if r.data.tags["cnnlab.kind"] == "run"}
    assert sorted(named) == ["trial-0000", "trial-0001"]
    [tune] = [r for r in runs if r.data.tags["cnnlab.kind"] == "tune"]
    for member in named.values():
        assert member.data.tags["mlflow.parentRunId"] == tune.info.run_id
        assert member.data.tags["cnnlab.member_of.pair"].startswith("weight ")
        assert member.info.status == "FINISHED" and "final/val/accuracy" in member.data.metrics
