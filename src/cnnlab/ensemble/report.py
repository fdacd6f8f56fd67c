"""An ensemble's metrics, plots and report: each member beside the ensemble, and whether the
ensemble's gain over the best member is a real difference.

The best member is the one with the highest *val* accuracy, then val macro F1 (choosing it on
test would flatter the member). Members often tie on a few dozen val images; the tie is broken
by the lower val log loss, then by name, so the choice never depends on the order the members
were given in, and the report names the tied members and the rule that chose. The comparison
is made on test with the paired tests of :mod:`cnnlab.studies.stats`: a bootstrap CI of the
accuracy difference over test images and an exact McNemar test on the same images.
The words never claim more than the two agree on.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab import runs
from cnnlab.ensemble.members import LazyImages, Member, Scores
from cnnlab.evaluation.render import Block, Section


def _images(member: Member, paths: list[str]) -> LazyImages | None:
    """The dataset's images as the first member stores them, for the mistakes gallery."""
    from cnnlab.data.image import load_image, to_array
    from cnnlab.errors import ImageLoadError

    root = (member.run.config.get("data") or {}).get("root")
    if not root or not Path(root).is_dir():
        return None  # the data moved: the report lists the mistakes without pictures
    inp = member.run.model_card["input"]
    side, channels = int(inp["resize"]), int(inp["channels"])

    def get(i: int) -> np.ndarray:
        try:
            return to_array(load_image(Path(root) / paths[i], channels=channels), side)
        except ImageLoadError:  # gone since training: a grey panel, the table still lists it
            return np.full((side, side, channels), 127, dtype=np.uint8)

    return LazyImages(get)


def evaluate_splits(
    path: Path, split: str, scores: Scores, probs: np.ndarray, members: list[Member]
) -> dict[str, Any]:
    """predictions/{split}.csv + {split}_probs.npy, metrics and plots of the ensemble."""
    import torch

    from cnnlab.evaluation.evaluate import evaluate_predictions, write_predictions

    classes = members[0].classes
    table = path / runs.PREDICTIONS / f"{split}.csv"
    table.parent.mkdir(exist_ok=True)
    write_predictions(table, scores.paths, scores.labels.tolist(), torch.from_numpy(probs), classes)
    runs.write_npy(runs.probs_file(path, split), probs.astype(np.float32))
    return evaluate_predictions(
        scores.labels,
        probs,
        classes,
        out_dir=path / runs.PLOTS,
        prefix=split,
        images=_images(members[0], scores.paths),
        paths=scores.paths,
    )


def _val(m: Member) -> dict[str, Any]:
    return (m.summary.get("metrics") or {}).get("val") or {}


def _val_score(m: Member) -> tuple[float, float]:
    val = _val(m)
    return float(val.get("accuracy") or 0.0), float(val.get("macro_f1") or 0.0)


def _log_loss(m: Member) -> float:
    loss = _val(m).get("log_loss")
    return math.inf if loss is None or math.isnan(float(loss)) else float(loss)


def best_member(members: list[Member]) -> tuple[Member, list[Member], str]:
    """The member with the highest val accuracy (then val macro F1), the others it tied with
    on both, and the rule that chose among the tied: ``""`` (no tie), ``"val log loss"``
    (the lowest) or ``"name"`` (log loss tied too). Never the first given: with tied members,
    taking the first made the gain depend on the order of the command's arguments."""
    top = max(_val_score(m) for m in members)
    tied = [m for m in members if _val_score(m) == top]
    tied.sort(key=lambda m: (_log_loss(m), m.name, str(m.run.path)))
    best, others = tied[0], tied[1:]
    if not others:
        return best, [], ""
    rule = "name" if _log_loss(others[0]) == _log_loss(best) else "val log loss"
    return best, others, rule


def gain_over_best(
    members: list[Member], ensemble_probs: np.ndarray, split: str = "test"
) -> dict[str, Any]:
    """Ensemble minus best member (chosen on val) on ``split``: difference, CI, p, verdict."""
    from cnnlab.studies.stats import mcnemar, paired_bootstrap, verdict

    best, tied, rule = best_member(members)
    y = best.scores[split].labels
    ours, theirs = ensemble_probs.argmax(axis=1), best.scores[split].probs.argmax(axis=1)
    diff = paired_bootstrap(y, ours, theirs)
    test = mcnemar(y, ours, theirs)
    return {
        "best_member": best.name,
        "tied_on_val": [m.name for m in tied],
        "tie_broken_by": rule,
        "split": split,
        "accuracy_diff": diff.diff,
        "ci_low": diff.ci_low,
        "ci_high": diff.ci_high,
        "mcnemar_p": test.pvalue,
        "ensemble_only_right": test.a_only,
        "member_only_right": test.b_only,
        "verdict": verdict(diff.ci_low, diff.ci_high, test.pvalue),
    }


def _chosen(gain: dict[str, Any]) -> str:
    """``chosen on val``, and when members tied on val, with whom and what chose."""
    tied = gain.get("tied_on_val") or []
    if not tied:
        return "chosen on val"
    rule = gain.get("tie_broken_by")
    how = (
        "the lowest val log loss of them"
        if rule == "val log loss"
        else "the same val log loss too, so the first by name"
    )
    return (
        f"chosen on val: it tied on val accuracy and macro F1 with {', '.join(tied)}, and has {how}"
    )


