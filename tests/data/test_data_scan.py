"""Scanning folders and manifests (RELIABILITY 1-8, 11, 12, 16): outcome + folder untouched."""

from __future__ import annotations

import json
import os
import unicodedata
from pathlib import Path

import pytest
from PIL import Image
from tests.conftest import folder_digest, write_folder
from tests.data.data_badfiles import bad_files, jpeg_bytes, png_bytes, write_bytes

from cnnlab.data.scan import print_scan_summary, scan_dataset
from cnnlab.errors import DataError
from cnnlab.paths import cache_dir


def _readonly(root: Path) -> dict[str, str]:
    for dirpath, _, _ in os.walk(root):
        os.chmod(dirpath, 0o555)
    return folder_digest(root)


def _scan(root: Path, **kw):
    before = _readonly(root) if root.is_dir() else None
    result = scan_dataset(root, progress=False, **kw)
    if before is not None:
        assert folder_digest(root) == before
    return result


def test_every_bad_file_is_skipped_with_reason(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "ds", classes=2, per_class=4)
    expected = {}
    for name, (data, reason) in bad_files().items():
        (root / "class_0" / name).write_bytes(data)
        expected[f"class_0/{name}"] = reason
    Path(root / "class_1" / "tiny.png").write_bytes(png_bytes(2))
    expected["class_1/tiny.png"] = "too small"
    scan = _scan(root)
    assert {s.path: s.reason for s in scan.skipped} == expected
    assert len(scan.records) == 8
    report = scan.to_report()
    assert {d["path"] for d in report["skipped"]} == set(expected)
    json.dumps(report)
    print_scan_summary(scan)


def test_junk_and_hidden_are_ignored(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "ds", classes=2, per_class=3)
    for junk in [".DS_Store", "._img_000.png", "Thumbs.db", "desktop.ini"]:
        (root / "class_0" / junk).write_bytes(b"junk")
    for hidden in [".ipynb_checkpoints", ".git", "__MACOSX"]:
        (root / hidden).mkdir()
        (root / hidden / "x.png").write_bytes(png_bytes())
    (root / "class_1" / ".hidden").mkdir()
    (root / "class_1" / ".hidden" / "y.png").write_bytes(png_bytes())
    scan = _scan(root)
    assert scan.classes == ["class_0", "class_1"]
    assert len(scan.records) == 6 and not scan.skipped
    assert scan.ignored == 8 and not scan.unsupported


def test_extensions_by_content_and_unsupported(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "ds", classes=2, per_class=2)
    (root / "class_0" / "upper.JPG").write_bytes(jpeg_bytes())
    (root / "class_0" / "png_named.jpg").write_bytes(png_bytes())
    (root / "class_0" / "a.svg").write_bytes(b"<svg/>")
    (root / "class_1" / "b.heic").write_bytes(b"x")
    (root / "class_1" / "c.heic").write_bytes(b"x")
    (root / "class_1" / "README").write_bytes(b"x")
    frames = [Image.new("RGB", (16, 16), c) for c in [(0, 0, 255), (255, 0, 0)]]
    frames[0].save(root / "class_1" / "anim.GIF", save_all=True, append_images=frames[1:])
    scan = _scan(root)
    assert len(scan.records) == 7  # the animated GIF is an image (its first frame)
    assert scan.unsupported == {".svg": 1, ".heic": 2, "(none)": 1}


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing", "not found"),
        ("file", "is a file"),
        ("loose", "no class folders"),
        ("empty_class", "class folder 'b' has no image"),
        ("all_bad", "class 'b'"),
        ("nothing", "no class folders"),
    ],
)
def test_layout_errors(tmp_path: Path, case: str, message: str) -> None:
    root = tmp_path / "ds"
    if case == "file":
        root.write_bytes(png_bytes())
    elif case == "loose":
        root.mkdir()
        (root / "a.png").write_bytes(png_bytes())
    elif case in ("empty_class", "all_bad"):
        write_folder(root, classes=1, per_class=3)
        (root / "b").mkdir()
        (root / "b" / "notes.txt").write_text("x")
        if case == "all_bad":
            (root / "b" / "x.jpg").write_bytes(b"")
    elif case == "nothing":
        root.mkdir()
    before = folder_digest(root) if root.is_dir() else None
    with pytest.raises(DataError, match=message) as info:
        scan_dataset(root, progress=False)
    assert "\n" not in str(info.value)
    assert str(root) in str(info.value)
    if before is not None:
        assert folder_digest(root) == before


