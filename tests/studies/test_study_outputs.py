"""Where a study or a tune writes: never inside the user's dataset (explore_d finding A)."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import folder_digest, write_folder
from tests.studies.conftest import TINY, cli


def _one_error_line(done) -> str:
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), done.stderr
    return lines[0]


def _study(data: Path, out: Path) -> list[str]:
    return ["study", str(data), "--vary", "train.lr=1e-3,1e-2", "--seeds", "1",
            "--out", str(out), "--track", "none", *TINY]  # fmt: skip


def test_study_and_tune_refuse_an_out_folder_inside_the_dataset(tmp_path: Path) -> None:
    """``study --out DATA/sub`` wrote study.yaml into the dataset, then failed on "class folder
    'sub' has no image files" and left the folder, breaking every later scan of the dataset;
    ``tune --out DATA/x`` failed the same misleading way. Both are now refused before any
    work, by the check train applies to --runs-dir, through a link to the dataset too."""
    data = write_folder(tmp_path / "my data", classes=2, per_class=6)
    (tmp_path / "link").symlink_to(data, target_is_directory=True)
    before = folder_digest(data)
    for out in (data / "sub", data / "class_0" / "deep" / "st", tmp_path / "link" / "sub"):
        line = _one_error_line(cli(*_study(data, out)))
        assert "--out" in line and "inside the dataset folder" in line, line
        tune = ["tune", str(data), "--trials", "1", "--epochs", "1", "--out", str(out)]
        line = _one_error_line(cli(*tune, "--track", "none", *TINY[:1]))
        assert "--out" in line and "inside the dataset folder" in line, line
    assert folder_digest(data) == before
    assert sorted(p.name for p in data.iterdir()) == ["class_0", "class_1"]


def test_a_default_study_or_tune_folder_moves_beside_the_dataset(
    tmp_path: Path, monkeypatch
) -> None:
    """Run from inside the dataset, the default ``studies/…`` and ``tunes/…`` go beside it."""
    from cnnlab.studies.folder import study_folder
    from cnnlab.tuning.tune import _tune_folder, make_settings

    data = write_folder(tmp_path / "ds", classes=2, per_class=6)
    monkeypatch.chdir(data / "class_0")
    folder = study_folder(None, "lr", str(data))
    assert folder.parent == tmp_path / "studies" and folder.name.startswith("lr-")
    settings = make_settings(str(data), "cnn", trials=1, epochs=1)
    assert _tune_folder(None, settings) == tmp_path / "tunes" / "cnn"


def test_a_study_the_data_refuses_leaves_no_half_made_folder(tmp_path: Path) -> None:
    """A study whose scan failed left study.yaml behind, so the same command, once the data
    was fixed, was refused as "already exists and is not empty; --resume" (and a resume then
    met no split). The folder is removed again (an empty one given is left empty)."""
    data = write_folder(tmp_path / "ds", classes=2, per_class=6)
    (data / "empty class").mkdir()
    (tmp_path / "given").mkdir()
    for out in (tmp_path / "new" / "st", tmp_path / "given"):
        line = _one_error_line(cli(*_study(data, out)))
        assert "'empty class' has no image files" in line, line
    assert not (tmp_path / "new" / "st").exists()
    assert list((tmp_path / "given").iterdir()) == []
