"""``cnnlab eval`` names the split it scored, and cautions when the images are the run's own
val or train images (exploratory report I, finding 10)."""

from __future__ import annotations

import csv
from pathlib import Path

import yaml
from tests.conftest import folder_digest, write_folder

from cnnlab.evaluation.evaluate import evaluate_run

VAL_CAUTION = "Caution: All 6 images evaluated are the run's own validation images"


def _report(result: dict) -> str:
    """report.md's words (report.html holds the same, HTML-escaped)."""
    md = Path(result["report"]).with_name("report.md")
    return " ".join(md.read_text(encoding="utf-8").split())


def _split_layout_run(run: Path, tmp_path: Path) -> Path:
    """Point ``run`` at a split-layout dataset ``five/{train,val,test}/class_*`` (3 classes x
    2 images per split) as training would have recorded it in config.yaml and split.csv."""
    five = tmp_path / "five"
    for seed, split in enumerate(("train", "val", "test")):
        write_folder(five / split, classes=3, per_class=2, size=40, seed=seed)
    cfg = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))
    cfg["data"]["root"] = str(five)
    (run / "config.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    rows = [(p.relative_to(five).as_posix(), p.parent.name, p.parts[-3])
            for p in sorted(five.rglob("*.png"))]  # fmt: skip
    with (run / "split.csv").open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([("path", "label", "split"), *rows])
    return five


def test_the_runs_own_val_split_is_named_and_cautioned(tiny_run):
    val = evaluate_run(tiny_run, split="val")
    assert Path(val["out_dir"]).name == "eval-val"
    text = _report(val)
    assert "tiny_cnn-run: evaluation on split 'val' of data" in text
    assert VAL_CAUTION in text and "which chose its best epoch" in text
    assert val["caution"].startswith("All 6 images evaluated are the run's own validation")
    test = evaluate_run(tiny_run)
    assert "Caution" not in _report(test) and test["caution"] == ""


def test_a_split_of_a_data_folder_is_in_the_title_and_the_folder_name(tiny_run, tmp_path):
    five = _split_layout_run(tiny_run, tmp_path)
    untouched = folder_digest(five)
    val = evaluate_run(tiny_run, data=five, split="val")
    assert val["images"] == 6 and Path(val["out_dir"]).name == "eval-five-val"  # was eval-five
    text = _report(val)
    assert "tiny_cnn-run: evaluation on split 'val' of five" in text  # was "on five"
    assert VAL_CAUTION in text  # the run's own val images, reached through --data
    test = evaluate_run(tiny_run, data=five)  # the default split of a split layout: test
    assert Path(test["out_dir"]).name == "eval-five-test"
    assert "evaluation on split 'test' of five" in _report(test) and not test["caution"]
    assert folder_digest(five) == untouched  # the dataset is read-only to cnnlab
    manifest = five / "labels.csv"  # a manifest with a split column, over the same images
    rows = (tiny_run / "split.csv").read_text(encoding="utf-8").splitlines()
    manifest.write_text("\n".join(rows) + "\n", encoding="utf-8")
    before = folder_digest(five)
    listed = evaluate_run(tiny_run, data=manifest, split="val")
    assert Path(listed["out_dir"]).name == "eval-labels-val"
    assert "evaluation on split 'val' of labels.csv" in _report(listed)
    assert VAL_CAUTION in _report(listed)
    assert folder_digest(five) == before


def test_a_flat_folder_holding_the_runs_images_says_how_many_it_used(tiny_run):
    data = tiny_run.parent.parent / "data"
    flat = evaluate_run(tiny_run, data=data)
    assert Path(flat["out_dir"]).name == "eval-data"  # no split to name: every image
    text = _report(flat)
    assert "tiny_cnn-run: evaluation on data" in text
    assert "6 of the 24 images evaluated are the run's own validation images" in text
    assert "9 of the 24 images evaluated are the run's own training images" in text
