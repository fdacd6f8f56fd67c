"""Running a tune command again on its folder: what may differ, and how a refusal reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from cnnlab.errors import ConfigError
from cnnlab.tuning.folder import join_or_create, read_settings
from cnnlab.tuning.tune import make_settings

SPACE = {"set": {"train.optimizer": "adam"}, "params": {"train.lr": {"type": "categorical",
         "choices": [0.001, 0.01]}}}  # fmt: skip


def _settings(data: Path, space: dict = SPACE, epochs: int = 4, **values: object):
    return make_settings(data, space, trials=2, epochs=epochs, values=dict(values))


def test_a_refusal_names_each_difference_with_saved_and_given_values(small_folder, tmp_path):
    out = tmp_path / "tune"
    join_or_create(out, _settings(small_folder, **{"track.backend": "none"}))
    given = _settings(small_folder, epochs=6, **{"data.img_size": 24})
    with pytest.raises(ConfigError) as caught:
        join_or_create(out, given)
    message = str(caught.value)
    assert message.startswith(f"{out} was made with --epochs 4 (now 6); ")
    assert "track.backend=none (not given now)" in message
    assert "no data.img_size (now data.img_size=24)" in message
    assert "another values" not in message and "{" not in message  # no saved dict dumped
    other = {**SPACE, "params": {"train.lr": {"type": "categorical", "choices": [0.1]}}}
    with pytest.raises(ConfigError, match=r"space .* \(entries changed since: train.lr\)"):
        join_or_create(out, _settings(small_folder, other, **{"track.backend": "none"}))
    assert read_settings(out).epochs == 4  # a refused command changes nothing


def test_train_epochs_may_change_after_the_search_and_stays_when_left_out(small_folder, tmp_path):
    out = tmp_path / "tune"
    join_or_create(out, _settings(small_folder))
    # decided after the tune: the retrain length only; the trials train --epochs 4
    join_or_create(out, _settings(small_folder, **{"train.epochs": 20}))
    saved = read_settings(out)
    assert saved.values == {"train.epochs": 20} and saved.epochs == 4
    join_or_create(out, _settings(small_folder))  # the first command again keeps 20
    assert read_settings(out).values == {"train.epochs": 20}
    join_or_create(out, _settings(small_folder, **{"train.epochs": 8}))
    assert read_settings(out).values == {"train.epochs": 8}
