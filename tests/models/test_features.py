"""Frozen fast path: the feature cache and scikit-learn probes folded into a linear head."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from cnnlab.console import observe_progress
from cnnlab.engine.features import compute_features, fit_sklearn_head, load_linear_head
from cnnlab.errors import DataError, ModelError
from cnnlab.models.registry import create_model


def _to_float(x: torch.Tensor) -> torch.Tensor:
    return x.float().div(255).sub(0.5)


def _flip(x: torch.Tensor) -> torch.Tensor:
    flip = torch.rand(x.shape[0]) < 0.5
    x = x.clone()
    x[flip] = x[flip].flip(-1)
    return _to_float(x)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CNNLAB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _images(n: int = 10) -> torch.Tensor:
    return torch.randint(
        0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )


def test_second_call_loads_from_disk_without_a_forward(cache: Path) -> None:
    model = create_model("tiny_cnn", num_classes=3).train()
    calls = []
    model.backbone.register_forward_hook(lambda *_: calls.append(1))
    images = _images()
    first = compute_features(model.backbone, images, _to_float, 4, cache_key="k1")
    assert len(calls) == 3 and first.shape == (10, model.num_features)
    assert model.backbone.training  # the caller's mode is restored
    with torch.no_grad():
        direct = model.eval().backbone(_to_float(images))
    torch.testing.assert_close(first, direct)  # eval mode: batch-norm running stats used
    calls.clear()
    again = compute_features(model.backbone, images, _to_float, 4, cache_key="k1")
    assert calls == [] and torch.equal(first, again)
    assert (cache / "features" / "k1.safetensors").is_file()
    assert not list((cache / "features").glob("*.tmp"))
    compute_features(model.backbone, images[:5], _to_float, 4, cache_key="k1")
    assert len(calls) == 2  # a cache entry of another size is recomputed, not trusted


def test_corrupt_cache_entry_is_rebuilt(cache: Path) -> None:
    model = create_model("tiny_cnn", num_classes=3)
    (cache / "features").mkdir(parents=True)
    (cache / "features" / "bad.safetensors").write_bytes(b"garbage")
    feats = compute_features(model.backbone, _images(4), _to_float, 8, cache_key="bad")
    assert feats.shape == (4, model.num_features)


def test_augmented_views(cache: Path) -> None:
    model = create_model("tiny_cnn", num_classes=3)
    images = _images(6)
    views = compute_features(model.backbone, images, _to_float, 4, cache_key="v", views=3,
                             train_transform=_flip)  # fmt: skip
    assert views.shape == (3, 6, model.num_features)
    clean = compute_features(model.backbone, images, _to_float, 4)
    torch.testing.assert_close(views[0], clean)
    assert not torch.equal(views[1], views[2])  # differently augmented copies
    again = compute_features(model.backbone, images, _to_float, 4, cache_key="v2", views=3,
                             train_transform=_flip)  # fmt: skip
    torch.testing.assert_close(views, again)  # seeded: reproducible
    with pytest.raises(ModelError, match="train_transform"):
        compute_features(model.backbone, images, _to_float, 4, views=2)


def _blobs(classes: int, n: int = 90, dim: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(0)
    y = np.arange(n) % classes
    centres = rng.normal(0, 3, (classes, dim))
    x = centres[y] + rng.normal(0, 1.5, (n, dim)) * rng.uniform(0.1, 10, dim) + 4.0
    return torch.tensor(x, dtype=torch.float32), torch.tensor(y)


@pytest.mark.parametrize("kind", ["logreg", "svm"])
@pytest.mark.parametrize("classes", [2, 4])
def test_sklearn_head_reproduces_decision_function(kind: str, classes: int) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    x, y = _blobs(classes)
    weight, bias = fit_sklearn_head(x, y, kind, seed=0)
    head = create_model("tiny_cnn", classes, head=kind).head
    head.fc = torch.nn.Linear(x.shape[1], classes)  # a head sized for these toy features
    load_linear_head(head, weight, bias)
    with torch.no_grad():
        logits = head(x).double().numpy()
    est = (
        LogisticRegression(C=1.0, max_iter=2000, random_state=0)
        if kind == "logreg"
        else (LinearSVC(C=1.0, max_iter=5000, random_state=0))
    )
    ref = make_pipeline(StandardScaler(), est).fit(x.double().numpy(), y.numpy())
    decision = ref.decision_function(x.double().numpy())
    mine = logits[:, 1] if classes == 2 else logits
    np.testing.assert_allclose(mine, decision, rtol=1e-3, atol=1e-3)
    if classes == 2:
        assert np.all(logits[:, 0] == 0)
    assert (logits.argmax(1) == ref.predict(x.double().numpy())).all()


def test_sklearn_head_edge_cases() -> None:
    x, y = _blobs(3)
    weight, bias = fit_sklearn_head(x, y, "logreg", num_classes=5)
    assert weight.shape == (5, x.shape[1]) and bias[3:].max() < -1000  # absent classes
    with pytest.raises(DataError, match="two classes"):
        fit_sklearn_head(x, torch.zeros(len(y), dtype=torch.long), "svm")
    mlp = create_model("tiny_cnn", 3, head="mlp").head
    with pytest.raises(ModelError):
        load_linear_head(mlp, torch.zeros(3, 32), torch.zeros(3))
    with pytest.raises(ModelError, match="do not fit"):
        load_linear_head(create_model("tiny_cnn", 3).head, torch.zeros(4, 32), torch.zeros(4))


def test_features_run_channels_last_and_match_the_plain_layout() -> None:
    """The backbone pass runs in the convolutions' fast layout (as the Predictor does): the
    same features as the plain NCHW pass up to float rounding."""
    torch.manual_seed(0)
    model = create_model("cnn", num_classes=3).eval()
    layouts: list[bool] = []
    model.backbone.register_forward_pre_hook(
        lambda _m, args: layouts.append(args[0].is_contiguous(memory_format=torch.channels_last))
    )
    images = _images(6)
    told: list[tuple[str, int, int]] = []
    with observe_progress(lambda *a: told.append(a)):  # the bar's counts, in images
        feats = compute_features(model.backbone, images, _to_float, 4)
    assert layouts == [True, True]
    assert [done for _, done, _ in told] == [0, 4, 6]
    assert {(what, total) for what, _, total in told} == {("computing features (view 1/1)", 6)}
    with torch.no_grad():
        plain = model.backbone(_to_float(images).contiguous())
    torch.testing.assert_close(feats, plain, rtol=1e-4, atol=1e-5)
