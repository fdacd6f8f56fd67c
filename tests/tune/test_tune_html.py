"""tune.html draws the parameter importances only from enough complete trials."""

from __future__ import annotations

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

from cnnlab.tuning.html import IMPORTANCE_MIN_TRIALS, write_html
from cnnlab.tuning.tune import make_settings

LR = {"type": "float", "low": 1e-4, "high": 1e-1, "log": True}
OPTIMIZER = {"type": "categorical", "choices": ["adam", "sgd"]}
SPACE = {"params": {"train.lr": LR, "train.optimizer": OPTIMIZER}}
DISTS = {"train.lr": FloatDistribution(1e-4, 1e-1, log=True),
         "train.optimizer": CategoricalDistribution(["adam", "sgd"])}  # fmt: skip


def _study(complete: int, pruned: int) -> optuna.Study:
    """A tune's study as Optuna stores it: ``complete`` scored trials, ``pruned`` without."""
    study = optuna.create_study(direction="maximize")
    for i in range(complete + pruned):
        params = {"train.lr": 10 ** -(1 + i % 3), "train.optimizer": ["adam", "sgd"][i % 2]}
        done = i < complete
        study.add_trial(create_trial(
            params=params, distributions=DISTS, value=0.5 + 0.1 * i if done else None,
            state=TrialState.COMPLETE if done else TrialState.PRUNED,
            intermediate_values={1: 0.4 + 0.05 * i},
        ))  # fmt: skip
    return study


def _importance_section(html: str) -> str:
    start = html.index('<section id="importance">')
    return html[start : html.index("</section>", start)]


def test_importances_need_enough_complete_trials(small_folder, tmp_path):
    settings = make_settings(small_folder, SPACE, trials=8, epochs=4)
    # the tester's tune: one complete trial, seven pruned after epoch 1
    write_html(tmp_path, _study(1, 7), settings, [])
    section = _importance_section((tmp_path / "tune.html").read_text(encoding="utf-8"))
    assert (
        f"Not drawn: Parameter importances need at least {IMPORTANCE_MIN_TRIALS} complete "
        "trials; this tune has 1." in section
    )
    assert "Plotly.newPlot" not in section  # no chart of equal, meaningless shares
    write_html(tmp_path, _study(5, 3), settings, [])
    section = _importance_section((tmp_path / "tune.html").read_text(encoding="utf-8"))
    assert "Plotly.newPlot" in section and "Not drawn" not in section
