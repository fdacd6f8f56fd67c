"""Splits: stratified, seeded, stable when images are added, reused (RELIABILITY 5, 26, 27)."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import pytest
from tests.conftest import folder_digest, write_folder

from cnnlab.data.scan import scan_dataset
from cnnlab.data.split import load_split, make_split, save_split
from cnnlab.errors import DataError


def _split(root: Path, seed: int = 0, **kw):
    """Scan and split ``root``, proving the folder is byte-identical afterwards."""
    before = folder_digest(root)
    split = make_split(
        scan_dataset(root, progress=False), kw.pop("val", 0.2), kw.pop("test", 0.2), seed, **kw
    )
    assert folder_digest(root) == before
    return split


def test_same_seed_same_split_other_seed_differs(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "ds", classes=3, per_class=20, size=8)
    a, b, c = _split(root), _split(root), _split(root, seed=1)
    assert a.samples == b.samples and a.samples != c.samples


def test_stratified_every_class_in_every_split(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "ds", classes=4, per_class=30, size=8)
    counts = _split(root).counts()
    for split in ("train", "val", "test"):
        assert all(n >= 1 for n in counts[split].values())
    assert all(12 <= n <= 26 for n in counts["train"].values())


def test_adding_images_moves_nothing(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "ds", classes=2, per_class=40, size=8)
    before = {s.path: s.split for s in _split(root).samples}
    write_folder(tmp_path / "more", classes=2, per_class=15, size=8, seed=5)
    for f in (tmp_path / "more").rglob("*.png"):
        f.rename(root / f.parent.name / f"new_{f.name}")
    after = {s.path: s.split for s in _split(root).samples}
    assert len(after) == 110
    assert {p: after[p] for p in before} == before


def test_tiny_class_fixup_and_errors(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "ds", classes=3, per_class=3, size=8)
    counts = _split(root).counts()
    assert all(counts[s][c] == 1 for s in counts for c in counts[s])
    small = write_folder(tmp_path / "small", classes=2, per_class=6, size=8)
    for f in list((small / "class_1").iterdir())[2:]:
        f.unlink()
    digest = folder_digest(small)
    with pytest.raises(DataError, match="class 'class_1' has 2"):
        _split(small)
    kept = _split(small, drop_small_classes=True)
    assert kept.classes == ["class_0"] and kept.dropped == ["class_1"]
    assert {s.label for s in kept.samples} == {0}
    assert folder_digest(small) == digest


def test_explicit_splits_kept_and_val_carved(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    write_folder(root / "train", classes=2, per_class=20, size=8)
    write_folder(root / "test", classes=2, per_class=4, size=8, seed=1)
    split = _split(root)
    by_path = {s.path: s.split for s in split.samples}
    assert all(v == "test" for p, v in by_path.items() if p.startswith("test/"))
    assert {v for p, v in by_path.items() if p.startswith("train/")} == {"train", "val"}


def test_a_manifest_class_without_training_rows_is_told_to_fix_the_split_column(
    tmp_path: Path,
) -> None:
    """A CSV manifest has no train/ folder to add images to: the remedy is its split column."""
    root = write_folder(tmp_path / "shop", classes=2, per_class=6, size=8)
    rows = ["path,label,split"]
    for i, f in enumerate(sorted(root.rglob("*.png"))):
        split = "test" if f.parent.name == "class_1" else ("train", "val", "test")[i % 3]
        rows.append(f"{f.relative_to(root).as_posix()},{f.parent.name},{split}")
    manifest = root / "labels with space.csv"
    manifest.write_text("\n".join(rows) + "\n", encoding="utf-8")
    before = folder_digest(root)
    with pytest.raises(DataError) as info:
        _split(manifest)
    assert folder_digest(root) == before
    message = str(info.value)
    assert "class 'class_1' has no training images" in message
    assert "set split=train on some of its rows in labels with space.csv" in message
    assert "train/" not in message
    folders = tmp_path / "folders"
    write_folder(folders / "train", classes=1, per_class=6, size=8)
    write_folder(folders / "test", classes=2, per_class=2, size=8, seed=1)
    with pytest.raises(DataError, match=r"class 'class_1' has no training images; add some to"):
        _split(folders)


def test_save_and_load_split(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "ds", classes=2, per_class=10, size=8)
    split = _split(root)
    path = save_split(split, tmp_path / "run" / "split.csv")
    assert path.read_text().splitlines()[0] == "path,label,split,sha1"
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    # the scan's digest of each file's bytes, so eval can tell an image rewritten in place
    assert all(r["sha1"] == hashlib.sha1((root / r["path"]).read_bytes()).hexdigest() for r in rows)
    write_folder(tmp_path / "more", classes=1, per_class=2, size=8, seed=3)
    for f in (tmp_path / "more" / "class_0").iterdir():
        f.rename(root / "class_0" / f"new_{f.name}")
    again = load_split(path, scan_dataset(root, progress=False))
    assert again.samples == split.samples and again.classes == split.classes
    assert again.new_files == 2
    # a split.csv written before the sha1 column is still a split; its samples take the
    # digests of the scan that reuses it
    old = tmp_path / "old.csv"
    lines = ["path,label,split", *(f"{r['path']},{r['label']},{r['split']}" for r in rows)]
    old.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert load_split(old, scan_dataset(root, progress=False)).samples == split.samples
    (root / "class_1" / "img_000.png").unlink()
    with pytest.raises(DataError, match=r"class_1/img_000\.png"):
        load_split(path, scan_dataset(root, progress=False))


def test_a_file_rewritten_since_the_split_was_made_is_named(tmp_path: Path, capsys) -> None:
    """A study's runs reuse one split.csv; an image rewritten in place between them means the
    cells were not compared on the same images: the reuse says so, naming the file."""
    from PIL import Image

    root = write_folder(tmp_path / "ds", classes=2, per_class=10, size=8)
    path = save_split(_split(root), tmp_path / "run" / "split.csv")
    load_split(path, scan_dataset(root, progress=False))
    assert "changed since the split was made" not in capsys.readouterr().err
    Image.new("RGB", (8, 8), (255, 0, 0)).save(root / "class_0" / "img_003.png")
    again = load_split(path, scan_dataset(root, progress=False))
    err = " ".join(capsys.readouterr().err.split())
    assert "1 file(s) changed since the split was made" in err and "class_0/img_003.png" in err
    assert len(again.samples) == 20  # still the same split: the rewritten image is used as is


def test_fractions_too_large(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "ds", classes=2, per_class=5, size=8)
    with pytest.raises(DataError, match="nothing to train"):
        _split(root, val=0.5, test=0.5)


@pytest.mark.parametrize("seed", range(6))
def test_adding_images_one_by_one_to_tiny_classes_moves_nothing(tmp_path: Path, seed: int) -> None:
    """Classes of 3..10 images, one image added at a time: no image ever changes split, and
    every class keeps an image in every split (the small-class fix-up is remembered)."""
    root, pool = tmp_path / "ds", tmp_path / "pool"
    write_folder(pool, classes=2, per_class=10, size=8, seed=seed)
    for c in range(2):
        (root / f"class_{c}").mkdir(parents=True)
    history: dict[str, str] = {}
    for n in range(3, 11):
        for c in range(2):
            for i in range(n):
                target = root / f"class_{c}" / f"img_{i:03d}.png"
                if not target.exists():
                    target.write_bytes((pool / f"class_{c}" / target.name).read_bytes())
        digest = folder_digest(root)
        split = _split(root, seed=seed, val=0.15, test=0.15)
        assert folder_digest(root) == digest
        now = {s.path: s.split for s in split.samples}
        assert {p: now[p] for p in history} == history, f"moved at {n} images per class"
        counts = split.counts()
        assert all(counts[s][c] >= 1 for s in counts for c in counts[s])
        history = now
