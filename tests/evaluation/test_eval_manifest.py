"""``cnnlab eval RUN --data LABELS.csv``: a CSV manifest read as training reads it.

A user who keeps labels in a CSV (a new labelled batch, or ``data issues``' clean.csv) could
not evaluate a run on it: ``--data`` took folders only. A real trained run (1 epoch, 16 px)
is evaluated on manifests over a generated folder and the numbers compared with eval on the
equivalent labelled folder of the same images.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest
from tests.conftest import folder_digest, write_folder

from cnnlab.errors import ConfigError, DataError
from cnnlab.evaluation.evaluate import evaluate_run

ODD = "gato 猫"  # a class name with a space and CJK must survive the manifest
SAME = ("accuracy", "macro_f1", "confusion_matrix", "log_loss", "ece", "num_samples")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """{"data": ROOT (3 classes x 6 images, one with a comma in its name), "run": RUN}."""
    import cnnlab

    tmp = tmp_path_factory.mktemp("evalcsv")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CNNLAB_CACHE", str(tmp / "cache"))
        root = write_folder(tmp / "data", classes=3, per_class=6, size=24)
        (root / "class_2").rename(root / ODD)
        (root / ODD / "img_005.png").rename(root / ODD / "img ,5.png")  # CSV quoting
        run = cnnlab.train(
            root, model="tiny_cnn", runs_dir=tmp / "runs", name="r", epochs=1, batch_size=8,
            data__img_size=16, eval__explain=False, eval__worst_mistakes=0,
        )  # fmt: skip
    return {"data": root, "run": run.path}


def _images(root: Path) -> list[tuple[str, str]]:
    """(relative path, class) of every image under ROOT/<class>/, sorted."""
    return sorted((p.relative_to(root).as_posix(), p.parent.name) for p in root.glob("*/*.png"))


def _write(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _predicted(out_dir: str) -> dict[str, tuple[str, str, str]]:
    """predictions.csv as path -> (true, pred, prob)."""
    with (Path(out_dir) / "predictions.csv").open(newline="", encoding="utf-8") as fh:
        return {r["path"]: (r["true"], r["pred"], r["prob"]) for r in csv.DictReader(fh)}


def _split_of(i: int) -> str:
    return "test" if i < 2 else "valid" if i == 2 else "train"  # valid: as train reads it


def test_split_column_scores_only_its_split_as_a_split_folder_would(trained, tmp_path):
    data = shutil.copytree(trained["data"], tmp_path / "set")
    rows = [[rel, label, _split_of(int(Path(rel).stem[-1]))] for rel, label in _images(data)]
    labels = _write(data / "new batch.csv", ["path", "label", "split"], rows)
    # the same images in the split layout: ROOT/<split>/<class>/<file>
    as_folder = tmp_path / "split-folder"
    for rel, _, split in rows:
        target = as_folder / split / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(data / rel, target)
    before = folder_digest(data)

    got = evaluate_run(trained["run"], data=labels)
    test_rows = {rel for rel, _, split in rows if split == "test"}
    assert set(_predicted(got["out_dir"])) == test_rows and got["num_samples"] == 6
    assert Path(got["out_dir"]).name == "eval-new batch-test"  # the split it scored, named
    assert got["source"] == "split 'test' of new batch.csv"
    assert got["skipped"] == [] and got["left_out"] == {}
    html = Path(got["report"]).read_text(encoding="utf-8")
    assert str(tmp_path) not in html and "new batch.csv" in html  # no server paths
    folder = evaluate_run(trained["run"], data=as_folder, out_dir=tmp_path / "ev-folder")
    assert {k: got[k] for k in SAME} == {k: folder[k] for k in SAME}
    assert sorted(_predicted(got["out_dir"]).values()) == sorted(
        _predicted(folder["out_dir"]).values()
    )
    val = evaluate_run(trained["run"], data=labels, split="val", out_dir=tmp_path / "ev-val")
    assert set(_predicted(val["out_dir"])) == {r for r, _, s in rows if s == "valid"}

    no_val = _write(data / "no-val.csv", ["path", "label", "split"],
                    [r for r in rows if r[2] != "valid"])  # fmt: skip
    with pytest.raises(DataError, match=r"no-val.csv: no rows of split 'val'; it has test, train"):
        evaluate_run(trained["run"], data=no_val, split="val")
    (data / "no-val.csv").unlink()
    assert folder_digest(data) == before  # cnnlab wrote nothing into the dataset


def test_without_split_column_every_row_is_scored_as_a_flat_folder(trained, tmp_path):
    data = shutil.copytree(trained["data"], tmp_path / "set")
    outside = tmp_path / "lists"
    labels = _write(outside / "all.csv", ["path", "label"],
                    [[f"../set/{rel}", label] for rel, label in _images(data)])  # fmt: skip
    inside = _write(data / "all.csv", ["path", "label"], [list(r) for r in _images(data)])
    before = folder_digest(data)
    folder = evaluate_run(trained["run"], data=data, out_dir=tmp_path / "ev-folder")
    got = evaluate_run(trained["run"], data=inside, out_dir=tmp_path / "ev-csv")
    assert got["num_samples"] == 18 and {k: got[k] for k in SAME} == {k: folder[k] for k in SAME}
    assert _predicted(got["out_dir"]) == _predicted(folder["out_dir"])  # same relative paths
    assert "gato 猫/img ,5.png" in _predicted(got["out_dir"])
    with pytest.raises(ConfigError, match=r"--split test: .*all.csv has no split column, so "
                       r"every row is evaluated; leave out --split"):  # fmt: skip
        evaluate_run(trained["run"], data=inside, split="test")
    with pytest.raises(DataError, match=r"line 2: '../set/class_0/img_000.png' is outside"):
        evaluate_run(trained["run"], data=labels)  # a manifest reads nothing outside its folder
    assert folder_digest(data) == before


def test_unknown_labels_are_left_out_and_bad_rows_are_one_error(trained, tmp_path, capfd):
    data = shutil.copytree(trained["data"], tmp_path / "set")
    images = _images(data)
    rows = [[rel, "class_9" if rel.startswith("class_1/") else label] for rel, label in images]
    labels = _write(data / "batch.csv", ["path", "label"], rows)
    got = evaluate_run(trained["run"], data=labels, out_dir=tmp_path / "ev")
    assert got["left_out"] == {"class_9": 6} and got["num_samples"] == 12
    assert not any(p.startswith("class_1/") for p in _predicted(got["out_dir"]))
    err = " ".join(capfd.readouterr().err.split())
    assert "6 rows with labels the model does not know are left out: class_9 (6)" in err
    html = Path(got["report"]).read_text(encoding="utf-8")
    assert "classes the model does not know" in html and "class_9" in html
    unknown = _write(data / "unknown.csv", ["path", "label"], [[r, "dog"] for r, _ in images])
    with pytest.raises(DataError, match=r"none of its labels is one the model knows \(dog; the"):
        evaluate_run(trained["run"], data=unknown)

    bad = _write(tmp_path / "bad.csv", ["path", "label", "split"], [
        ["set/class_0/img_000.png", "class_0", "test"],
        ["set/class_0/img_001.png", "", "test"],  # line 3: no label
        ["../elsewhere.png", "class_0", "test"],  # line 4: outside the manifest's folder
        ["set/class_0/img_002.png", "class_0", "holdout"],  # line 5: no such split
    ])  # fmt: skip
    with pytest.raises(DataError) as caught:
        evaluate_run(trained["run"], data=bad)
    message = str(caught.value)
    assert message.startswith(f"{bad}: 3 problems stop the evaluation: ")
    assert all(f"line {n}:" in message for n in (3, 4, 5)) and "\n" not in message
    assert "move the file into it" in message and "allow_outside_paths" not in message
    with pytest.raises(DataError, match=r"--data takes a labelled folder .* or a CSV manifest"):
        evaluate_run(trained["run"], data=shutil.copy(labels, tmp_path / "labels.txt"))


def test_a_root_column_reads_the_images_from_that_root(trained, tmp_path):
    """``data issues``' clean.csv lives outside the dataset and names it in a root column."""
    from cnnlab.data.issues_index import record_issues
    from cnnlab.data.scan import scan_dataset

    data = shutil.copytree(trained["data"], tmp_path / "set")
    clean = _write(tmp_path / "issues" / "clean.csv", ["path", "label", "root"],
                   [[rel, label, "../set"] for rel, label in _images(data)])  # fmt: skip
    before = folder_digest(data)
    with pytest.raises(DataError, match="has not analysed on this machine"):
        evaluate_run(trained["run"], data=clean)
    record_issues(scan_dataset(data, progress=False), tmp_path / "issues", {})
    got = evaluate_run(trained["run"], data=clean)
    folder = evaluate_run(trained["run"], data=data, out_dir=tmp_path / "ev-folder")
    assert Path(got["out_dir"]).name == "eval-clean" and got["source"] == "clean.csv"
    assert _predicted(got["out_dir"]) == _predicted(folder["out_dir"])
    assert {k: got[k] for k in SAME} == {k: folder[k] for k in SAME}
    assert folder_digest(data) == before
