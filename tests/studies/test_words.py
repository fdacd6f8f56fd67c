"""The report never says more than the numbers: 'best' only when every other cell is worse."""

from __future__ import annotations

import math

from cnnlab.studies.plan import Cell, Plan
from cnnlab.studies.words import summary_sentences


def _row(cell: str, n: int = 3) -> dict:
    return {"cell": cell, "label": f"setting {cell}", "n": n}


def _comp(cell: str, verdict: str, diff: float = -0.05, p_holm: float = 0.01) -> dict:
    return {
        "cell": cell, "label": f"setting {cell}", "verdict": verdict, "diff_accuracy": diff,
        "diff_accuracy_ci_low": diff - 0.02, "diff_accuracy_ci_high": diff + 0.02,
        "p_holm": p_holm, "reference_cell": f"c{int(cell[1:]) - 1}",
    }  # fmt: skip


def _plan(compare: str = "best") -> Plan:
    return Plan("data", [Cell(c, c) for c in ("c1", "c2", "c3")], [1, 2, 3], compare=compare)


def test_best_only_when_every_other_cell_is_worse():
    table = [_row("c1"), _row("c2"), _row("c3")]
    comps = [_comp("c2", "worse"), _comp("c3", "worse")]
    text = " ".join(summary_sentences(_plan(), table, comps, table[0], "validation", [], 0))
    assert "setting c1 (c1) is the best cell" in text


def test_overlap_is_named_and_no_cell_is_called_best():
    table = [_row("c1"), _row("c2"), _row("c3", n=1)]
    comps = [_comp("c2", "not distinguishable", -0.01), _comp("c3", "worse")]
    failures = [("c3", 2, "training diverged: train/loss became nan at epoch 2")]
    lines = summary_sentences(_plan(), table, comps, table[0], "validation", failures, 1)
    text = " ".join(lines)
    assert "is the best cell" not in text
    assert "not distinguishable at 95% from setting c2 (c2)" in text
    assert "no single best cell can be named" in text
    assert "better at 95% than setting c3 (c3)" in text
    assert "spread over seeds is unknown" in text  # c3 has one finished seed
    assert "Run c3 seed 2 failed: training diverged" in text
    assert "--resume" in text


def test_ladder_gives_each_steps_gain_with_its_interval():
    table = [_row("c1"), _row("c2"), _row("c3")]
    comps = [_comp("c2", "better", 0.08), _comp("c3", "not distinguishable", 0.01)]
    text = " ".join(summary_sentences(_plan("previous"), table, comps, None, "", [], 0))
    assert "real gain over the previous step at 95%: setting c2 (+8.0 pts, 95% CI" in text
    assert "not distinguishable from the previous one at 95%: setting c3" in text
    assert "(+8.0 pts, 95% CI +6.0 pts to +10.0 pts; McNemar p=0.01 after Holm)" in text


def test_a_step_whose_interval_excludes_0_but_mcnemar_does_not_says_which_test_decided():
    table = [_row("c1"), _row("c2"), _row("c3")]
    comps = [
        _comp("c2", "not distinguishable", 0.154, p_holm=0.453),  # CI +13.4 to +17.4 pts
        _comp("c3", "not distinguishable", 0.01, p_holm=1.0),  # CI -1.0 to +3.0 pts
    ]
    text = " ".join(summary_sentences(_plan("previous"), table, comps, None, "", [], 0))
    assert (
        "setting c2 (+15.4 pts, 95% CI +13.4 pts to +17.4 pts; McNemar p=0.45 after Holm is not "
        "below 0.05, so not distinguishable although the bootstrap interval excludes 0)"
    ) in text
    assert "setting c3 (+1.0 pts, 95% CI -1.0 pts to +3.0 pts; McNemar p=1 after Holm)" in text


def test_early_stopping_that_never_fired_is_not_credited_with_the_longer_training():
    def row(cell: str, early: bool, epochs: int, stopped: int | None) -> dict:
        return {**_row(cell, n=2), "train.early_stopping": early, "train.epochs": epochs,
                "stopped_early": stopped}  # fmt: skip

    comps = [_comp("c2", "better", 0.19)]
    plan = _plan("previous")
    never = [row("c1", False, 5, 0), row("c2", True, 10, 0)]
    text = " ".join(summary_sentences(plan, never, comps, None, "", [], 0))
    assert (
        "Early stopping never fired in any of the 2 run(s) of setting c2 (c2), so its "
        "difference from setting c1 (c1) comes from the longer training (up to 10 epochs, not 5)."
    ) in text
    same_epochs = [row("c1", False, 5, 0), row("c2", True, 5, 0)]
    text = " ".join(summary_sentences(plan, same_epochs, comps, None, "", [], 0))
    assert "(c1) does not come from early stopping." in text
    for table in (
        [row("c1", False, 5, 0), row("c2", True, 10, 1)],  # it fired in one run
        [row("c1", False, 5, 0), row("c2", True, 10, None)],  # runs from before the field
        [row("c1", True, 5, 0), row("c2", True, 10, 0)],  # on in both: not the step's change
    ):
        assert "never fired" not in " ".join(summary_sentences(plan, table, comps, None, "", [], 0))


