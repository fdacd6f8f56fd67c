"""The Data page through AppTest on a dataset with bad files, duplicates and conflicts."""

from __future__ import annotations

import csv
import io
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


@pytest.mark.slow  # cross-validated features of 37 images: ~20 s on a busy 2-core machine
def test_issues_button_finds_label_issues_outside_the_dataset(
    messy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "where the app started"
    work.mkdir()
    monkeypatch.chdir(work)  # `data issues` writes data_issues/<name> here, as the CLI does
    monkeypatch.setenv("CNNLAB_CACHE", str(tmp_path / "cache"))
    before = folder_digest(messy)
    at = open_page("data")
    at.button[0].click().run(timeout=300)
    assert not at.exception and not at.error
    assert folder_digest(messy) == before  # read-only: nothing written into the dataset
    out = work / "data_issues" / "messy data"
    issues = (out / "issues.csv").read_text(encoding="utf-8")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Near duplicates"] == str(issues.count("near_duplicate,"))
    assert int(metrics["Near duplicates"]) >= 1  # copy.png is img_000.png in another class
    shown = [p for df in at.dataframe if "kind" in df.value for p in df.value["path"]]
    listed = [r["path"] for r in csv.DictReader(io.StringIO(issues))]
    assert sorted(shown) == sorted(listed) and listed
    assert {b.label for b in at.get("download_button")} >= {"Download issues.csv"}
    assert "data_issues/messy data" in page_text(at) and str(tmp_path) not in page_text(at)

    files = at.session_state["issues"]["messy data"]["files"]  # what the buttons download
    for data in files.values():
        assert str(tmp_path).encode() not in data  # no server path in any download
    clean = list(csv.DictReader(io.StringIO(files["clean_csv"].decode("utf-8"))))
    assert {r["root"] for r in clean} == {"messy data"}
    saved = tmp_path / "clean.csv"  # the download saved beside the dataset folder trains
    saved.write_bytes(files["clean_csv"])
    from cnnlab.data.issues_index import manifest_root

    assert manifest_root(saved) == messy.resolve()


def test_folders_of_cnnlab_outputs_are_not_offered_as_datasets(
    messy: Path, app_runs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`cnnlab app data studies` (docs/app.md's form) used to list `studies` as a dataset of
    its plots' PNGs. A runs folder, a folder of studies, a run: named as such, not offered."""
    from cnnlab.app.datasets import dataset_choices, output_kind

    studies = tmp_path / "studies"
    (studies / "s1" / "plots").mkdir(parents=True)
    (studies / "s1" / "study.yaml").write_text("format: cnnlab-study/1\n", encoding="utf-8")
    shutil.copyfile(messy / "class_0" / "img_000.png", studies / "s1" / "plots" / "acc.png")
    run = app_runs / "cnn-s0"
    assert output_kind(messy) is None and output_kind(run) == "run"
    assert output_kind(app_runs) == "folder of runs"
    assert output_kind(studies) == "folder of studies"
    settings = AppSettings(runs_dir=app_runs, folders=(messy, studies, app_runs, run))
    assert list(dataset_choices(settings)) == ["messy data"]

    for key, value in settings.to_env().items():
        monkeypatch.setenv(key, value)
    at = open_page("data")
    assert at.selectbox[0].options == ["messy data"]
    assert "studies (folder of studies), runs (folder of runs), cnn-s0 (run)" in page_text(at)


@pytest.mark.slow  # cross-validated features of 24 images
def test_issues_of_a_model_at_chance_are_shown_as_not_evidence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two classes of pure noise: the page says what `data issues` says on the terminal (the
    flags are not evidence, clean.csv is not recommended) instead of offering it plainly."""
    import numpy as np
    from PIL import Image

    root = tmp_path / "noise"
    rng = np.random.default_rng(0)
    for i in range(24):
        folder = root / ("a" if i % 2 else "b")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    for key, value in AppSettings(runs_dir=tmp_path / "runs", folders=(root,)).to_env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CNNLAB_CACHE", str(tmp_path / "cache"))
    before = folder_digest(root)
    at = open_page("data")
    at.button[0].click().run(timeout=300)
    assert not at.exception and not at.error
    found = at.session_state["issues"]["noise"]
    assert not found["recommend_clean"]
    assert "out-of-sample model: accuracy" in page_text(at)
    assert any("cannot be judged" in w.value for w in at.warning)
    labels = {b.label for b in at.get("download_button")}
    assert "Download clean.csv (not recommended)" in labels
    assert folder_digest(root) == before
