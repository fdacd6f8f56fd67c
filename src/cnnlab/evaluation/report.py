"""The run report: one self-contained ``report.html`` (and ``report.md``) per evaluation.

The content is built here as sections (data summary, model card, resolved config, metrics,
plots, worst mistakes, timing, fit diagnosis) and rendered by :mod:`cnnlab.evaluation.render`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cnnlab.evaluation.intervals import beats_majority
from cnnlab.evaluation.metrics import diagnose_fit, macro_f1_note
from cnnlab.evaluation.render import Block, Section, plain, render_html, render_markdown
from cnnlab.runs import REPORT_HTML, REPORT_MD, atomic_write_text

_FEW_IMAGES = 10  # a class with fewer images in a split gets a note under the per-class table


def _percent(level: float) -> str:
    return f"{level * 100:g}%"


def _range(interval: list[float]) -> str:
    return f"{interval[0]:.4f} – {interval[1]:.4f}"


def _key_table(data: dict[str, Any]) -> Block:
    """A key/value table in words (:func:`plain`); numbers keep the tables' 4 decimals, and a
    row with no value (``None``, empty) is left out rather than shown blank."""
    rows = [
        [k, v if isinstance(v, int | float) and not isinstance(v, bool) else plain(v)]
        for k, v in data.items()
        if v is not None and v != "" and v != {} and v != []
    ]
    return Block("table", headers=["key", "value"], rows=rows)


def _data_section(data_report: dict[str, Any] | None) -> Section:
    section = Section("data", "Data summary")
    if not data_report:
        section.blocks.append(Block("p", "No data report was recorded."))
        return section
    scalars = {k: v for k, v in data_report.items() if not isinstance(v, dict | list)}
    if scalars:
        section.blocks.append(_key_table(scalars))
    for key, value in data_report.items():
        if isinstance(value, dict) and value:
            section.blocks.append(Block("p", key.replace("_", " ")))
            section.blocks.append(_key_table(value))
    skipped = data_report.get("skipped") or []
    section.blocks.append(Block("p", f"Skipped files: {len(skipped)}"))
    if skipped:
        rows = [
            [s.get("path", ""), s.get("reason", "")] if isinstance(s, dict) else [s, ""]
            for s in skipped
        ]
        section.blocks.append(Block("table", headers=["path", "reason"], rows=rows))
    return section


def _groups(metrics: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """One metrics dict, or several keyed by split name (``{"val": {...}, "test": {...}}``)."""
    if "accuracy" in metrics:
        return {"": metrics}
    return {k: v for k, v in metrics.items() if isinstance(v, dict) and "accuracy" in v}


def no_skill(metrics: dict[str, Any]) -> bool:
    """True when one split's accuracy is not above the majority baseline at 95%: the
    report's "No evidence that this model learned" verdict (False when not measurable)."""
    majority = metrics.get("majority_accuracy")
    n = int(metrics.get("num_samples") or 0)
    return majority is not None and n > 0 and not beats_majority(metrics["accuracy"], majority, n)


def _unlearned(metrics: dict[str, Any]) -> str:
    """The splits with the no-skill verdict, in words (``"val and test"``; ``"these images"``
    for a one-split evaluation), or ``""``: what the fit diagnosis must not contradict."""
    names = [name or "these images" for name, m in _groups(metrics).items() if no_skill(m)]
    return " and ".join(names)


def _metrics_section(all_metrics: dict[str, Any]) -> Section:
    section = Section("metrics", "Metrics")
    groups = _groups(all_metrics)
    if not groups:
        section.blocks.append(Block("p", "No metrics were computed."))
    for name, metrics in groups.items():
        if name:
            section.blocks.append(Block("p", f"Split: {name}"))
        section.blocks.extend(_metric_blocks(metrics))
    notes = [
        (name, m["macro_f1_ci_note"]) for name, m in groups.items() if m.get("macro_f1_ci_note")
    ]
    if notes:  # said once, however many splits it concerns
        which = "; ".join(f"{name}: {note}" if name else note for name, note in notes)
        section.blocks.append(Block("p", f"Macro F1 has no interval ({which}). A percentile "
                                    "bootstrap has nothing to vary at a perfect (or zero) score, "
                                    "and a zero-width interval would claim a certainty the images "
                                    "cannot give; the accuracy interval shows how much they leave "
                                    "open."))  # fmt: skip
    return section


