"""``model.head_hidden`` as a list: a head with several hidden layers (seed 004's dense head).

The model card records the widths, so everything that rebuilds a run's network from it
(predict, export, ensembles, resume) builds the same head and gives the report's numbers.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from tests.conftest import folder_digest, write_folder

import cnnlab
from cnnlab.config import load_config
from cnnlab.errors import ConfigError, ModelError
from cnnlab.models.heads import create_head
from cnnlab.models.registry import create_model


def test_a_list_builds_one_hidden_layer_per_entry_each_with_activation_and_dropout() -> None:
    head = create_head("mlp", 64, 5, hidden=[32, 16], activation="gelu", dropout=0.3)
    kinds = [type(m).__name__ for m in head.hidden]
    assert kinds == ["Linear", "GELU", "Dropout", "Linear", "GELU"]
    assert [m.out_features for m in head.hidden if isinstance(m, torch.nn.Linear)] == [32, 16]
    assert isinstance(head.drop, torch.nn.Dropout) and head.fc.in_features == 16
    assert head(torch.randn(4, 64)).shape == (4, 5)


def test_one_number_keeps_the_saved_layout_and_zero_or_empty_is_linear() -> None:
    # runs saved before lists existed load their weights by these keys
    one = create_head("mlp", 64, 5, hidden=16, dropout=0.2)
    assert list(one.state_dict()) == ["hidden.0.weight", "hidden.0.bias", "fc.weight", "fc.bias"]
    assert list(create_head("mlp", 64, 5, hidden=[16]).state_dict()) == list(one.state_dict())
    for none in (0, []):
        linear = create_head("mlp", 64, 5, hidden=none)
        assert isinstance(linear.hidden, torch.nn.Identity) and linear.fc.in_features == 64
    with pytest.raises(ModelError, match="positive whole number"):
        create_model("tiny_cnn", 3, head="mlp", head_hidden=[16, 0])


@pytest.mark.parametrize("value", ["[512,0]", "-1", "[64,-8]", "[a]", "2.5", "true", "[[8]]"])
def test_bad_widths_are_one_clear_config_error(value: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(overrides=[f"model.head_hidden={value}"])
    message = str(err.value)
    assert "'model.head_hidden'" in message and "[512,256]" in message
    assert message.count("model.head_hidden") == 1  # one message, not one per union member


def test_yaml_and_the_command_line_take_a_list(tmp_path: Path) -> None:
    assert load_config(overrides=["model.head_hidden=[512,256]"]).model.head_hidden == [512, 256]
    file = tmp_path / "head.yaml"
    file.write_text("model:\n  head: mlp\n  head_hidden: [1024, 512]\n", encoding="utf-8")
    assert load_config(file).model.head_hidden == [1024, 512]
    assert load_config(overrides=["model.head_hidden=0"]).model.head_hidden == 0


def test_the_cli_refuses_a_bad_width_before_any_work(tmp_path: Path) -> None:
    data = write_folder(tmp_path / "data", classes=2, per_class=4)
    env = dict(os.environ, NO_COLOR="1", COLUMNS="200")
    out = subprocess.run(
        [sys.executable, "-m", "cnnlab", "train", str(data), "model.head=mlp",
         "model.head_hidden=[64,0]", "--runs-dir", str(tmp_path / "runs")],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert out.returncode == 2, out.stderr
    assert "error:" in out.stderr and "model.head_hidden" in out.stderr
    assert "Traceback" not in out.stderr and not (tmp_path / "runs").exists()


def _report_predictions(run: Path, data: Path) -> dict[str, tuple[str, float]]:
    """The report's test predictions by image path (the CSV's are relative to the data)."""
    with (run / "predictions" / "test.csv").open(newline="", encoding="utf-8") as fh:
        return {str(data / r["path"]): (r["pred"], float(r["prob"])) for r in csv.DictReader(fh)}


@pytest.mark.slow
def test_a_two_layer_head_survives_predict_export_ensemble_and_resume(tmp_path: Path) -> None:
    data = write_folder(tmp_path / "data ünï", classes=3, per_class=16)
    # real-shaped: an exact duplicate under an odd name
    (data / "class_1" / "copy (1).png").write_bytes((data / "class_1" / "img_000.png").read_bytes())
    before = folder_digest(data)
    common = {"epochs": 3, "img_size": 32, "runs_dir": str(tmp_path / "runs"), "model": "tiny_cnn",
              "batch_size": 4, "eval__worst_mistakes": 0, "eval__explain": False}  # fmt: skip
    run = cnnlab.train(str(data), name="deep", model__head="mlp", model__head_hidden=[24, 12],
                       model__head_dropout=0.2, **common)  # fmt: skip
    assert run is not None
    card = run.model_card
    assert card["create_kwargs"]["head_hidden"] == [24, 12]
    assert run.config["model"]["head_hidden"] == [24, 12]

    # predict: the report's test predictions, from the card alone
    predictor = cnnlab.load(str(run.path))
    layers = [m for m in predictor.model.head.hidden if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in layers] == [24, 12]
    saved = _report_predictions(run.path, data)
    assert len({label for label, _ in saved.values()}) > 1  # a model that tells classes apart
    got = {r["path"]: (r["label"], r["prob"]) for r in predictor.predict(list(saved), top_k=1)}
    assert {p: label for p, (label, _) in got.items()} == {p: v[0] for p, v in saved.items()}
    assert np.allclose([got[p][1] for p in saved], [v[1] for v in saved.values()], atol=1e-5)

    # export: parity with torch, and the ONNX backend gives the same predictions
    from cnnlab.export import export_run

    assert export_run(run.path, format="onnx")["parity_ok"]
    onnx = cnnlab.load(str(run.path), backend="onnx").predict(list(saved), top_k=1)
    assert [r["label"] for r in onnx] == [saved[r["path"]][0] for r in onnx]

    # ensemble: a member with the deep head predicts what its saved scores said
    other = cnnlab.train(str(data), name="linear", **common)
    from cnnlab.ensemble.folder import build_ensemble
    from cnnlab.ensemble.predictor import EnsemblePredictor

    ens = build_ensemble([run.path, other.path], out=tmp_path / "ens")
    ens_saved = _report_predictions(ens.path, data)
    ens_got = EnsemblePredictor(ens.path).predict(list(ens_saved), top_k=1)
    assert [r["label"] for r in ens_got] == [ens_saved[r["path"]][0] for r in ens_got]

    # resume (extend by an epoch): the checkpoint loads into the same head
    extended = cnnlab.train(resume=str(run.path), epochs=4)
    assert extended is not None and extended.summary["epochs_run"] == 4
    assert extended.model_card["create_kwargs"]["head_hidden"] == [24, 12]
    assert folder_digest(data) == before
