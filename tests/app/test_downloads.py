"""Downloads carry no server path: the dataset folder is named by its name."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from cnnlab.app.downloads import clean_csv, hide_folder


def test_a_folder_path_becomes_its_name(tmp_path: Path) -> None:
    root = tmp_path / "my data & more"
    root.mkdir()
    text = f"<p>37 images of {root}, files {root}/cat/1.png; {root}</p>".replace("&", "&amp;")
    shown = hide_folder(text.encode(), root).decode()
    assert shown == "<p>37 images of my data &amp; more, files my data &amp; more/cat/1.png; " \
        "my data &amp; more</p>"  # fmt: skip
    assert hide_folder(b"data/flowers stays", "data/flowers") == b"data/flowers stays"


def test_clean_csv_names_its_root_folder_only(tmp_path: Path) -> None:
    root = tmp_path / "digits"
    written = f'path,label,split,root\n"a, b.png",cat,train,{root}\nc.png,dog,test,{root}\n'
    rows = list(csv.reader(io.StringIO(clean_csv(written.encode()).decode())))
    assert rows == [["path", "label", "split", "root"], ["a, b.png", "cat", "train", "digits"],
                    ["c.png", "dog", "test", "digits"]]  # fmt: skip
