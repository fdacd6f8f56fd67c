"""Config: defaults, YAML, dotted overrides and every error path (RELIABILITY 23)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cnnlab.config import Config, load_config, parse_override, save_config, valid_keys
from cnnlab.errors import ConfigError


def test_defaults_are_valid_and_complete() -> None:
    cfg = load_config()
    assert isinstance(cfg, Config)
    assert cfg.model.name == "cnn"
    assert cfg.train.epochs >= 1
    for key in ("data.root", "model.cnn.filters", "train.lr", "eval.top_k"):
        assert key in valid_keys()


def test_dotted_overrides_are_typed() -> None:
    cfg = load_config(
        overrides=[
            "train.lr=3e-4",
            "model.name=resnet18",
            "train.epochs=7",
            "model.cnn.filters=[8, 16]",
            "data.hflip=false",
            "model.pretrained=true",
            "train.precision=32",
        ]
    )
    assert cfg.train.lr == pytest.approx(3e-4)
    assert cfg.model.name == "resnet18"
    assert cfg.train.epochs == 7
    assert cfg.model.cnn.filters == [8, 16]
    assert cfg.data.hflip is False
    assert cfg.model.pretrained == "true"
    assert cfg.train.precision == "32"


def test_yaml_then_overrides_win(tmp_path: Path) -> None:
    file = tmp_path / "c.yaml"
    file.write_text("train:\n  epochs: 3\n  lr: 0.1\nmodel:\n  name: basenet\n")
    cfg = load_config(file, overrides=["train.lr=0.2"])
    assert (cfg.train.epochs, cfg.train.lr, cfg.model.name) == (3, 0.2, "basenet")


def test_unknown_key_suggests_closest() -> None:
    with pytest.raises(ConfigError, match=r"unknown config key 'train.lrr'.*'train.lr'"):
        load_config(overrides=["train.lrr=0.1"])


def test_bare_field_name_suggests_its_section() -> None:
    with pytest.raises(ConfigError, match=r"did you mean 'train\.epochs'"):
        load_config(overrides=["epochs=3"])


def test_unknown_key_in_yaml_is_named(tmp_path: Path) -> None:
    file = tmp_path / "c.yaml"
    file.write_text("train:\n  epocs: 3\n")
    with pytest.raises(ConfigError, match=r"train.epocs.*did you mean 'train.epochs'"):
        load_config(file)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.epochs=many", "train.epochs"),
        ("train.epochs=0", "greater than or equal to 1"),
        ("data.val_fraction=1.5", "data.val_fraction"),
        ("train.optimizer=adamax", "train.optimizer"),
        ("model.mode=sideways", "scratch, frozen, finetune"),
        ("model.mode=partial:x", "partial:N"),
        ("train.strategy=ddp_spawn", "use train.strategy=ddp"),
        ("model.cnn.activation=swishy", "model.cnn.activation"),
    ],
)
def test_wrong_type_or_range_is_refused(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(overrides=[override])


def test_partial_mode_accepted() -> None:
    assert load_config(overrides=["model.mode=partial:2"]).model.mode == "partial:2"


def test_override_without_equals() -> None:
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_override("train.lr")


def test_values_are_never_evaluated() -> None:
    key, value = parse_override("name=__import__('os').system('echo hi')")
    assert key == "name"
    assert isinstance(value, str)


def test_missing_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(listy)


def test_saved_config_round_trips(tmp_path: Path) -> None:
    cfg = load_config(overrides=["train.lr=0.01", "name=ünïcode run", "data.hflip=true"])
    save_config(cfg, tmp_path / "config.yaml")
    again = load_config(tmp_path / "config.yaml")
    assert again == cfg


def test_removed_eval_split_says_what_to_do_instead() -> None:
    """Issue 10 item 11: eval.split never chose anything; it is gone, with a pointer."""
    with pytest.raises(ConfigError, match=r"eval\.split.*removed.*cnnlab eval RUN --split val"):
        load_config(overrides=["eval.split=val"])


def test_strategy_names_are_lightnings() -> None:
    from lightning.pytorch.strategies import StrategyRegistry

    from cnnlab.config import STRATEGIES

    assert set(STRATEGIES) - {"auto"} <= set(StrategyRegistry.available_strategies())