def _top_k_is_everything(metrics: dict[str, Any]) -> bool:
    """Top-k accuracy with k >= the number of classes is 1 for any model: not a result."""
    return int(metrics.get("top_k") or 0) >= int(metrics.get("num_classes") or 10**9)


def _pruned_blocks(summary: dict[str, Any]) -> list[Block]:
    """A tune trial its pruner stopped (``summary["pruned"]``) says so first: otherwise its
    report reads like that of an ordinary, finished short run."""
    pruned = summary.get("pruned")
    if not isinstance(pruned, dict):
        return []
    value = pruned.get("value")
    at = f" ({pruned.get('metric')} {value:.4f})" if isinstance(value, int | float) else ""
    of = f" of {pruned['of_epochs']}" if pruned.get("of_epochs") else ""
    return [
        Block(
            "p",
            f"Pruned: a tune's {pruned.get('by', '')} pruner stopped this trial after epoch "
            f"{pruned.get('after_epoch', '?')}{of}, its validation score at that epoch{at} "
            "being behind the other trials'. These are the metrics of a shortened run, not "
            "of this setting trained in full.",
        )
    ]


def _metric_blocks(metrics: dict[str, Any]) -> list[Block]:
    keys = (
        "num_samples",
        "accuracy",
        "top_k_accuracy",
        "balanced_accuracy",
        "macro_f1",
        "macro_precision",
        "macro_recall",
        "weighted_f1",
        "micro_f1",
        "log_loss",
        "ece",
    )
    head: dict[str, Any] = {}
    for key in keys:
        if key not in metrics or (key == "top_k_accuracy" and _top_k_is_everything(metrics)):
            continue
        name = f"top_{metrics['top_k']}_accuracy" if key == "top_k_accuracy" else key
        head[name] = metrics[key]
        interval, level = metrics.get(f"{key}_ci"), _percent(metrics.get("ci_level", 0.95))
        if interval:  # the range the test images allow, right under the number
            head[f"{key} {level} CI"] = _range(interval)
        elif metrics.get(f"{key}_ci_note"):  # never a zero-width interval (see below the table)
            head[f"{key} {level} CI"] = "not estimable by bootstrap (see below)"
    blocks = [_key_table(head)]
    why = macro_f1_note(metrics)
    if why:  # the figure alone does not say which classes it covers
        blocks.append(Block("p", f"Not every class has an image in this split: {why}. "
                            "A score that is 0/0 for such a class is not measured: the table "
                            "below says \"no image\"."))  # fmt: skip
    majority = metrics.get("majority_accuracy")
    if no_skill(metrics):
        blocks.append(Block("p", f"No evidence that this model learned: its accuracy "
                            f"({metrics['accuracy']:.4f}) is not above always answering the most "
                            f"frequent class ({majority:.4f}) at 95%. Check the learning rate, "
                            "input normalisation and number of epochs before reading the "
                            "other figures."))  # fmt: skip
    per_class = metrics.get("per_class") or []
    if per_class:
        blocks.append(Block("p", "Per class"))
        blocks.extend(_few_images(per_class))
        blocks.append(
            Block(
                "table",
                headers=["class", "precision", "recall", "f1", "support"],
                rows=_per_class_rows(per_class, metrics.get("confusion_matrix")),
            )
        )
    confused = metrics.get("most_confused") or []
    if confused:
        blocks.append(Block("p", "Most confused pairs (true → predicted)"))
        blocks.append(
            Block(
                "table",
                headers=["true", "predicted", "count", "share of true class"],
                rows=[[c["true"], c["pred"], c["count"], c["share_of_true"]] for c in confused],
            )
        )
    return blocks


