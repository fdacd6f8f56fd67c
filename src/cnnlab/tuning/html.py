"""``tune.html``: Optuna's own plots (plotly) and the top trials, in one self-contained file.

The plotly library is written inline once in ``<head>``; every figure is a ``<div>`` that
uses it, so the file opens offline. A plot Optuna cannot draw yet, or would draw without
meaning (parameter importances from fewer than two complete trials: Optuna gives every
parameter the same share), is replaced by a sentence saying why.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnnlab.atomic import atomic_write_text
from cnnlab.evaluation.render import Block, Link, Section, render_html
from cnnlab.tuning.folder import HTML, PARAMS, Settings

if TYPE_CHECKING:
    import optuna

TOP = 20  # trials in the table of the best
# Below this many complete trials Optuna's evaluators give every parameter the same share.
IMPORTANCE_MIN_TRIALS = 2


def scored_trials(study: optuna.Study) -> int:
    """Complete trials with a finite (first) objective: what Optuna's importances learn from."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return sum(1 for t in trials if t.values and math.isfinite(t.values[0]))


def importance_note(study: optuna.Study) -> str | None:
    """Why the importances are not drawn (too few complete trials), or None to draw them;
    tune.html and the app's tune page say the same."""
    scored = scored_trials(study)
    if scored >= IMPORTANCE_MIN_TRIALS:
        return None
    return (
        f"Parameter importances need at least {IMPORTANCE_MIN_TRIALS} complete trials; "
        f"this tune has {scored}."
    )


def _figures(study: optuna.Study, settings: Settings) -> list[tuple[str, str, Any]]:
    """(id, title, function drawing the figure) for each plot that fits the objectives."""
    from optuna import visualization as vis

    first = settings.objectives[0]
    target = {"target": lambda t: t.values[0], "target_name": first} if settings.multi else {}
    plots = [
        ("history", "Optimisation history", lambda: vis.plot_optimization_history(study, **target)),
        ("importance", "Parameter importances", lambda: _importances(study, target)),
        ("parallel", "Parallel coordinates", lambda: vis.plot_parallel_coordinate(study, **target)),
        ("slices", "Slices", lambda: vis.plot_slice(study, **target)),
    ]
    if settings.multi:
        names = [first, PARAMS]
        plots.insert(
            0, ("pareto", "Pareto front", lambda: vis.plot_pareto_front(study, target_names=names))
        )
    else:
        plots.append(
            ("epochs", "Per-epoch values (pruning)", lambda: vis.plot_intermediate_values(study))
        )
    return plots  # fmt: skip


def _importances(study: optuna.Study, target: dict[str, Any]) -> Any:
    """Optuna's importance plot, or the sentence saying it needs more complete trials."""
    from optuna import visualization as vis

    note = importance_note(study)
    return note if note is not None else vis.plot_param_importances(study, **target)


def _plot_block(draw: Any) -> Block:
    import warnings

    try:
        with warnings.catch_warnings():  # "too few trials for importances": said on the page
            warnings.simplefilter("ignore")
            fig = draw()
    except Exception as exc:  # too few complete trials, a single-valued parameter, ...
        return Block("p", f"Not drawn: {exc}")
    if isinstance(fig, str):  # the drawing function said why it draws nothing
        return Block("p", f"Not drawn: {fig}")
    if not fig.data:
        return Block("p", "Not drawn yet: no complete trial has values for it.")
    return Block("raw", fig.to_html(full_html=False, include_plotlyjs=False))


def _top_table(rows: list[dict[str, Any]], settings: Settings) -> Block:
    first = settings.objectives[0]
    done = [r for r in rows if r["state"] == "COMPLETE"]
    done.sort(key=lambda r: (-float(r[first]), float(r.get(PARAMS) or 0)))
    params = sorted({k for r in rows for k in r if "." in k and "/" not in k})
    headers = ["trial", *settings.objectives, *params, "epochs", "run"]
    table = []
    for r in done[:TOP]:
        run = _run_link(r["run_dir"])
        table.append([r["number"], *(r[o] for o in settings.objectives),
                      *(r.get(p, "") for p in params), r["epochs"], run])  # fmt: skip
    return Block("table", headers=headers, rows=table)


def _run_link(run_dir: str) -> Link | str:
    """A link to the trial's report: relative in this folder, absolute in another one on
    this machine; text only on another machine (``host:/path``)."""
    if not run_dir or ":" in Path(run_dir).parts[0]:
        return run_dir
    return Link("report", f"{run_dir}/report.html")


def _states_table(rows: list[dict[str, Any]]) -> Block:
    other = [r for r in rows if r["state"] != "COMPLETE"]
    return Block(
        "table",
        headers=["trial", "state", "reason", "epochs"],
        rows=[[r["number"], r["state"], r["reason"], r["epochs"]] for r in other],
    )


def _summary(folder: Path, settings: Settings, rows: list[dict[str, Any]]) -> Section:
    from cnnlab.tuning.results import read_best

    best = read_best(folder)
    blocks = [
        Block(
            "p",
            f"Data: {settings.data}. Space: {settings.space_name}. Objective: "
            f"{', '.join(settings.objectives)}. Sampler {settings.sampler}, pruner "
            f"{settings.pruner}, {settings.epochs} epochs per trial, "
            f"{len(rows)} of {settings.trials} trials recorded.",
        ),
    ]
    if best is None:
        blocks.append(Block("p", "No trial completed, so there is no best configuration."))
    else:
        shown = ", ".join(f"{k} = {v:.4g}" for k, v in best["values"].items())
        blocks.append(Block("p", f"Best: trial {best['trial']} ({shown})."))
        blocks.append(Block("table", headers=["entry", "value"],
                            rows=[[k, v] for k, v in best["params"].items()]))  # fmt: skip
    blocks.append(Block("p", "Validation scores of a search are optimistic: the search chose "
                             "them. Judge the chosen setting on the test split, over seeds "
                             "(--retrain-best --seeds 3)."))  # fmt: skip
    return Section("summary", "Summary", blocks)


def write_html(
    folder: Path, study: optuna.Study, settings: Settings, rows: list[dict[str, Any]]
) -> Path:
    """Write ``tune.html`` with every plot, the top trials and the command to reproduce."""
    from plotly.offline import get_plotlyjs

    sections = [_summary(folder, settings, rows)]
    for id_, title, draw in _figures(study, settings):
        sections.append(Section(id_, title, [_plot_block(draw)]))
    sections.append(Section("top", f"Top {TOP} trials", [_top_table(rows, settings)]))
    sections.append(Section("other", "Pruned, failed and running trials", [_states_table(rows)]))
    command = settings.command or f"cnnlab tune {settings.data} --space {settings.space_name}"
    sections.append(Section("reproduce", "Reproduce", [Block("pre", command)]))
    head = f'<script type="text/javascript">{get_plotlyjs()}</script>'
    text = render_html(f"Tune: {folder.name}", sections, head=head)
    atomic_write_text(folder / HTML, text)
    return folder / HTML
