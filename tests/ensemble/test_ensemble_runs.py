"""Ensembles of real runs through the CLI and the API: the folder acts like a run."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tests.conftest import folder_digest

import cnnlab
from cnnlab.ensemble.combine import average, hard_vote
from cnnlab.ensemble.folder import build_ensemble
from cnnlab.errors import ConfigError
from cnnlab.explain.cam import Explainer
from cnnlab.predict import Predictor

from .conftest import ODD_CLASS


def cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, COLUMNS="200", NO_COLOR="1")
    return subprocess.run(
        [sys.executable, "-m", "cnnlab", *map(str, args)], capture_output=True, text=True, env=env
    )


def _probs(run: Path, split: str) -> np.ndarray:
    return np.load(run / "predictions" / f"{split}_probs.npy")


def test_runs_save_full_probabilities_beside_their_predictions(members) -> None:
    run = members["a"]
    classes = json.loads((run / "classes.json").read_text(encoding="utf-8"))
    assert ODD_CLASS in classes
    for split in ("val", "test"):
        with (run / "predictions" / f"{split}.csv").open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        probs = _probs(run, split)
        assert probs.dtype == np.float32 and probs.shape == (len(rows), len(classes))
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
        assert [classes[i] for i in probs.argmax(axis=1)] == [r["pred"] for r in rows]
        np.testing.assert_allclose(probs.max(axis=1), [float(r["prob"]) for r in rows], atol=1e-5)


def test_greedy_ensemble_folder_acts_like_a_run(members, tmp_path) -> None:
    before = folder_digest(members["data"])
    out = tmp_path / "ens"
    done = cli("ensemble", members["a"], members["b"], "--method", "greedy", "--out", out)
    assert done.returncode == 0, done.stderr
    assert "greedy ensemble" in done.stdout and "report:" in done.stdout
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    member = json.loads((members["a"] / "summary.json").read_text(encoding="utf-8"))
    assert set(member) <= set(summary)  # the run summary's schema, plus ensemble keys
    assert summary["model"] == "ensemble" and summary["mode"] == "greedy"
    best_val = max(
        json.loads((members[k] / "summary.json").read_text())["metrics"]["val"]["accuracy"]
        for k in ("a", "b")
    )
    assert summary["metrics"]["val"]["accuracy"] >= best_val
    card = json.loads((out / "ensemble.json").read_text(encoding="utf-8"))
    assert card["fitted_on"] == "val" and sum(
        m["weight"] for m in card["members"]
    ) == pytest.approx(1)
    gain = summary["gain_over_best_member"]
    assert gain["verdict"] in ("better", "worse", "not distinguishable")
    html = (out / "report.html").read_text(encoding="utf-8")
    for text in ("Ensemble vs members", "chosen on val", "Weights fitted on val", ODD_CLASS):
        assert text in html
    files = ["classes.json", "split.csv", "config.yaml", "predictions/test.csv", "report.md",
             "predictions/val_probs.npy", "plots/test_confusion_matrix.png"]  # fmt: skip
    for f in files:
        assert (out / f).is_file(), f
    listed = cli("runs", "--runs-dir", tmp_path)
    assert listed.returncode == 0 and "ens" in listed.stdout
    assert folder_digest(members["data"]) == before


def test_building_reuses_saved_probabilities(members, tmp_path, monkeypatch) -> None:
    """No model is loaded and no image predicted: the members' saved scores are combined."""

    def tripwire(*_a, **_k):
        raise AssertionError("an ensemble build must not predict again")

    monkeypatch.setattr(Predictor, "__init__", tripwire)
    run = build_ensemble([members["a"], members["b"]], method="soft", out=tmp_path / "soft")
    expected = average(np.stack([_probs(members[k], "test") for k in ("a", "b")]), np.ones(2))
    np.testing.assert_allclose(_probs(run.path, "test"), expected, atol=1e-6)
    y_true = [r["true"] for r in csv.DictReader((run.path / "predictions/test.csv").open())]
    classes = json.loads((run.path / "classes.json").read_text(encoding="utf-8"))
    accuracy = np.mean([classes[i] == t for i, t in zip(expected.argmax(1), y_true, strict=True)])
    assert run.summary["metrics"]["test"]["accuracy"] == pytest.approx(accuracy)
    hard = build_ensemble([members["a"], members["b"]], method="hard", out=tmp_path / "hard")
    votes = hard_vote(np.stack([_probs(members[k], "test") for k in ("a", "b")]))
    np.testing.assert_allclose(_probs(hard.path, "test"), votes, atol=1e-6)


