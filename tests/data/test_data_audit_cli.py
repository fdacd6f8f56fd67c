"""Audit (RELIABILITY 13), the `cnnlab data` commands, and the demo datasets."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from tests.conftest import folder_digest, write_folder, write_messy_folder
from tests.data.data_badfiles import bad_files, png_bytes, write_bytes
from typer.testing import CliRunner

import cnnlab
from cnnlab.commands.data import app
from cnnlab.data.audit import audit_dataset, near_duplicates
from cnnlab.data.demo import write_digits, write_shapes
from cnnlab.data.scan import scan_dataset
from cnnlab.data.split import make_split
from cnnlab.errors import DataError


def test_leakage_and_conflicts_named(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    write_folder(root / "train", classes=2, per_class=4)
    write_folder(root / "test", classes=2, per_class=2, seed=1)
    shutil.copy(root / "train/class_0/img_000.png", root / "test/class_0/leak.png")
    shutil.copy(root / "train/class_0/img_001.png", root / "train/class_1/conflict.png")
    scan = scan_dataset(root, progress=False)
    audit = audit_dataset(scan, make_split(scan, 0.0, 0.0, 0))
    assert audit["leakage"] == 1 and audit["label_conflicts"] == 1
    leak = {m["path"] for m in audit["leakage_groups"][0]}
    assert leak == {"train/class_0/img_000.png", "test/class_0/leak.png"}
    conflict = {m["label"] for m in audit["conflict_groups"][0]}
    assert conflict == {"class_0", "class_1"}


def test_near_duplicates() -> None:
    pairs = near_duplicates([0b1111, 0b1110, 1 << 40 | 0xFFFF, 0])
    assert (0, 1, 1) in pairs and all(i < j for i, j, _ in pairs)
    assert not any(2 in (i, j) for i, j, _ in pairs)


def test_inspect_cli_with_bad_files(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "ds", classes=2, per_class=5)
    expected = {}
    for name, (data, reason) in bad_files().items():
        (root / "class_1" / name).write_bytes(data)
        expected[f"class_1/{name}"] = reason
    shutil.copy(root / "class_0/img_000.png", root / "class_1/copy.png")
    before = folder_digest(root)
    out = tmp_path / "audit"
    result = CliRunner().invoke(app, ["inspect", str(root), "--out", str(out)])
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "data_report.json").read_text())
    assert {s["path"]: s["reason"] for s in doc["skipped"]} == expected
    for path, reason in expected.items():
        assert f"{path}: {reason}" in result.output
    assert doc["audit"]["label_conflicts"] == 1 and len(doc["audit"]["channel_mean"]) == 3
    assert doc["problems"] == [] and doc["ready_to_train"] is True
    html = (out / "audit.html").read_text()
    assert "data:image/png;base64," in html and "class_1/truncated.jpg" in html
    assert (out / "classes.png").is_file() and len(list((out / "samples").glob("*.png"))) == 2
    assert folder_digest(root) == before


def test_counts_per_split_of_a_flat_folder_in_inspect_and_a_run(tmp_path: Path) -> None:
    """docs/data.md lists counts_per_split; for a flat folder it was always {} (it held only
    splits given by folders or a manifest). It now counts the split as made, per class, the
    same in `data inspect` and in a run's report, and adds up to `splits`."""
    from cnnlab.config import load_config
    from cnnlab.engine.databundle import prepare_data

    root = write_folder(tmp_path / "ds", classes=3, per_class=10)
    before = folder_digest(root)
    out = tmp_path / "audit"
    result = CliRunner().invoke(app, ["inspect", str(root), "--out", str(out), "--no-near"])
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "data_report.json").read_text())
    per = doc["counts_per_split"]
    assert list(per) == ["train", "val", "test"] and all(
        list(c) == doc["classes"] for c in per.values()
    )
    assert {s: sum(c.values()) for s, c in per.items()} == doc["splits"]
    assert all(n >= 1 for c in per.values() for n in c.values())
    assert {c: sum(per[s][c] for s in per) for c in doc["classes"]} == doc["counts"]
    run_report = prepare_data(load_config(overrides=[f"data.root={root}"]).data, 32).report()
    assert run_report["counts_per_split"] == per and folder_digest(root) == before