def test_a_cell_at_the_no_skill_baseline_is_said_not_to_have_learned():
    def row(cell: str, mean: float) -> dict:
        return {**_row(cell), "test_accuracy_mean": mean, "test_majority_accuracy": 0.126,
                "test_images": 254.0}  # fmt: skip

    table = [row("c1", 0.93), row("c2", 0.108), row("c3", 0.15)]
    comps = [_comp("c2", "worse", -0.82), _comp("c3", "worse", -0.78)]
    text = " ".join(summary_sentences(_plan("previous"), table, comps, None, "", [], 0))
    # 0.108 and 0.15 on 254 images: neither is above 0.126 at 95%; 0.93 is
    assert "setting c2 (c2) did not learn: its mean test accuracy (0.108)" in text
    assert "setting c3 (c3) did not learn" in text and "setting c1 (c1) did not learn" not in text
    old = [_row("c1"), _row("c2")]  # a study reported before the baseline was recorded
    assert "did not learn" not in " ".join(summary_sentences(_plan(), old, [], old[0], "", [], 0))


def test_seeds_that_all_scored_the_same_are_not_given_a_spread():
    """Explore_d G: a seed-independent cell (frozen backbone + logistic regression) showed
    ``0.463 ± 0.000 [0.463, 0.463]`` as a 95% CI over seeds and no caveat."""
    from cnnlab.studies.report import _spread
    from cnnlab.studies.words import same_score

    tied = {**_row("c1", n=2), "test_accuracy_mean": 0.463, "test_accuracy_std": 0.0,
            "test_accuracy_ci_low": 0.463, "test_accuracy_ci_high": 0.463}  # fmt: skip
    varied = {**tied, "cell": "c2", "label": "setting c2", "test_accuracy_std": 0.01}
    single = {**tied, "cell": "c3", "label": "setting c3", "n": 1, "test_accuracy_std": math.nan}
    assert _spread(tied, "test_accuracy") == ("0.463", "unknown (seeds tied)")
    assert [same_score(r) for r in (tied, varied, single)] == [True, False, False]
    table = [tied, varied, single]
    comps = [_comp("c2", "worse"), _comp("c3", "worse")]
    text = " ".join(summary_sentences(_plan(), table, comps, tied, "validation", [], 0))
    assert "setting c1 (c1): every seed scored the same test accuracy, so the spread" in text
    assert "setting c2 (c2): every" not in text and "setting c3 (c3): every" not in text


def test_the_accuracy_chart_draws_no_zero_width_error_bar_for_seeds_that_tied(
    tmp_path, monkeypatch
):
    """Explore_i 6: the chart drew a tied cell's [m, m] interval as a tick at the bar's end,
    where the table says "unknown (seeds tied)". It gets no bar, and its label says so."""
    from cnnlab.studies import plots
    from cnnlab.studies.report import stated_spread

    def row(cell: str, std: float, low: float, high: float) -> dict:
        return {**_row(cell, n=2), "test_accuracy_mean": 0.92, "test_accuracy_std": std,
                "test_accuracy_ci_low": low, "test_accuracy_ci_high": high}  # fmt: skip

    tied, varied = row("c1", 0.0, 0.92, 0.92), row("c2", 0.01, 0.83, 1.0)
    drawn = []
    real_save = plots.save_png

    def keep(fig, path, **kw):  # the real figure, saved as usual; kept to look at its bars
        drawn.append(fig.axes[0])
        return real_save(fig, path, **kw)

    monkeypatch.setattr(plots, "save_png", keep)
    rows = [stated_spread(r) for r in (tied, varied)]
    assert plots.plot_accuracy_bars(rows, tmp_path / "accuracy.png").is_file()
    [ax] = drawn
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["setting c1 (n=2, CI unknown)", "setting c2 (n=2)"]
    from matplotlib.container import ErrorbarContainer

    [bars] = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    [segments] = [c.get_segments() for c in bars.lines[2]]
    drawn_bars = [s[:, 0].tolist() for s in segments if len(s)]
    caps = [x for cap in bars.lines[1] for x in cap.get_xdata() if not math.isnan(x)]
    assert drawn_bars == [[0.83, 1.0]] and sorted(caps) == [0.83, 1.0]  # c2's alone
    assert tied["test_accuracy_std"] == 0.0  # the row the words read is unchanged


def test_a_best_study_says_when_the_interval_alone_would_have_called_a_difference():
    """Explore_g 6: c1 won 12-0 discordant images over three seed pairs and the interval
    excluded 0, yet the report said only "not distinguishable"; a ladder already said more."""
    table = [_row("c1"), _row("c2"), _row("c3")]
    comps = [
        {**_comp("c2", "not distinguishable", -0.125, p_holm=0.5), "seeds": 3},  # excludes 0
        {**_comp("c3", "not distinguishable", -0.01, p_holm=1.0), "seeds": 3},
    ]
    lines = summary_sentences(_plan(), table, comps, table[0], "validation", [], 0)
    text = " ".join(lines)
    assert "not distinguishable at 95% from setting c2 (c2), setting c3 (c3)" in text
    assert (
        "Against setting c2 (c2) the interval alone would have called it a difference "
        "(setting c2 minus setting c1: -12.5 pts, 95% CI -14.5 pts to -10.5 pts; McNemar p=0.5 "
        "after Holm, the largest over its 3 seed pairs since every pair must show it, is not "
        "below 0.05, so not distinguishable although the bootstrap interval excludes 0)."
    ) in text
    assert "Against setting c3" not in text
    ladder = " ".join(summary_sentences(_plan("previous"), table, comps, None, "", [], 0))
    assert "the largest over its 3 seed pairs since every pair must show it" in ladder