def test_predict_eval_and_load_accept_an_ensemble(members, tmp_path) -> None:
    ens = build_ensemble([members["a"], members["b"]], method="weighted", out=tmp_path / "w").path
    weights = [m["weight"] for m in json.loads((ens / "ensemble.json").read_text())["members"]]
    images = sorted((members["data"] / ODD_CLASS).glob("*.png"))[:4]
    got = cnnlab.load(str(ens)).predict(images, top_k=3)
    parts = []
    for k in ("a", "b"):
        p = Predictor(members[k])
        arrays = np.stack([p.load(f) for f in images]).transpose(0, 3, 1, 2)
        parts.append(p.predict_arrays(arrays.copy()).numpy())
    expected = average(np.stack(parts), np.array(weights))
    classes = Predictor(members["a"]).classes
    assert [r["label"] for r in got] == [classes[i] for i in expected.argmax(axis=1)]
    np.testing.assert_allclose([r["prob"] for r in got], expected.max(axis=1), atol=1e-5)

    shown = cli("predict", ens, images[0].parent, "--top-k", "2")
    assert shown.returncode == 0, shown.stderr
    assert "img_000.png" in shown.stdout
    with pytest.raises(ConfigError, match="is an ensemble: explain its member runs"):
        Explainer(ens)
    evaluated = cli("eval", ens)  # its own test split, predicted again from the images
    assert evaluated.returncode == 0, evaluated.stderr
    # the same result line as a run's (it used to print nothing for an ensemble)
    assert "accuracy " in evaluated.stdout and "report: " in evaluated.stdout
    assert str(ens / "eval-test" / "report.html") in evaluated.stdout.replace("\n", "")
    resumed = cli("train", "--resume", ens)
    assert resumed.returncode == 2 and "is an ensemble: it has no training to resume" in (
        resumed.stderr
    )
    metrics = json.loads((ens / "eval-test" / "metrics.json").read_text(encoding="utf-8"))
    summary = json.loads((ens / "summary.json").read_text(encoding="utf-8"))
    assert metrics["accuracy"] == pytest.approx(summary["metrics"]["test"]["accuracy"])

    # a new batch with a class no member knows: scored on the rest, the new class left out
    from cnnlab.ensemble.predictor import evaluate_ensemble

    batch = tmp_path / "new-batch"
    for name, files in ((ODD_CLASS, images[:3]), ("never_seen", images[3:])):
        (batch / name).mkdir(parents=True)
        for f in files:
            shutil.copy(f, batch / name / f.name)
    result = evaluate_ensemble(ens, data=batch, out_dir=tmp_path / "ev-new")
    assert result["num_samples"] == 3 and result["left_out"] == {"never_seen": 1}
    shown = cli("eval", ens, "--data", batch, "--out", tmp_path / "ev-cli")
    assert shown.returncode == 0, shown.stderr
    # the batch holds one of the classes the members know: macro F1 leaves out the others
    # unless predicted (training's rule), and the line says over how many classes it averaged
    cm = np.asarray(result["confusion_matrix"])
    counted = int(((cm.sum(axis=0) + cm.sum(axis=1)) > 0).sum())
    note = f"macro F1 averages {counted} of {len(classes)} classes: those with an image here"
    assert note in " ".join(shown.stdout.split())
    # the same batch as a CSV manifest (path,label): the same images scored, the same left out
    rows = [[f.relative_to(batch).as_posix(), f.parent.name] for f in sorted(batch.glob("*/*"))]
    with (batch / "labels.csv").open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([["path", "label"], *rows])
    before = folder_digest(batch)
    listed = cli("eval", ens, "--data", batch / "labels.csv")
    assert listed.returncode == 0, listed.stderr
    assert "1 rows with labels the model does not know are left out" in " ".join(
        listed.stderr.split()
    )
    metrics = json.loads((ens / "eval-labels" / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["num_samples"] == 3 and metrics["accuracy"] == pytest.approx(result["accuracy"])
    assert folder_digest(batch) == before


def test_members_must_share_classes_and_split(members, tmp_path) -> None:
    other = tmp_path / "b-other-split"
    shutil.copytree(members["b"], other)
    with (other / "split.csv").open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        columns, rows = reader.fieldnames, list(reader)
    next(r for r in rows if r["split"] == "test")["split"] = "train"
    with (other / "split.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    done = cli("ensemble", members["a"], other)
    assert done.returncode == 2
    assert "b-other-split and a were scored on different splits" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1

    renamed = tmp_path / "b-other-classes"
    shutil.copytree(members["b"], renamed)
    classes = json.loads((renamed / "classes.json").read_text(encoding="utf-8"))
    (renamed / "classes.json").write_text(json.dumps(classes[::-1]), encoding="utf-8")
    done = cli("ensemble", members["a"], renamed)
    assert done.returncode == 2 and "members must share classes" in done.stderr
    done = cli("ensemble", members["a"])
    assert done.returncode == 2 and "at least two runs" in done.stderr


def test_from_study_takes_the_best_cells_by_val(members, tmp_path) -> None:
    """Built against the studies output contract (results.csv, run_dir relative to it)."""
    study = tmp_path / "study"
    for name, src in (("c0-s0", "a"), ("c1-s0", "b"), ("c2-s0", "a")):
        shutil.copytree(members[src], study / "runs" / name)
    header = "cell,label,train.lr,seed,run_dir,status,val_accuracy,test_accuracy\n"
    rows = [
        "c0,lr 1e-3,0.001,0,runs/c0-s0,done,0.90,0.80",
        "c1,lr 1e-2,0.01,0,runs/c1-s0,done,0.80,0.70",
        "c2,lr 1e-1,0.1,0,runs/c2-s0,done,0.50,0.99",  # best on test, worst on val
        "c3,lr 1,1.0,0,runs/c3-s0,failed,,",
    ]
    (study / "results.csv").write_text(header + "\n".join(rows) + "\n", encoding="utf-8")
    (study / "table.csv").write_text("cell,label,n\n", encoding="utf-8")
    out = tmp_path / "from-study"
    done = cli("ensemble", "--from-study", study, "--top", "2", "--out", out)
    assert done.returncode == 0, done.stderr
    names = [m["name"] for m in json.loads((out / "ensemble.json").read_text())["members"]]
    assert names == ["c0-s0", "c1-s0"]
    missing = cli("ensemble", "--from-study", tmp_path / "nowhere")
    assert missing.returncode == 2 and "results.csv: missing" in missing.stderr


def test_greedy_that_keeps_one_run_says_there_is_no_ensemble(members, tmp_path) -> None:
    """Explore_i 13: greedy selection that kept only one of two candidates printed "greedy
    ensemble of 1 run ... +0.0000 vs c1-seed42: not distinguishable" (the run against itself)
    and wrote a full ensemble report; ``--top 3`` on two cells silently took two; and the
    ensemble's own row in the members table showed the meaningless weight 1.0000."""
    before = folder_digest(members["data"])
    study = tmp_path / "study"
    for name in ("c0-s0", "c1-s0"):  # two copies of one run: greedy never adds the second
        shutil.copytree(members["a"], study / "runs" / name)
    header = "cell,label,train.lr,seed,run_dir,status,val_accuracy,test_accuracy\n"
    rows = ["c0,lr 1e-3,0.001,0,runs/c0-s0,done,0.90,0.80",
            "c1,lr 1e-2,0.01,0,runs/c1-s0,done,0.90,0.80"]  # fmt: skip
    (study / "results.csv").write_text(header + "\n".join(rows) + "\n", encoding="utf-8")
    out = tmp_path / "greedy"
    done = cli("ensemble", "--from-study", study, "--top", "3", "--method", "greedy", "--out", out)
    assert done.returncode == 0, done.stderr
    said = " ".join(done.stdout.split())
    assert "--top 3: the study has 2 finished cells with a val accuracy, so the ensemble is " \
        "chosen from those 2" in said, said  # fmt: skip
    kept = "Greedy selection on val kept only c0-s0: adding any other candidate did not raise"
    assert kept in said and "so there is no ensemble" in said, said
    assert "vs c0-s0" not in said  # no comparison of the run with itself
    weights = [m["weight"] for m in json.loads((out / "ensemble.json").read_text())["members"]]
    assert weights == [1.0, 0.0]
    report = " ".join((out / "report.md").read_text(encoding="utf-8").split())
    assert kept in report and "ensemble minus the best member" not in report
    [row] = [
        ln for ln in (out / "report.md").read_text().splitlines() if ln.startswith("| ensemble")
    ]
    assert [c.strip() for c in row.strip("|").split("|")][3] == "", row  # no weight
    assert folder_digest(members["data"]) == before


def _tie_on_val(run: Path, like: Path) -> None:
    """Give ``run`` the val accuracy and macro F1 of ``like``: a few dozen val images make such
    ties common (explore_g 4: three study seeds all scored 0.9667)."""
    summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    theirs = json.loads((like / "summary.json").read_text(encoding="utf-8"))["metrics"]["val"]
    summary["metrics"]["val"].update(accuracy=theirs["accuracy"], macro_f1=theirs["macro_f1"])
    (run / "summary.json").write_text(json.dumps(summary), encoding="utf-8")


def test_the_best_member_does_not_depend_on_argument_order_when_members_tie_on_val(
    members, tmp_path
) -> None:
    """Explore_g 4: with members tied on val the first given was "best", so the headline gain,
    its CI and the member named changed with the order of the command's arguments."""
    tied = {k: tmp_path / k for k in ("b tied", "a twin")}
    shutil.copytree(members["b"], tied["b tied"])
    shutil.copytree(members["a"], tied["a twin"])  # same val log loss as a: the name decides
    _tie_on_val(tied["b tied"], members["a"])
    runs = [members["a"], tied["b tied"], tied["a twin"]]
    loss = {p.name: json.loads((p / "summary.json").read_text())["metrics"]["val"]["log_loss"]
            for p in runs}  # fmt: skip
    first = min(("a", "b tied"), key=lambda n: (loss[n], n))
    gains = []
    for i, order in enumerate((runs, runs[::-1], [runs[1], runs[0], runs[2]])):
        run = build_ensemble(order, method="soft", out=tmp_path / f"ens{i}")
        gains.append(run.summary["gain_over_best_member"])
        text = " ".join((run.path / "report.md").read_text(encoding="utf-8").split())
        assert "it tied on val accuracy and macro F1 with" in text
    keys = ("best_member", "tied_on_val", "tie_broken_by", "accuracy_diff", "ci_low", "ci_high")
    assert all({k: g[k] for k in keys} == {k: gains[0][k] for k in keys} for g in gains), gains
    assert gains[0]["best_member"] == first
    assert sorted([first, *gains[0]["tied_on_val"]]) == ["a", "a twin", "b tied"]

    done = cli("ensemble", tied["b tied"], members["a"], "--out", tmp_path / "pair")
    assert done.returncode == 0, done.stderr
    assert f"vs {first}, which tied on val with 1 other(s):" in done.stdout
    gain = json.loads((tmp_path / "pair/summary.json").read_text())["gain_over_best_member"]
    assert gain["best_member"] == first and gain["tie_broken_by"] == "val log loss"
    text = " ".join((tmp_path / "pair/report.md").read_text(encoding="utf-8").split())
    assert f"({first}, chosen on val: it tied on val accuracy and macro F1 with" in text
    assert "and has the lowest val log loss of them)" in text
