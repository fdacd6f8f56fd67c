"""Layer choice for every model family, and CAMs through the grad-cam package on run folders."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tests.conftest import make_class_image
from tests.evaluation.conftest import build_run

from cnnlab.errors import ConfigError, ModelError
from cnnlab.explain.cam import METHODS, Explainer
from cnnlab.explain.layers import auto_layer, resolve_layer, trace_layers
from cnnlab.models.registry import create_model

# model, input side (px), the layer `auto` must pick: the last convolutional stage.
AUTO = [
    ("cnn", 32, "backbone.blocks.2"),
    ("vanilla_cnn", 32, "backbone.blocks.2"),
    ("basenet", 32, "backbone.blocks.1"),
    ("basenet_plus", 32, "backbone.blocks.2"),
    ("tiny_cnn", 32, "backbone.blocks.2"),
    ("alexnet", 224, "backbone.blocks.4"),
    ("resnet18", 64, "backbone.layer4"),
    ("efficientnet_lite0", 64, "backbone.bn2"),
    ("convnext_atto", 64, "backbone.stages.3"),
    ("vgg11", 64, "backbone.features.20"),
]


@pytest.mark.parametrize(("name", "size", "expected"), AUTO)
def test_auto_picks_the_last_convolutional_stage(name: str, size: int, expected: str) -> None:
    with torch.device("meta"):  # shapes only: no weights initialised, no arithmetic
        model = create_model(name, num_classes=3, img_size=size)
    layers = trace_layers(model, size, 3)
    assert auto_layer(model, layers) == expected
    chosen = next(i for i in layers if i.name == expected)
    assert chosen.is_map and chosen.shape[1] > 1


def test_auto_skips_a_1x1_map_and_names_are_checked() -> None:
    """At 32 px a ResNet's layer4 is 1x1 (no 'where'): auto falls back to layer3."""
    with torch.device("meta"):
        model = create_model("resnet18", num_classes=3)
    assert auto_layer(model, trace_layers(model, 32, 3)) == "backbone.layer3"
    with pytest.raises(ModelError, match=r"no layer 'backbone\.layer9'.*did you mean"):
        resolve_layer(model, "backbone.layer9", 32, 3)
    with pytest.raises(ModelError, match=r"not a \(C, H, W\) map"):
        resolve_layer(model, "head.fc", 32, 3)


@pytest.mark.parametrize("model", ["resnet18", "efficientnet_lite0", "convnext_atto"])
def test_cams_on_timm_run_folders(tmp_path, model: str) -> None:
    run = build_run(tmp_path, model=model, img_size=64, resize=72)
    image = run.parent.parent / "data" / "class_1" / "img_000.png"
    ex = Explainer(run)
    found, skipped = ex.explain([image])
    assert not skipped and len(found) == 1
    cam = found[0].cam
    assert cam.shape == (64, 64) and cam.dtype == np.float32
    assert np.isfinite(cam).all() and cam.min() >= 0 and cam.max() <= 1 + 1e-6
    assert found[0].image.shape == (64, 64, 3) and found[0].image.dtype == np.uint8


def test_every_method_explains_predicted_or_asked_class(tmp_path) -> None:
    run = build_run(tmp_path, model="tiny_cnn")
    rng = np.random.default_rng(3)
    images = [np.asarray(make_class_image(k % 3, rng, 40)) for k in range(4)]
    for method in METHODS:
        ex = Explainer(run, method=method)
        found, _ = ex.explain(images)
        assert [e.key for e in found] == [0, 1, 2, 3]
        probs = ex.predictor.predict(images, top_k=1)  # with the run's TTA, as the report
        assert ex.predictor.tta  # so the CAM pass's own unflipped forward would differ
        assert [e.label for e in found] == [r["label"] for r in probs]
        assert [e.prob for e in found] == pytest.approx([r["prob"] for r in probs], abs=1e-6)
        assert all(e.target == e.label for e in found)
        asked, _ = ex.explain(images, target="class_2")
        assert {e.target for e in asked} == {"class_2"}
        assert all(a.cam.shape == (32, 32) for a in asked)
    with pytest.raises(ConfigError, match=r"unknown class 'dog'.*class_0"):
        Explainer(run).explain(images, target="dog")
    with pytest.raises(ConfigError, match="unknown CAM method"):
        Explainer(run, method="gradcam2")


def test_cam_pass_leaves_the_model_as_it_was(tmp_path) -> None:
    """The CAM turns parameter gradients off for speed; they must come back, maps unchanged."""
    from pytorch_grad_cam import GradCAM

    run = build_run(tmp_path, model="tiny_cnn")
    ex = Explainer(run)
    x = torch.from_numpy(np.stack([ex.predictor.load(np.zeros((40, 40, 3), np.uint8) + 90)]))
    x = x.permute(0, 3, 1, 2).contiguous()
    ours, _ = ex.cams(x)
    assert all(p.requires_grad for p in ex.model.parameters())
    with GradCAM(model=ex.model, target_layers=[ex.module]) as plain:
        reference = plain(input_tensor=ex.predictor.transform(x), targets=None)
    np.testing.assert_allclose(ours, reference, atol=1e-6)
