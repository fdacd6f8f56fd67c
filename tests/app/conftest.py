"""Real run folders for the app tests: a tiny dataset (one Unicode class) and trained runs.

Training happens once per test session (a few seconds per run at 16 px); every app test
reads these folders and none writes to them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from tests.conftest import write_folder

UNICODE_CLASS = "café ☕"


def make_dataset(root: Path) -> Path:
    """3 classes x 12 images of 32 px; the third class has a Unicode name."""
    write_folder(root, classes=3, per_class=12, size=32)
    (root / "class_2").rename(root / UNICODE_CLASS)
    return root


@pytest.fixture(scope="session")
def app_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A runs folder of finished 2-epoch runs on one dataset and one split, oldest first:
    ``tiny-s0`` (tiny_cnn, seed 0), ``cnn-s0`` and ``cnn-s1`` (cnn, seeds 0 and 1)."""
    from cnnlab import api

    base = tmp_path_factory.mktemp("app")
    data = make_dataset(base / "data")
    runs = base / "runs"
    common = {"epochs": 2, "img_size": 16, "runs_dir": runs}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CNNLAB_CACHE", str(base / "cache"))
        first = api.train(data, model="tiny_cnn", seed=0, name="tiny-s0", **common)
        split = first.path / "split.csv"
        for seed in (0, 1):
            api.train(data, seed=seed, name=f"cnn-s{seed}", data__split_file=split, **common)
    return runs


@pytest.fixture
def app_env(app_runs: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The app's settings pointed at the session's runs and dataset folders."""
    from cnnlab.app.settings import AppSettings

    settings = AppSettings(runs_dir=app_runs, folders=(app_runs.parent / "data",))
    for key, value in settings.to_env().items():
        monkeypatch.setenv(key, value)
    return app_runs


def app_main() -> str:
    """The app's entry script, as ``AppTest.from_file`` wants it (an absolute path)."""
    import cnnlab.app

    return os.path.join(os.path.dirname(cnnlab.app.__file__), "main.py")


def open_page(view: str | None = None, timeout: float = 60) -> object:
    """An ``AppTest`` of the app after its first run, switched to ``views/<view>.py``.

    ``timeout`` is per script run, in seconds: the first run loads torch and the model.
    """
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(app_main(), default_timeout=timeout)
    at.run()
    if view is not None:
        at.switch_page(f"views/{view}.py").run()
    assert not at.exception, at.exception
    return at


def page_text(at: object) -> str:
    """Every text an AppTest page shows (titles, markdown, captions, alerts), joined."""
    kinds = ("title", "header", "subheader", "markdown", "caption", "error", "warning", "info")
    return "\n".join(str(e.value) for kind in kinds for e in getattr(at, kind))


@pytest.fixture(scope="session")
def ensemble_runs(app_runs: Path) -> Path:
    """A runs folder holding one soft ensemble (``cnnlab ensemble``) of ``cnn-s0`` and
    ``cnn-s1``; the members stay in ``app_runs``, so the other tests' runs are unchanged."""
    from cnnlab.ensemble.folder import build_ensemble

    out = app_runs.parent / "ensemble-runs" / "ensemble-soft"
    build_ensemble([app_runs / "cnn-s0", app_runs / "cnn-s1"], method="soft", out=out)
    return out.parent


@pytest.fixture(scope="session")
def mixed_ensemble(app_runs: Path) -> Path:
    """A soft ensemble of ``cnn-s0`` (16 px) and ``cnn-32``, a cnn trained at 32 px on the same
    split (kept outside ``app_runs``): its members decode an image at different sizes."""
    from cnnlab import api
    from cnnlab.ensemble.folder import build_ensemble

    base = app_runs.parent
    split = app_runs / "tiny-s0" / "split.csv"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CNNLAB_CACHE", str(base / "cache"))
        big = api.train(base / "data", name="cnn-32", epochs=2, img_size=32, seed=0,
                        runs_dir=base / "runs-32", data__split_file=split)  # fmt: skip
    out = base / "mixed-ensemble-runs" / "ens-mixed"
    build_ensemble([app_runs / "cnn-s0", big.path], method="soft", out=out)
    return out


@pytest.fixture(scope="session")
def compare_runs(app_runs: Path) -> Path:
    """A runs folder for the Compare page: copies of ``app_runs`` (``tiny-s0``, ``cnn-s0``,
    ``cnn-s1``), the cnn again at ``train.lr=0.05`` (``lr-s0``, ``lr-s1``), and the cnn on
    another split (``split7``: ``data.split_seed=7``, seed 0), all 2 epochs at 16 px."""
    import shutil

    from cnnlab import api

    base = app_runs.parent
    runs = base / "compare-runs"
    for run in ("tiny-s0", "cnn-s0", "cnn-s1"):
        shutil.copytree(app_runs / run, runs / run)
    split = app_runs / "tiny-s0" / "split.csv"
    common = {"epochs": 2, "img_size": 16, "runs_dir": runs}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CNNLAB_CACHE", str(base / "cache"))
        for seed in (0, 1):
            api.train(base / "data", seed=seed, name=f"lr-s{seed}", train__lr=0.05,
                      data__split_file=split, **common)  # fmt: skip
        api.train(base / "data", seed=0, name="split7", data__split_seed=7, **common)
    return runs