def test_inspect_cli_errors_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["inspect", str(tmp_path / "missing")])
    assert result.exit_code == 2 and "not found" in result.output
    assert "Traceback" not in result.output


def test_help_has_examples() -> None:
    for cmd in ("inspect", "demo"):
        result = CliRunner().invoke(app, [cmd, "--help"])
        assert result.exit_code == 0 and "Example" in result.output


def test_demo_datasets(tmp_path: Path) -> None:
    root = write_digits(tmp_path / "digits")
    assert sorted(p.name for p in root.iterdir()) == [str(i) for i in range(10)]
    assert sum(1 for _ in root.rglob("*.png")) == 1797
    digest = folder_digest(root)
    assert write_digits(root) == root and folder_digest(root) == digest
    scan = scan_dataset(root, progress=False)
    assert not scan.skipped and set(scan.to_report()["image_stats"]["modes"]) == {"L"}
    shapes = write_shapes(tmp_path / "shapes", per_class=4, size=32)
    again = write_shapes(tmp_path / "shapes2", per_class=4, size=32)
    assert folder_digest(shapes) == folder_digest(again)
    result = CliRunner().invoke(app, ["demo", "shapes", str(tmp_path / "s3")])
    assert result.exit_code == 0 and len(list((tmp_path / "s3").rglob("*.png"))) == 300
    assert CliRunner().invoke(app, ["demo", "nope", str(tmp_path / "x")]).exit_code != 0


def test_demo_refuses_a_folder_holding_other_things(tmp_path: Path) -> None:
    """`data demo digits DIR` after `data demo shapes DIR` mixed 15 classes and exited 0; an
    unwritable DIR printed a traceback. The same demo again completes its own folder."""
    from cnnlab.errors import OutputError

    s3 = tmp_path / "s3"
    assert CliRunner().invoke(app, ["demo", "shapes", str(s3)]).exit_code == 0
    digest = folder_digest(s3)
    assert CliRunner().invoke(app, ["demo", "shapes", str(s3)]).exit_code == 0
    mixed = CliRunner().invoke(app, ["demo", "digits", str(s3)])
    assert isinstance(mixed.exception, OutputError), mixed.output
    assert "already holds circle, cross, square" in str(mixed.exception)
    assert folder_digest(s3) == digest
    blocked = CliRunner().invoke(app, ["demo", "digits", "/proc/cnnlab-demo"])
    assert isinstance(blocked.exception, OutputError), blocked.output


def _blocked_folder(root: Path) -> dict[str, str]:
    """A split-layout folder with one of every problem that stops training; kind -> class."""
    write_folder(root / "train", classes=2, per_class=6)
    write_folder(root / "test", classes=2, per_class=2, seed=1)
    (root / "train" / "empty").mkdir()
    (root / "train" / "empty" / "notes.txt").write_text("no pictures yet")
    write_bytes(root / "train" / "broken" / "a.jpg", b"")
    write_bytes(root / "train" / "broken" / "b.png", b"not a picture")
    write_bytes(root / "train" / "tiny" / "only.png", png_bytes(seed=3))
    write_bytes(root / "test" / "test only" / "x.png", png_bytes(seed=4))
    for name, (data, _) in bad_files().items():
        write_bytes(root / "train" / "class_0" / name, data)
    shutil.copy(root / "train/class_0/img_000.png", root / "test/class_0/leak.png")
    shutil.copy(root / "train/class_0/img_001.png", root / "train/class_1/conflict.png")
    return {
        "empty class": "empty",
        "unusable class": "broken",
        "small class": "tiny",
        "no training images": "test only",
    }