def _listed(rows: list[dict[str, Any]], counts: bool) -> str:
    names = ", ".join(f"{r['class']} ({r['support']})" if counts else r["class"] for r in rows[:8])
    return names + (f" and {len(rows) - 8} more" if len(rows) > 8 else "")


def _few_images(per_class: list[dict[str, Any]]) -> list[Block]:
    """Notes on the classes with 1 to 9 images (rough figures) and those with none (no
    figures at all): a class with no image listed among those whose figures "can move by a
    large step" read as if it had figures (explore I, finding 14)."""
    few = [r for r in per_class if 0 < r["support"] < _FEW_IMAGES]
    none = [r for r in per_class if r["support"] == 0]
    blocks = []
    if few:
        blocks.append(Block("p", f"Fewer than {_FEW_IMAGES} images in this split: "
                            f"{_listed(few, True)}. Their per-class figures can move by a large "
                            "step with a single image; read them as rough."))  # fmt: skip
    if none:
        blocks.append(Block("p", f"No image in this split: {_listed(none, False)}."))
    return blocks


def _per_class_rows(per_class: list[dict[str, Any]], cm: Any) -> list[list[Any]]:
    """Per-class table rows; a class with no image shows "no image" where its score is 0/0.

    Printing 0.0000 there read as "the model fails this class". A class with no image that
    was predicted keeps its precision and F1 of 0: those predictions were all wrong.
    """
    cols = [sum(col) for col in zip(*cm, strict=True)] if cm else [0] * len(per_class)
    rows = []
    for r, predicted in zip(per_class, cols, strict=True):
        if r["support"] > 0:
            rows.append([r["class"], r["precision"], r["recall"], r["f1"], r["support"]])
        else:
            scored = r["precision"] if predicted else "no image"
            f1 = r["f1"] if predicted else "no image"
            rows.append([r["class"], scored, "no image", f1, r["support"]])
    return rows


def _timing_section(summary: dict[str, Any], rows: list[dict[str, Any]]) -> Section:
    timing = {
        k: v
        for k, v in summary.items()
        if k.endswith(("_s", "_seconds")) or "time" in k or "duration" in k
    }
    epoch_times = []
    for row in rows:
        try:
            epoch_times.append(float(row.get("epoch_time_s", "")))
        except (TypeError, ValueError):
            continue
    if epoch_times:
        timing["epochs"] = len(epoch_times)
        timing["mean epoch time (s)"] = sum(epoch_times) / len(epoch_times)
        timing["total epoch time (s)"] = sum(epoch_times)
    if not timing:
        return Section("timing", "Timing", [Block("p", "No timing was recorded.")])
    return Section("timing", "Timing", [_key_table(timing)])


def _mistake_rows(mistakes: list[dict[str, Any]]) -> list[list[Any]]:
    return [
        [m.get("path", m.get("index", "")), m.get("true", ""), m.get("pred", ""), m.get("prob", "")]
        for m in mistakes
    ]


def _mistakes_section(mistakes: dict[str, list[dict[str, Any]]], limit: int | None) -> Section:
    """One table per split (``""``: the report's only one), at most ``limit`` rows each.

    One table of val's and test's mistakes together, with no word of which split each row
    came from, read as one list longer than ``eval.worst_mistakes`` (finding 7).
    """
    section = Section("mistakes", "Worst mistakes")
    for split, rows in mistakes.items():
        rows = rows[:limit] if limit is not None else rows
        if split:
            shown = f"{len(rows)} most confident" if rows else "no mistakes"
            section.blocks.append(Block("p", f"Split: {split} ({shown})"))
        if rows:
            headers = ["file", "true", "predicted", "probability"]
            section.blocks.append(Block("table", headers=headers, rows=_mistake_rows(rows)))
        elif not split:
            section.blocks.append(Block("p", "No mistakes listed."))
    if not mistakes:
        section.blocks.append(Block("p", "No mistakes listed."))
    return section


