"""The Data page through AppTest on a dataset with bad files, duplicates and conflicts."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from tests.app.conftest import UNICODE_CLASS, make_dataset, open_page, page_text
from tests.conftest import folder_digest

from cnnlab.app.settings import AppSettings


@pytest.fixture
def messy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """3 classes; a text file named .png, one image copied into another class."""
    root = make_dataset(tmp_path / "messy data")
    (root / "class_0" / "notes.png").write_text("not a picture")
    shutil.copyfile(root / "class_0" / "img_000.png", root / "class_1" / "copy.png")
    settings = AppSettings(runs_dir=tmp_path / "runs", folders=(root,))
    for key, value in settings.to_env().items():
        monkeypatch.setenv(key, value)
    return root


def test_data_page_finds_bad_files_duplicates_and_conflicts(messy: Path) -> None:
    before = folder_digest(messy)
    at = open_page("data")
    assert at.selectbox[0].options == ["messy data"]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["images"] == "37" and metrics["classes"] == "3" and metrics["bad files"] == "1"
    bad = at.dataframe[0].value
    assert list(bad["path"]) == ["class_0/notes.png"]
    text = page_text(at)
    captions = [c for image in at.get("image") for c in image.captions]
    assert sorted(captions) == sorted(["class_0", "class_1", UNICODE_CLASS])
    groups = " ".join(str(v) for df in at.dataframe[1:] for v in df.value.iloc[:, 0])
    assert "class_1/copy.png" in groups and "class_0/img_000.png" in groups
    assert str(messy.parent) not in text
    at.toggle[0].set_value(True).run()  # near duplicates
    assert not at.exception
    assert "Near duplicates" in page_text(at)
    assert folder_digest(messy) == before


def test_no_folders_says_how_to_give_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CNNLAB_APP_RUNS_DIR", str(tmp_path))
    monkeypatch.setenv("CNNLAB_APP_FOLDERS", "")
    at = open_page("data")
    assert "cnnlab app DATA_FOLDER" in at.info[0].value
