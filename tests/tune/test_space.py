"""Search spaces: the built-ins load and sample, and bad entries are refused by name."""

from __future__ import annotations

import optuna
import pytest

from cnnlab.config import load_config
from cnnlab.errors import ConfigError
from cnnlab.tuning.space import builtin_names, load_space


def _sample(space, seed: int = 0) -> dict:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    trial = study.ask()
    return space.suggest(trial)


@pytest.mark.parametrize("name", ["cnn", "train", "transfer", "head"])
def test_builtin_spaces_sample_valid_configs(name):
    space = load_space(name)
    space.check({})
    for seed in range(5):
        sampled = _sample(space, seed)
        cfg = load_config(values=space.config_values(sampled, {}))
        assert cfg is not None
    assert set(builtin_names()) >= {"cnn", "train", "transfer", "head"}


def test_cnn_space_is_seed_002s_and_fills_list_items():
    space = load_space("cnn")
    keys = {p.key: p for p in space.params}
    assert (keys["model.cnn.filters[0]"].low, keys["model.cnn.filters[0]"].high) == (8, 64)
    assert (keys["model.cnn.filters[1]"].low, keys["model.cnn.filters[1]"].high) == (16, 128)
    assert keys["model.cnn.kernel_size[0]"].step == 2
    assert set(keys["train.optimizer"].choices) == {
        "adam", "sgd", "rmsprop", "adadelta", "adagrad", "asgd", "nadam"
    }  # fmt: skip
    assert keys["train.lr"].log and keys["train.batch_size"].step == 16
    values = space.config_values({"model.cnn.filters[1]": 96, "model.cnn.filters[0]": 24}, {})
    assert values["model.cnn.filters"] == [24, 96]


def test_conditional_entry_is_sampled_only_when_its_condition_holds():
    space = load_space("head")
    for seed in range(12):
        sampled = _sample(space, seed)
        assert ("model.head_hidden" in sampled) == (sampled["model.head"] == "mlp")
        assert ("train.lr" in sampled) == (sampled["model.head"] != "logreg")


@pytest.mark.parametrize(
    ("entry", "words"),
    [
        ({"train.lrr": {"type": "float", "low": 0.1, "high": 1}}, ["train.lrr", "train.lr"]),
        ({"train.lr": {"type": "float", "low": 0.1, "high": 0.01}}, ["train.lr", "greater"]),
        ({"train.lr": {"type": "float", "low": 0, "high": 1, "log": True}},
         ["train.lr", "low > 0"]),
        ({"train.optimizer": {"type": "categorical", "choices": ["adam", "lbfgs"]}},
         ["train.optimizer", "lbfgs"]),
        ({"model.dropout": {"type": "float", "low": 0, "high": 1}}, ["model.dropout"]),
        ({"model.head_dropout": {"type": "float", "low": 0, "high": 1.5}},
         ["model.head_dropout", "1.5"]),
        ({"train.lr": {"type": "float", "lo": 0.1, "high": 1}}, ["train.lr", "lo"]),
        ({"train.epochs": {"type": "int", "low": 1, "high": 9}}, ["train.epochs", "--epochs"]),
        ({"model.head_hidden": {"type": "int", "low": 8, "high": 64,
                                "when": {"model.head": "mlp"}}},
         ["model.head_hidden", "model.head"]),
    ],
)  # fmt: skip
def test_bad_entries_are_refused_naming_the_entry(entry, words):
    with pytest.raises(ConfigError) as err:
        load_space({"params": entry}).check({})
    for word in words:
        assert word in str(err.value)


def test_a_list_item_of_a_scalar_is_refused_naming_the_entry():
    space = load_space(
        {"params": {"model.cnn.kernel_size[1]": {"type": "int", "low": 3, "high": 5}}}
    )
    with pytest.raises(ConfigError, match=r"model.cnn.kernel_size\[1\]"):
        space.check({})


def test_space_file_and_grid(tmp_path):
    file = tmp_path / "s.yaml"
    file.write_text(
        "set: {model.name: basenet}\n"
        "params:\n"
        "  train.optimizer: {type: categorical, choices: [adam, sgd]}\n"
        "  train.batch_size: {type: int, low: 16, high: 48, step: 16}\n",
        encoding="utf-8",
    )
    space = load_space(file)
    assert space.fixed == {"model.name": "basenet"}
    assert space.grid() == {"train.optimizer": ["adam", "sgd"], "train.batch_size": [16, 32, 48]}
    assert space.grid_size() == 6
    with pytest.raises(ConfigError, match=r"train\.lr"):
        load_space({"params": {"train.lr": {"type": "float", "low": 0.1, "high": 1}}}).grid()
    with pytest.raises(ConfigError, match="not a built-in"):
        load_space("nosuchspace")