def _mistake_limit(config: dict[str, Any] | None) -> int | None:
    """``eval.worst_mistakes`` of the run's config: the most rows per split (None: unknown)."""
    value = ((config or {}).get("eval") or {}).get("worst_mistakes")
    return value if isinstance(value, int) and value >= 0 else None


def build_sections(
    *,
    summary: dict[str, Any],
    metrics: dict[str, Any],
    config: dict[str, Any] | None,
    model_card: dict[str, Any] | None,
    data_report: dict[str, Any] | None,
    rows: list[dict[str, Any]],
    plots: dict[str, Path],
    mistakes: list[dict[str, Any]] | None,
    caution: str = "",
) -> list[Section]:
    """The report's content, in reading order, independent of the output format.

    ``caution`` is said first, above the numbers it qualifies."""
    import yaml

    card = {k: v for k, v in (model_card or {}).items() if k != "classes"}
    if model_card and "classes" in model_card:
        card["classes"] = f"{len(model_card['classes'])}: " + ", ".join(model_card["classes"])
    per_split = (
        {name: g.get("worst_mistakes") or [] for name, g in _groups(metrics).items()}
        if mistakes is None
        else {"": mistakes}
    )
    from cnnlab.paths import shareable_config

    config = shareable_config(config) if config else config  # no folders of the user's disk
    config_text = yaml.safe_dump(config, allow_unicode=True, sort_keys=False) if config else ""
    best = summary.get("best_epoch")
    # Results first (what a reader opens the report for), then how they were obtained.
    results = _metrics_section(metrics)
    results.blocks[:0] = _pruned_blocks(summary)
    if caution:
        results.blocks.insert(0, Block("p", f"Caution: {caution}"))
    return [
        results,
        Section(
            "diagnosis",
            "Fit diagnosis",
            [Block("p", diagnose_fit(rows, best, summary.get("monitor"), _unlearned(metrics)))],
        ),
        Section(
            "plots",
            "Plots",
            [Block("img", name, path=Path(p)) for name, p in plots.items() if Path(p).is_file()],
        ),
        _mistakes_section(per_split, _mistake_limit(config)),
        _timing_section(summary, rows),
        _data_section(data_report),
        Section(
            "model", "Model card", [_key_table(card) if card else Block("p", "No model card.")]
        ),
        Section(
            "config",
            "Resolved configuration",
            [Block("pre", config_text or "No configuration recorded.")],
        ),
    ]


def write_report(
    folder: str | Path,
    *,
    title: str,
    summary: dict[str, Any] | None = None,
    metrics: dict[str, Any],
    config: dict[str, Any] | None = None,
    model_card: dict[str, Any] | None = None,
    data_report: dict[str, Any] | None = None,
    rows: list[dict[str, Any]] | None = None,
    plots: dict[str, Path] | None = None,
    mistakes: list[dict[str, Any]] | None = None,
    caution: str = "",
) -> tuple[Path, Path]:
    """Write ``report.html`` (self-contained) and ``report.md`` into ``folder``.

    Sections: metrics (with per-class table), a plain-words fit diagnosis, plots, worst
    mistakes, timing, then the data summary, model card and resolved config. ``caution`` (one
    sentence, such as "these are the run's own validation images") opens the metrics.

    Example:
        >>> write_report("runs/cnn-1", title="cnn-1", metrics=m, plots=p)  # doctest: +SKIP
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    sections = build_sections(
        summary=summary or {},
        metrics=metrics,
        config=config,
        model_card=model_card,
        data_report=data_report,
        rows=rows or [],
        plots=plots or {},
        mistakes=mistakes,
        caution=caution,
    )
    html_path, md_path = folder / REPORT_HTML, folder / REPORT_MD
    atomic_write_text(html_path, render_html(title, sections))
    atomic_write_text(md_path, render_markdown(title, sections, folder))
    return html_path, md_path
