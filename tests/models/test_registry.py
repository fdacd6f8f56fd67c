"""The registry: names, facts, did-you-mean errors, timm backbones and `cnnlab models`."""

from __future__ import annotations

import pytest
import torch
import typer
from typer.testing import CliRunner

from cnnlab.commands.models import models_command
from cnnlab.errors import ModelError
from cnnlab.models.registry import OWN_MODELS, create_model, list_models, model_info


def test_unknown_name_suggests_close_names() -> None:
    with pytest.raises(ModelError, match=r"unknown model 'resnett18'; did you mean .*resnet18"):
        create_model("resnett18", num_classes=3)
    with pytest.raises(ModelError, match="basenet"):
        model_info("basenett")


def test_model_info() -> None:
    ours = model_info("cnn")
    assert (ours.kind, ours.default_img_size, ours.default_mode) == ("cnnlab", 32, "scratch")
    assert len(ours.mean) == 3 and not ours.offline_weights
    lite = model_info("efficientnet_lite0")
    assert (lite.kind, lite.default_img_size, lite.default_mode) == ("timm", 224, "finetune")
    assert lite.mean == (0.485, 0.456, 0.406) and lite.offline_weights
    assert model_info("resnet18").offline_weights is False


def test_list_models_patterns() -> None:
    names = [i.name for i in list_models()]
    assert names[: len(OWN_MODELS)] == list(OWN_MODELS) and "vgg16" in names
    assert len(names) > 500
    assert {i.name for i in list_models("vgg1?")} == {"vgg11", "vgg13", "vgg16", "vgg19"}
    assert "efficientnet_lite0" in {i.name for i in list_models("lite0")}  # substring
    assert list_models("no-such-model-anywhere") == []


def test_timm_backbone_with_our_head() -> None:
    with torch.device("meta"):  # VGG-16 has 138M weights: check shapes without allocating them
        model = create_model("vgg16", num_classes=4, head="mlp", head_hidden=8)
        out = model(torch.randn(1, 3, 32, 32))
    assert model.num_features == 4096 and model.head.fc.out_features == 4
    assert model.default_img_size == 224 and len(model.stages) >= 4
    assert out.shape == (1, 4)
    keys = set(model.state_dict())
    assert all(k.startswith(("backbone.", "head.")) for k in keys)  # stages add no duplicates


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.command()(models_command)
    return app


def test_models_command_table() -> None:
    result = CliRunner().invoke(_cli(), ["vgg1?"])
    assert result.exit_code == 0, result.output
    assert "vgg16" in result.output and "134.26M" in result.output  # backbone weights only
    result = CliRunner().invoke(_cli(), [])
    assert result.exit_code == 0 and "basenet_plus" in result.output
    assert "efficientnet_lite0" in result.output and "use a pattern" not in result.output
    assert "more timm models" in result.output


def test_a_timm_model_is_built_without_importing_wandb_which_still_imports_after() -> None:
    """timm.utils imports wandb when it is installed (~40% of timm's import time), only for a
    logger of timm's own training script; cnnlab's first import of timm skips it."""
    import importlib.util
    import subprocess
    import sys

    assert importlib.util.find_spec("wandb") is not None, (
        "wandb is not installed (the dev extra has it): pip install -e '.[dev]', or make test"
    )
    code = (
        "import sys\n"
        "from cnnlab.models.registry import create_model, model_info\n"
        "assert model_info('efficientnet_lite0').kind == 'timm'\n"
        "create_model('efficientnet_lite0', num_classes=3, pretrained=False)\n"
        "assert 'timm' in sys.modules and 'wandb' not in sys.modules, 'wandb imported'\n"
        "import wandb\n"
        "assert sys.modules['wandb'] is wandb\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
