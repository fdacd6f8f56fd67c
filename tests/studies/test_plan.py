"""Study plans: --vary, plan files and every recipe's full cell list, validated before any run."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from cnnlab.errors import ConfigError, ModelError
from cnnlab.studies.folder import load_plan, write_plan
from cnnlab.studies.recipes import LRS, MODELS, OPTIMIZERS, RECIPES
from cnnlab.studies.study import make_plan


def test_vary_is_a_cross_product_with_labels_and_seeds(tiny_folder):
    plan = make_plan(
        tiny_folder,
        vary=["train.lr=1e-3,1e-2", "model.cnn.filters=[8,16],[16,32]"],
        seeds=2,
        sets=["train.epochs=2", "train.seed=7"],
    )
    assert [c.id for c in plan.cells] == ["c1", "c2", "c3", "c4"]
    assert plan.varied == ["train.lr", "model.cnn.filters"]
    assert plan.cells[1].label == "lr=1e-3, filters=[16,32]"
    assert plan.seeds == [7, 8]
    cfg = plan.config(plan.cells[3], 8)
    assert cfg.train.lr == 0.01 and cfg.model.cnn.filters == [16, 32]
    assert cfg.train.epochs == 2 and cfg.train.seed == 8
    assert len(plan.jobs()) == 8 and plan.jobs()[:4] == [(c, 7) for c in plan.cells]


@pytest.mark.parametrize(
    ("vary", "sets", "message"),
    [
        (["train.lrr=1e-3,1e-2"], [], "did you mean 'train.lr'"),
        (["train.lr=1e-3,abc"], [], "c2 .*train.lr"),
        (["train.seed=1,2"], [], "use --seeds"),
        (["data.val_fraction=0.1,0.2"], [], "one split"),
        (["train.lr=1e-3,1e-3"], [], "listed twice"),
        (["train.lr=1e-3,1e-2"], ["train.lr=0.1"], "varied by the study"),
        (["train.lr"], [], "KEY=V1,V2"),
        ([], [], "nothing to compare"),
    ],
)
def test_bad_plans_fail_before_any_run_with_a_clear_message(tiny_folder, vary, sets, message):
    with pytest.raises(ConfigError, match=message):
        make_plan(tiny_folder, vary=vary, sets=sets)


def test_unknown_model_in_a_cell_suggests_close_names(tiny_folder):
    with pytest.raises(ModelError, match=r"did you mean.*basenet"):
        make_plan(tiny_folder, vary=["model.name=cnn,basenett"])


def test_pretrained_weights_missing_offline_stop_the_study_before_any_run(tiny_folder):
    with pytest.raises(ConfigError, match=r"c2 .*resnet18 in mode finetune needs pretrained"):
        make_plan(tiny_folder, vary=["model.name=cnn,resnet18"])
    plan = make_plan(tiny_folder, vary=["model.name=cnn,resnet18"], sets=["model.mode=scratch"])
    assert len(plan.cells) == 2


def test_cli_typo_is_one_line_exit_2_and_creates_nothing(tiny_folder, tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "cnnlab", "study", str(tiny_folder), "--vary",
         "train.lrr=1e-3,1e-2", "--out", str(tmp_path / "s")],
        capture_output=True, text=True, env=dict(os.environ, COLUMNS="200"), timeout=300,
    )  # fmt: skip
    assert out.returncode == 2
    assert "did you mean 'train.lr'" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "s").exists()


def test_plan_file_with_nested_keys_and_a_saved_plan_round_trips(tiny_folder, tmp_path):
    file = tmp_path / "plan.yaml"
    file.write_text(
        "seeds: [1, 5]\ncompare: previous\nset: {train: {epochs: 3}}\n"
        "cells:\n  - {label: small, set: {model: {name: tiny_cnn}}}\n"
        "  - {label: big, set: {model.name: cnn, train.lr: 0.01}}\n",
        encoding="utf-8",
    )
    plan = make_plan(tiny_folder, plan_file=file)
    assert plan.seeds == [1, 5] and plan.compare == "previous"
    assert [c.label for c in plan.cells] == ["small", "big"]
    assert plan.base == {"train.epochs": 3} and plan.varied == ["model.name", "train.lr"]
    (tmp_path / "s").mkdir()
    write_plan(tmp_path / "s", plan, None)
    again, doc = load_plan(tmp_path / "s")
    assert again.to_dict() == plan.to_dict() and doc["varied"] == plan.varied
    # study.yaml is itself a plan file: the study can be rerun from it.
    assert make_plan(tiny_folder, plan_file=tmp_path / "s" / "study.yaml").to_dict() == (
        plan.to_dict()
    )


def test_every_recipe_builds_and_validates_its_full_default_cells(tiny_folder):
    sizes = {}
    for name in RECIPES:
        plan = make_plan(tiny_folder, recipe=name, seeds=1)
        sizes[name] = len(plan.cells)
        for cell in plan.cells:
            plan.config(cell, plan.seeds[0])
    assert sizes == {
        "lr": len(LRS) * 2,
        "optimizers": len(OPTIMIZERS),
        "models": len(MODELS),
        "transfer": 8,
        "ladder": 7,
    }


def test_models_recipe_starts_pretrained_only_where_weights_exist(tiny_folder):
    plan = make_plan(tiny_folder, recipe="models", seeds=1)
    modes = {c.values["model.name"]: c.values["model.mode"] for c in plan.cells}
    assert modes["efficientnet_lite0"] == "finetune"
    assert {m for m, mode in modes.items() if mode == "scratch"} == set(MODELS) - {
        "efficientnet_lite0"
    }
    assert plan.base["data.img_size"] == 64  # one input size for every architecture


def test_ladder_is_cumulative_and_compares_each_step_with_the_previous(tiny_folder):
    plan = make_plan(tiny_folder, recipe="ladder", seeds=1, sets=["train.epochs=4"])
    assert plan.compare == "previous"
    first, last = plan.cells[0].values, plan.cells[-1].values
    assert first["data.normalize"] is False and last["data.normalize"] is True
    assert last["model.cnn.batch_norm"] is True and last["train.early_stopping"] is True
    assert last["train.epochs"] == 8 and "train.epochs" not in first
    # the labels name everything a step sets: the base's regularised SGD, the augment
    # preset's colour jitter, and the epochs the early-stopping step doubles
    labels = [c.label for c in plan.cells]
    assert labels[0] == (
        "base (BaseNet, raw pixels; SGD lr 0.01, Nesterov momentum 0.9, weight decay 0.0005, "
        "label smoothing 0.1)"
    )
    assert labels[2] == (
        "+ augment standard (flip, shift 0.1, zoom 0.25, brightness/contrast/saturation 0.2)"
    )
    assert labels[-1] == "+ early stopping (patience 5), up to 2x epochs (8)"
    with pytest.raises(ConfigError, match=r"steps set data\.augment"):
        make_plan(tiny_folder, recipe="ladder", sets=["data.augment=strong"])


def test_lr_recipe_list_replaced_by_vary_and_transfer_needs_weights(tiny_folder):
    plan = make_plan(tiny_folder, recipe="lr", vary=["train.lr=0.01"], seeds=1)
    assert [c.label for c in plan.cells] == [
        "lr=0.01, scheduler=onecycle",
        "lr=0.01, scheduler=none",
    ]
    with pytest.raises(ConfigError, match="needs pretrained weights for resnet18"):
        make_plan(tiny_folder, recipe="transfer", sets=["model.name=resnet18"])
    with pytest.raises(ConfigError, match="did you mean 'ladder'"):
        make_plan(tiny_folder, recipe="ladders")


def test_an_existing_study_folder_is_not_overwritten(tmp_path):
    from cnnlab.studies.folder import create_folder

    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "x").write_text("", encoding="utf-8")
    with pytest.raises(ConfigError, match="--resume"):
        create_folder(tmp_path / "s")
    assert create_folder(tmp_path / "new") == tmp_path / "new"


def test_a_users_split_file_is_saved_with_the_digests_every_run_writes(tiny_folder, tmp_path):
    """A study given data.split_file saved it as copied (an older one without sha1), while each
    of its runs writes split.csv with sha1: the study's split and its runs' differed."""
    from cnnlab.data.scan import scan_dataset
    from cnnlab.data.split import load_split, make_split, save_split
    from cnnlab.studies.folder import make_split as study_split

    scan = scan_dataset(tiny_folder, progress=False)
    mine = save_split(make_split(scan, 0.2, 0.2, 0), tmp_path / "mine.csv")
    lines = mine.read_text(encoding="utf-8").splitlines()
    old = [line.rsplit(",", 1)[0] for line in lines]  # as written before the sha1 column
    mine.write_text("\n".join(old) + "\n", encoding="utf-8")
    plan = make_plan(tiny_folder, vary=["train.lr=1e-3,1e-2"], sets=[f"data.split_file={mine}"])
    (tmp_path / "study").mkdir()
    saved = study_split(tmp_path / "study", plan)
    assert saved.read_text(encoding="utf-8").splitlines() == lines
    # what write_run_inputs saves for each of the study's runs (data.split_file=saved)
    ran = save_split(load_split(saved, scan), tmp_path / "run.csv")
    assert ran.read_bytes() == saved.read_bytes()
