"""`data.exclude` applied once for `data inspect` and training, and what `data inspect` prints:
duplicate groups with their paths, the label issues of an earlier `data issues`, blocking
problems as errors with a verdict — on generated folders, through the CLI."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from tests.conftest import folder_digest, write_folder, write_messy_folder
from typer.testing import CliRunner

from cnnlab.cli import app
from cnnlab.config import load_config
from cnnlab.data.issues_index import record_issues
from cnnlab.data.scan import scan_dataset
from cnnlab.engine.databundle import prepare_data
from cnnlab.errors import DataError

TINY = ["--epochs", "1", "model.cnn.filters=[8,16]", "train.batch_size=16"]


def _run(*args: str):
    return CliRunner().invoke(app, list(args))


def _text(result) -> str:
    return " ".join(result.output.split())


def _report(out: Path) -> dict:
    return json.loads((out / "data_report.json").read_text(encoding="utf-8"))


def _exclude_csv(path: Path, paths: list[str]) -> Path:
    """A CSV shaped like issues.csv: kind and path columns."""
    path.write_text("kind,path\n" + "".join(f"outlier,{p}\n" for p in paths), encoding="utf-8")
    return path


def test_exclude_that_empties_a_class_stops_inspect_and_train_before_any_work(
    tmp_path: Path,
) -> None:
    root = write_messy_folder(tmp_path / "ds")
    before = folder_digest(root)
    csv_file = _exclude_csv(tmp_path / "issues.csv", [f"tiny/img_{i:03d}.png" for i in range(3)])
    exclude = f"data.exclude={csv_file}"
    out = tmp_path / "audit"
    result = _run("data", "inspect", str(root), exclude, "--out", str(out), "--no-near")
    assert result.exit_code == 1, result.output
    text = _text(result)
    wanted = "class 'tiny' has no image left in train, val, test: data.exclude"
    assert f"error: excluded class: {wanted} ({csv_file}) lists all 3 of its images" in text
    assert "issues.csv to keep the class, or set data.drop_small_classes=true" in text
    assert "not ready to train: 1 blocking problem(s)" in text
    doc = _report(out)
    assert doc["ready_to_train"] is False and doc["counts"]["tiny"] == 0
    assert [p["kind"] for p in doc["problems"]] == ["excluded class"]
    assert len(doc["excluded"]) == 3 and doc["num_images"] == 22

    runs = tmp_path / "runs"
    trained = _run("train", str(root), exclude, "--runs-dir", str(runs), *TINY)
    assert isinstance(trained.exception, DataError)  # `cnnlab` prints it as one line, exit 2
    assert wanted in str(trained.exception) and "\n" not in str(trained.exception)
    assert f"left out 3 file(s) listed in {csv_file}" in _text(trained)
    assert not runs.exists()  # refused before the run folder, decoding or training
    assert not (Path(os.environ["CNNLAB_CACHE"]) / "images").exists()

    dropped = _run("data", "inspect", str(root), exclude, "data.drop_small_classes=true",
                   "--out", str(out), "--no-near")  # fmt: skip
    assert dropped.exit_code == 0, dropped.output
    assert "ready to train" in dropped.output and "dropped (data.drop_small_classes" in (
        _text(dropped)
    )
    assert _report(out)["problems"][0]["blocking"] is False
    assert folder_digest(root) == before


def _leaky_folder(root: Path, leaks: int) -> list[tuple[str, str]]:
    """Split folders where ``leaks`` training images are copied into test; the pairs."""
    write_folder(root / "train", classes=2, per_class=8)
    write_folder(root / "val", classes=2, per_class=2, seed=2)  # so no val is carved
    write_folder(root / "test", classes=2, per_class=2, seed=1)
    pairs = []
    for i in range(leaks):
        shutil.copy(root / f"train/class_0/img_{i:03d}.png", root / f"test/class_0/leak_{i}.png")
        pairs.append((f"train/class_0/img_{i:03d}.png", f"test/class_0/leak_{i}.png"))
    return pairs


def test_exclude_a_few_files_changes_counts_and_leakage_inspect_reports(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    pairs = _leaky_folder(root, leaks=2)
    out = tmp_path / "audit"
    plain = _run("data", "inspect", str(root), "--out", str(out), "--no-near")
    assert plain.exit_code == 0, plain.output
    assert _report(out)["audit"]["leakage"] == 2 and _report(out)["num_images"] == 26
    csv_file = _exclude_csv(tmp_path / "drop.csv", [pairs[0][1], "not/here.png"])
    result = _run("data", "inspect", str(root), f"data.exclude={csv_file}", "--out", str(out),
                  "--no-near")  # fmt: skip
    assert result.exit_code == 0, result.output
    text = _text(result)
    assert f"data.exclude: left out 1 file(s) listed in {csv_file} (1 test)" in text
    assert "1 path(s) in" in text and "are not in this dataset (ignored)" in text
    assert "1 group(s) of identical images span more than one split (leakage):" in text
    assert f"{pairs[1][1]} (test) = {pairs[1][0]} (train)" in text
    assert pairs[0][1] not in text.split("(leakage):")[1]
    doc = _report(out)
    assert doc["audit"]["leakage"] == 1 and doc["audit"]["exact_duplicates"] == 1
    assert doc["num_images"] == 25 and doc["counts"]["class_0"] == 13
    assert doc["splits"]["test"] == 5 and doc["excluded"] == [pairs[0][1]]


def test_inspect_lists_the_groups_and_points_at_audit_html_for_the_rest(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    pairs = _leaky_folder(root, leaks=7)
    shutil.copy(root / "train/class_1/img_000.png", root / "train/class_1/again.png")
    out = tmp_path / "audit"
    result = _run("data", "inspect", str(root), "--out", str(out), "--no-near")
    assert result.exit_code == 0, result.output
    text = _text(result)
    assert "7 group(s) of identical images span more than one split (leakage):" in text
    assert "cnnlab data inspect" not in text  # not a pointer to the command running
    assert sum(f"{b} (test) = {a} (train)" in text for a, b in pairs) == 5
    assert f"... and 2 more in {out / 'audit.html'}" in text
    assert "1 group(s) of identical images within one class and split:" in text
    assert "train/class_1/again.png = train/class_1/img_000.png" in text
    assert str(root) not in text.replace(str(out), "")  # paths are relative to the root


def test_inspect_counts_near_duplicates_and_says_where_they_are_listed(tmp_path: Path) -> None:
    """inspect found 88 near-duplicate pairs (5 across classes) and printed nothing of them."""
    from PIL import Image

    root = write_folder(tmp_path / "ds", classes=3, per_class=8)
    with Image.open(root / "class_0" / "img_003.png") as img:  # re-encoded: similar, not equal
        img.convert("RGB").save(root / "class_1" / "copie é 3.jpg", quality=70)
    before = folder_digest(root)
    out = tmp_path / "audit"
    result = _run("data", "inspect", str(root), "--out", str(out))
    assert result.exit_code == 0, result.output
    audit = _report(out)["audit"]
    pair = {"class_0/img_003.png", "class_1/copie é 3.jpg"}
    assert any({p["a"], p["b"]} == pair and not p["same_label"] for p in audit["near_pairs"])
    total, across = audit["near_duplicates"], audit["near_across_classes"]
    assert across == sum(not p["same_label"] for p in audit["near_pairs"]) >= 1
    assert (
        f"{total} pair(s) of near-duplicate images ({across} across classes), "
        f"listed in {out / 'audit.html'}"
    ) in _text(result)
    assert folder_digest(root) == before
    quiet = _run("data", "inspect", str(root), "--out", str(out), "--no-near")
    assert "near-duplicate" not in quiet.output


def test_training_warning_points_at_inspect_with_the_same_settings(tmp_path: Path, capsys) -> None:
    root = tmp_path / "ds"
    _leaky_folder(root, leaks=1)
    cfg = load_config(overrides=[f"data.root={root}"])
    prepare_data(cfg.data, 32)
    err = " ".join(capsys.readouterr().err.split())
    assert (
        "1 group(s) of identical images span more than one split (leakage); "
        f"`cnnlab data inspect {root}` lists the paths (also in the run's data_report.json)"
    ) in err


def test_inspect_prints_the_label_issues_of_an_earlier_data_issues(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "ds", classes=2, per_class=6)
    issues = tmp_path / "issues"
    issues.mkdir()
    (issues / "issues.html").write_text("<html></html>", encoding="utf-8")
    record_issues(scan_dataset(root, progress=False), issues, {"counts": {"label": 3}})
    out = tmp_path / "audit"
    csv_file = _exclude_csv(tmp_path / "drop.csv", ["class_0/img_000.png"])
    for extra in ([], [f"data.exclude={csv_file}"]):  # the issues were found on every file
        result = _run("data", "inspect", str(root), *extra, "--out", str(out), "--no-near")
        assert result.exit_code == 0, result.output
        text = _text(result)
        assert "label issues: 3 suspected by `cnnlab data issues`" in text
        assert os.path.normpath(out / os.path.relpath(issues / "issues.html", out)) in text
        assert "changed since" not in text
    write_folder(root, classes=1, per_class=7)  # one more image: the analysis is out of date
    result = _run("data", "inspect", str(root), "--out", str(out), "--no-near")
    assert "the dataset changed since, run it again" in _text(result)


def test_blocking_problem_is_an_error_with_a_verdict_and_a_relative_path(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "ds", classes=2, per_class=6)
    (root / "empty_class").mkdir()
    out = tmp_path / "audit"
    result = _run("data", "inspect", str(root), "--out", str(out), "--no-near")
    assert result.exit_code == 1, result.output
    text = _text(result)
    assert "error: empty class: class folder 'empty_class' has no image files" in text
    assert "warning: empty class" not in text
    assert text.rstrip().endswith(
        f"not ready to train: 1 blocking problem(s) (above; all in {out / 'data_report.json'}); "
        "`cnnlab train` refuses this folder until they are fixed"
    )
    assert str(root) not in json.dumps(_report(out)["problems"])


def test_exclude_that_empties_only_a_test_class_warns_and_stays_ready(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    _leaky_folder(root, leaks=0)
    csv_file = _exclude_csv(tmp_path / "drop.csv", [f"test/class_1/img_00{i}.png" for i in (0, 1)])
    out = tmp_path / "audit"
    result = _run("data", "inspect", str(root), f"data.exclude={csv_file}", "--out", str(out),
                  "--no-near")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (
        f"warning: class 'class_1' has no image left in test: data.exclude ({csv_file}) lists "
        "2 of its images; its test scores cannot be measured"
    ) in _text(result)
    assert _report(out)["problems"][0] == {
        "kind": "excluded class",
        "message": _report(out)["problems"][0]["message"],
        "blocking": False,
    }


def test_a_class_without_val_images_warns_alike_from_a_manifest_or_data_exclude(
    tmp_path: Path, capsys
) -> None:
    """`data issues` then `train clean.csv` left a class with no val image and nothing said
    so, while data.exclude warned for the same gap; one check now warns in both, in inspect
    and in training."""
    images = write_folder(tmp_path / "shop" / "images", classes=3, per_class=6)
    before = folder_digest(images)
    rows, last_val = ["path,label,split"], ""
    for f in sorted(images.rglob("*.png")):
        rel, i = f.relative_to(images.parent).as_posix(), int(f.stem.split("_")[1])
        split = "test" if i == 5 else ("val" if i == 4 else "train")
        if f.parent.name == "class_2" and split == "val":
            split, last_val = "train", rel  # its only val image moved to train
        rows.append(f"{rel},{f.parent.name},{split}")
    manifest = images.parent / "clean.csv"
    manifest.write_text("\n".join(rows) + "\n", encoding="utf-8")
    out = tmp_path / "audit"
    result = _run("data", "inspect", str(manifest), "--out", str(out), "--no-near")
    assert result.exit_code == 0, result.output
    gap = "class 'class_2' has no image in val; its val scores cannot be measured"
    assert f"warning: {gap}" in _text(result)
    assert _report(out)["problems"] == [{"kind": "unmeasured class", "message": gap,
                                         "blocking": False}]  # fmt: skip
    prepare_data(load_config(overrides=[f"data.root={manifest}"]).data, 32)  # training's check
    assert f"warning: {gap}" in " ".join(capsys.readouterr().err.split())

    text = manifest.read_text(encoding="utf-8")
    manifest.write_text(text.replace(f"{last_val},class_2,train", f"{last_val},class_2,val"))
    listed = _exclude_csv(tmp_path / "issues.csv", [last_val])
    result = _run("data", "inspect", str(manifest), f"data.exclude={listed}", "--out", str(out),
                  "--no-near")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (
        f"warning: class 'class_2' has no image left in val: data.exclude ({listed}) lists 1 "
        "of its images; its val scores cannot be measured"
    ) in _text(result)
    assert folder_digest(images) == before