def test_split_layout(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    write_folder(root / "train", classes=2, per_class=5)
    write_folder(root / "Valid", classes=2, per_class=2, seed=1)
    write_folder(root / "test", classes=2, per_class=2, seed=2)
    scan = _scan(root)
    assert scan.layout == "split"
    assert {r.split for r in scan.records} == {"train", "val", "test"}
    val = sorted(r.label for r in scan.records if r.split == "val")
    assert val == ["class_0", "class_0", "class_1", "class_1"]


def test_mixed_split_and_class_folders_error(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "ds", classes=2, per_class=2)
    write_folder(root / "train", classes=2, per_class=2)
    with pytest.raises(DataError, match="mixes split folders"):
        scan_dataset(root, progress=False)


def test_csv_manifest(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "ds", classes=2, per_class=3)
    rows = ["path,label,split"] + [
        f"class_{c}/img_{i:03d}.png,c{c},{'train' if i else 'test'}"
        for c in range(2)
        for i in range(3)
    ]
    rows.append("class_0/gone.png,c0,train")
    (root / "m.csv").write_text("\n".join(rows) + "\n")
    scan = _scan(root / "m.csv")
    assert scan.layout == "csv" and scan.classes == ["c0", "c1"]
    assert len(scan.records) == 6
    assert [(s.path, s.reason) for s in scan.skipped] == [("class_0/gone.png", "missing")]
    (root / "bad.csv").write_text("file,class\nx.png,a\n")
    with pytest.raises(DataError, match="header"):
        scan_dataset(root / "bad.csv", progress=False)


def test_unicode_nfc_nfd_one_class(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    name = "café 猫 🐱"
    write_folder(root, classes=1, per_class=2)
    for i, form in enumerate(["NFC", "NFD"]):
        folder = root / unicodedata.normalize(form, name)
        folder.mkdir(exist_ok=True)
        (folder / f"{i}.png").write_bytes(png_bytes(seed=i))
    scan = _scan(root)
    folders = {p.name for p in root.iterdir()}
    assert len(folders) in (2, 3)  # a filesystem may fold NFC/NFD itself
    assert scan.classes == sorted(["class_0", unicodedata.normalize("NFC", name)])
    assert sum(r.label == unicodedata.normalize("NFC", name) for r in scan.records) == 2


def test_symlink_loops_and_outside_links(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "ds", classes=2, per_class=3)
    outside = tmp_path / "outside.png"
    outside.write_bytes(png_bytes())
    os.symlink(root, root / "class_0" / "loop")
    os.symlink(root / "class_0", root / "class_1" / "to_class0")
    os.symlink(outside, root / "class_1" / "out.png")
    os.symlink(root / "class_0" / "img_000.png", root / "class_1" / "dup.png")
    scan = _scan(root)
    paths = [r.path for r in scan.records]
    assert len(paths) == 6 == len(set(paths))
    assert {r.label for r in scan.records if r.path.startswith("class_0/")} == {"class_0"}
    reasons = {s.path: s.reason for s in scan.skipped}
    assert reasons["class_1/out.png"] == "link outside dataset"
    assert "class_1/dup.png" in reasons


def test_cache_reuse_and_invalidation(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "ds", classes=2, per_class=3)
    target = root / "class_0" / "img_000.png"
    first = scan_dataset(root, progress=False)
    assert first.from_cache == 0
    second = scan_dataset(root, progress=False)
    assert second.from_cache == 6 and second.records == first.records
    data = bytearray(target.read_bytes())
    data[-30:] = b"\0" * 30  # same size, other bytes: now a broken PNG
    st = target.stat()
    target.write_bytes(bytes(data))
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    third = scan_dataset(root, progress=False)
    assert third.from_cache == 5
    assert [s.path for s in third.skipped] == ["class_0/img_000.png"]


def test_corrupt_cache_is_rebuilt_readonly_folder(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "ds", classes=2, per_class=3)
    before = _readonly(root)
    scan_dataset(root, progress=False)
    for f in cache_dir("scan").glob("*.json"):
        f.write_text("{not json")
    again = scan_dataset(root, progress=False)
    assert again.from_cache == 0 and len(again.records) == 6
    assert scan_dataset(root, progress=False).from_cache == 6
    assert folder_digest(root) == before


@pytest.mark.slow
def test_parallel_scan_matches_serial(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "ds", classes=2, per_class=150, size=16)
    (root / "class_0" / "bad.jpg").write_bytes(b"xx")
    par = scan_dataset(root, progress=False, workers=2)
    for f in cache_dir("scan").glob("*.json"):
        f.unlink()
    ser = scan_dataset(root, progress=False, workers=1)
    assert par.records == ser.records and par.skipped == ser.skipped


def test_folder_link_into_another_class_is_skipped_not_relabelled(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "ds", classes=2, per_class=3)
    for i in range(2):
        write_bytes(root / "class_1" / "sub" / f"s{i}.png", png_bytes(seed=10 + i))
    os.symlink("../class_1/sub", root / "class_0" / "shortcut")
    os.symlink("../class_1/img_000.png", root / "class_0" / "alias.png")
    scan = _scan(root)
    labels = {r.path: r.label for r in scan.records}
    assert labels["class_1/sub/s0.png"] == labels["class_1/sub/s1.png"] == "class_1"
    assert not any(p.startswith("class_0/shortcut") for p in labels)
    reasons = {s.path: s.reason for s in scan.skipped}
    assert reasons["class_0/shortcut"] == "link into another class"
    assert reasons["class_0/alias.png"] == "link into another class"
    assert sum(r.label == "class_0" for r in scan.records) == 3


def test_manifest_paths_outside_its_folder_are_refused_unless_allowed(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "ds", classes=2, per_class=3)
    write_bytes(tmp_path / "elsewhere.png", png_bytes(seed=5))
    write_bytes(tmp_path / "other.png", png_bytes(seed=6))  # two files: one file twice is refused
    rows = ["path,label"] + [f"class_{c}/img_{i:03d}.png,c{c}" for c in range(2) for i in range(3)]
    rows += ["../elsewhere.png,c0", f"{tmp_path / 'other.png'},c1"]
    (root / "m.csv").write_text("\n".join(rows) + "\n")
    scan = _scan(root / "m.csv", strict=False)
    refused = [p for p in scan.problems if p.kind == "outside path"]
    assert len(refused) == 2 and all(p.blocking for p in refused)
    assert "data.allow_outside_paths=true" in refused[0].message
    assert len(scan.records) == 6
    with pytest.raises(DataError, match="2 problems stop training"):
        scan_dataset(root / "m.csv", progress=False)
    allowed = scan_dataset(root / "m.csv", progress=False, allow_outside_paths=True)
    assert len(allowed.records) == 8 and not allowed.problems


def test_eps_named_png_is_not_an_image_and_size_cap(tmp_path: Path) -> None:
    from PIL import Image

    root = write_folder(tmp_path / "ds", classes=2, per_class=3)
    Image.new("RGB", (32, 32), (200, 10, 10)).save(root / "class_0" / "poster.png", "EPS")
    assert (root / "class_0" / "poster.png").read_bytes().startswith(b"%!PS")
    big = root / "class_1" / "big.png"
    big.write_bytes(png_bytes(size=256))
    scan = _scan(root, max_bytes=50_000)
    reasons = {s.path: s.reason for s in scan.skipped}
    assert reasons == {"class_0/poster.png": "not an image", "class_1/big.png": "too large"}


def test_split_folder_linked_to_another_split_is_skipped(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    write_folder(root / "train", classes=2, per_class=3)
    os.symlink("train", root / "test")  # test/ would be train/ again: leakage by a link
    scan = _scan(root)
    assert {r.split for r in scan.records} == {"train"} and len(scan.records) == 6
    reasons = {s.path: s.reason for s in scan.skipped}
    assert reasons == {f"test/class_{c}": "link into another split" for c in range(2)}
    assert not scan.problems


def test_manifest_absolute_paths_inside_its_folder_are_the_same_files(tmp_path: Path) -> None:
    """Scripts often write absolute paths: inside the manifest's folder they are accepted, as
    written or through a link to the folder, and name the same file as the relative path."""
    root = write_folder(tmp_path / "ds", classes=2, per_class=3)
    os.symlink(root, tmp_path / "via-link")
    rows = ["path,label"]
    rows += [f"{root}/class_0/img_{i:03d}.png,c0" for i in range(3)]
    rows += [f"{tmp_path / 'via-link'}/class_1/img_{i:03d}.png,c1" for i in range(3)]
    rows += ["class_0/img_000.png,c0"]  # the same file as the first row
    (root / "m.csv").write_text("\n".join(rows) + "\n")
    scan = _scan(root / "m.csv", strict=False)
    assert not [p for p in scan.problems if p.kind == "outside path"]
    assert sorted(r.path for r in scan.records) == [
        f"class_{c}/img_{i:03d}.png" for c in range(2) for i in range(3)
    ]
    (twice,) = scan.problems
    assert twice.kind == "manifest row"
    assert "line 8: 'class_0/img_000.png' is listed twice (line 2 too); keep" in twice.message
    # the same file under another label: both labels are named
    (root / "m.csv").write_text("\n".join([*rows[:-1], "class_0/img_000.png,c1"]) + "\n")
    (twice,) = _scan(root / "m.csv", strict=False).problems
    assert "listed twice (line 2 too as 'c0' and 'c1')" in twice.message


def test_manifest_rows_reaching_one_file_by_two_paths_are_refused(tmp_path: Path) -> None:
    """A link inside the dataset gave one image two rows (two samples, here two labels: it
    could be in train and in test at once); a row naming a folder was counted as an
    unsupported file. Both are now manifest-row problems that name the lines."""
    root = write_folder(tmp_path / "ds", classes=2, per_class=3)
    os.symlink("class_0", root / "alias")
    rows = ["path,label", "class_0/img_000.png,a", "alias/img_000.png,b", "class_1,a"]
    rows += [f"class_{c}/img_{i:03d}.png,{'ab'[c]}" for c in range(2) for i in (1, 2)]
    (root / "m.csv").write_text("\n".join(rows) + "\n")
    before = folder_digest(root)
    scan = _scan(root / "m.csv", strict=False)
    messages = sorted(p.message for p in scan.problems if p.kind == "manifest row")
    assert len(messages) == 2, messages
    assert any("'alias/img_000.png' is the same file as 'class_0/img_000.png' (line 2 as 'a' "
               "and 'b')" in m for m in messages)  # fmt: skip
    assert any("line 4: 'class_1' is a folder" in m for m in messages)
    assert sum(r.path.endswith("img_000.png") for r in scan.records) == 1
    assert folder_digest(root) == before


def test_a_manifest_in_the_wrong_encoding_or_separator_says_how_to_fix_it(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "ds", classes=2, per_class=3)
    latin = root / "latin.csv"
    latin.write_bytes("path,label\nclass_0/img_000.png,caf\u00e9\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"line 2 is not UTF-8 \(byte 0xe9\); save the manifest"):
        scan_dataset(latin, progress=False)
    semi = root / "semi.csv"
    semi.write_text("path;label\nclass_0/img_000.png;a\n", encoding="utf-8")
    with pytest.raises(DataError, match="separated by ';'"):
        scan_dataset(semi, progress=False)


@pytest.mark.parametrize("where", ["class_0", "."])
def test_links_that_loop_on_themselves_are_skipped(tmp_path: Path, where: str) -> None:
    """A link to itself or a chain of links back to itself (files and folders, in a class
    folder or at the root) is a counted ``link loop`` skip; the walk used to raise ELOOP."""
    root = write_folder(tmp_path / "ds", classes=2, per_class=3)
    folder = root / where
    os.symlink("self.png", folder / "self.png")  # ln -s self.png self.png
    os.symlink("b.png", folder / "a.png")  # a.png -> b.png -> a.png
    os.symlink("a.png", folder / "b.png")
    os.symlink("cx", folder / "cx")  # a folder name linked to itself
    scan = _scan(root)
    prefix = "" if where == "." else f"{where}/"
    reasons = {s.path: s.reason for s in scan.skipped}
    for name in ("self.png", "a.png", "b.png", "cx"):
        assert reasons[prefix + name] == "link loop"
    assert len(scan.records) == 6 and scan.classes == ["class_0", "class_1"]