def test_inspect_reports_everything_and_exits_1_train_refuses(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    expected = _blocked_folder(root)
    before = folder_digest(root)
    out = tmp_path / "audit"
    result = CliRunner().invoke(app, ["inspect", str(root), "--out", str(out), "--no-near"])
    assert result.exit_code == 1, result.output
    doc = json.loads((out / "data_report.json").read_text(encoding="utf-8"))
    found = {p["kind"]: p for p in doc["problems"]}
    assert set(found) == set(expected) and all(p["blocking"] for p in found.values())
    for kind, label in expected.items():
        assert f"'{label}'" in found[kind]["message"]
    assert doc["ready_to_train"] is False
    assert len(doc["skipped"]) == len(bad_files()) + 2
    leaks = [{m["path"] for m in g} for g in doc["audit"]["leakage_groups"]]
    assert {"train/class_0/img_000.png", "test/class_0/leak.png"} in leaks
    assert doc["audit"]["label_conflicts"] == 1
    html = (out / "audit.html").read_text(encoding="utf-8")
    for label in expected.values():
        assert label in html
    assert not (out / "audit.json").exists()
    runs = tmp_path / "runs"
    with pytest.raises(DataError) as info:
        cnnlab.train(root, runs_dir=runs, epochs=1)
    message = str(info.value)
    assert "\n" not in message and "4 problems stop training" in message
    assert all(f"'{label}'" in message for label in expected.values())
    assert not runs.exists()
    assert folder_digest(root) == before


def test_inspect_clean_folder_exits_0_and_default_out_is_outside(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = write_messy_folder(tmp_path / "photos")
    before = folder_digest(root)
    monkeypatch.chdir(root)
    result = CliRunner().invoke(app, ["inspect", ".", "--no-near"])
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "data_audit/photos/data_report.json").read_text("utf-8"))
    assert doc["ready_to_train"] is True and doc["root"] == "photos"
    assert doc["audit"]["exact_duplicates"] == 2 and doc["audit"]["label_conflicts"] == 1
    assert str(tmp_path) not in json.dumps(doc, ensure_ascii=False)
    inside = CliRunner().invoke(app, ["inspect", ".", "--out", "tiny/audit"])
    assert inside.exit_code == 2 and "inside the dataset folder" in inside.output
    assert folder_digest(root) == before


def test_inspect_prints_a_few_problems_of_each_kind_and_counts_the_rest(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "ds", classes=2, per_class=4)
    rows = ["path,label"] + [f"class_{c}/img_{i:03d}.png,c{c}" for c in range(2) for i in range(4)]
    rows += [f"../other/{i}.png,c0" for i in range(12)]  # twelve rows leaving the folder
    (root / "m.csv").write_text("\n".join(rows) + "\n")
    result = CliRunner().invoke(app, ["inspect", str(root / "m.csv"), "--out", str(tmp_path / "a")])
    assert result.exit_code == 1, result.output  # they would stop training
    text = " ".join(result.output.split())
    assert text.count("outside path: ") == 6  # five rows, then the count of the rest
    assert "outside path: 7 more like these (12 in all), listed in data_report.json" in text
    doc = json.loads((tmp_path / "a" / "data_report.json").read_text("utf-8"))
    assert sum(p["kind"] == "outside path" for p in doc["problems"]) == 12


def test_audit_html_reads_as_words_and_empty_sections_say_none(tmp_path: Path) -> None:
    """audit.html showed Python reprs (`split {'train': 77, ...}`, `modes: {'RGB': 128}`,
    `unsupported: {}`) and an empty table header under "Skipped files (0)" and "Near
    duplicates (0)" where other empty sections said "none"."""
    import re

    import numpy as np
    from PIL import Image

    root, rng = tmp_path / "ds", np.random.default_rng(0)
    for name in ("gato", "perro ñ"):  # noise: no two images alike, so no near duplicates
        (root / name).mkdir(parents=True)
        for i in range(6):
            pixels = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"img {i}.png")
    (root / "gato" / "notes.svg").write_text("<svg/>")
    before = folder_digest(root)
    out = tmp_path / "audit"
    result = CliRunner().invoke(app, ["inspect", str(root), "--out", str(out)])
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "data_report.json").read_text())
    page = re.sub(r"<img[^>]*>", "", (out / "audit.html").read_text(encoding="utf-8"))
    assert "{" not in page.split("</style>")[1] and "&#x27;" not in page  # no dict reprs
    splits = ", ".join(f"{k} {v}" for k, v in doc["splits"].items())
    assert f"split: {splits}</p>" in page and "modes: RGB 12</p>" in page
    assert "unsupported: 1 .svg</p>" in page and "[0." not in page  # channel mean as numbers
    for empty in ("Skipped files (0)", "Near duplicates (0)", "Leakage across splits (0)"):
        assert f"<h2>{empty}</h2><p>none</p>" in page, empty
    assert folder_digest(root) == before