def _sentence(gain: dict[str, Any]) -> str:
    d = gain
    span = f"{d['accuracy_diff']:+.4f} (95% CI {d['ci_low']:+.4f} to {d['ci_high']:+.4f})"
    head = f"On {d['split']}, ensemble minus the best member ({d['best_member']}, {_chosen(d)})"
    tail = f"McNemar p = {d['mcnemar_p']:.3g}"
    if d["verdict"] == "better":
        return f"{head}: {span}; {tail}. The ensemble is better, beyond chance at 95%."
    if d["verdict"] == "worse":
        return f"{head}: {span}; {tail}. The ensemble is worse, beyond chance at 95%."
    return (
        f"{head}: {span}; {tail}. Not distinguishable at 95%: this test set cannot tell "
        "the ensemble from its best member."
    )


def _row(name: str, model: Any, mode: Any, weight: Any, metrics: dict[str, Any]) -> list[Any]:
    val, test = metrics.get("val") or {}, metrics.get("test") or {}
    return [name, model, mode, weight, val.get("accuracy"), test.get("accuracy"),
            test.get("macro_f1"), test.get("log_loss")]  # fmt: skip


def members_section(
    card: dict[str, Any], summary: dict[str, Any], members: list[Member], gain: dict | None
) -> Section:
    """Each member's val/test numbers beside the ensemble's, then the gain in words."""
    rows = [
        _row(m.name, m.summary.get("model"), m.summary.get("mode"), c["weight"],
             m.summary.get("metrics") or {})
        for m, c in zip(members, card["members"], strict=True)
    ]  # fmt: skip
    # the members' weights sum to 1; the ensemble's own row has none to show
    rows.append(_row("ensemble", "ensemble", card["method"], "", summary["metrics"]))
    headers = ["run", "model", "mode", "weight", "val acc", "test acc", "test F1", "test loss"]
    fitted = card.get("fitted_on")
    how = f"Weights fitted on {fitted}; test never used." if fitted else "Equal weights."
    kept = only_member(card)
    blocks = [Block("p", only_member_sentence(card))] if kept else []
    blocks += [Block("p", how), Block("table", headers=headers, rows=rows)]
    if gain is not None and gain.get("best_member") == kept:  # never the run against itself
        blocks.append(Block("p", f"{kept} is also the best member ({_chosen(gain)}), so "
                                 "there is no gain over it to measure."))  # fmt: skip
    elif gain is not None:
        blocks.append(Block("p", _sentence(gain)))
    return Section("members", "Ensemble vs members", blocks)


def only_member(card: dict[str, Any]) -> str | None:
    """The one candidate selection kept when it dropped all the others (greedy can), else
    None: such an "ensemble" is that run and predicts exactly as it does."""
    used = [m for m in card["members"] if m["weight"] > 0]
    return used[0]["name"] if len(used) == 1 and len(card["members"]) > 1 else None


def only_member_sentence(card: dict[str, Any]) -> str:
    """What the report and the command line say when :func:`only_member` names a run."""
    name = only_member(card)
    return (
        f"{card['method'].capitalize()} selection on val kept only {name}: adding any other "
        f"candidate did not raise val accuracy, so there is no ensemble; this folder predicts "
        f"exactly as {name} does."
    )


def title(card: dict[str, Any]) -> str:
    """``greedy ensemble of 2 runs (chosen from 3 candidates)``: the members that predict
    (weight > 0) and, when selection dropped some, how many it chose from. The report and
    the command line both say this, so they agree."""
    candidates = len(card["members"])
    used = sum(1 for m in card["members"] if m["weight"] > 0)
    text = f"{card['method']} ensemble of {used} run{'' if used == 1 else 's'}"
    return text if used == candidates else f"{text} (chosen from {candidates} candidates)"


def write_ensemble_report(
    path: Path,
    card: dict[str, Any],
    summary: dict[str, Any],
    results: dict[str, Any],
    members: list[Member],
    gain: dict[str, Any] | None,
) -> Path:
    """``report.html`` + ``report.md``: the run report's sections plus the member comparison."""
    from cnnlab.evaluation.render import render_html, render_markdown
    from cnnlab.evaluation.report import build_sections

    data_report = path / runs.DATA_REPORT
    sections = build_sections(
        summary=summary,
        metrics=results,
        config=runs.Run(path).config,
        model_card=card,
        data_report=runs.read_json(data_report) if data_report.is_file() else None,
        rows=[],
        plots={p.stem: p for p in sorted((path / runs.PLOTS).glob("*.png"))},
        mistakes=None,
    )
    sections = [s for s in sections if s.id != "diagnosis"]  # no epochs: nothing to diagnose
    sections.insert(0, members_section(card, summary, members, gain))
    head = f"{path.name}: {title(card)}"
    runs.atomic_write_text(path / runs.REPORT_HTML, render_html(head, sections))
    runs.atomic_write_text(path / runs.REPORT_MD, render_markdown(head, sections, path))
    return path / runs.REPORT_HTML
