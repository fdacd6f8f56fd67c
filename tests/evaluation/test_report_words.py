"""What the run report says in words: worst mistakes per split, the fit diagnosis next to the
no-skill verdict, readable tables (exploratory report I, findings 7, 8 and 14)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cnnlab.evaluation.evaluate import evaluate_predictions
from cnnlab.evaluation.report import write_report

LONG = "Especie_de_ave_migratoria_del_norte_variante_07"


def _section(markdown: str, title: str) -> str:
    """The text of one ``## title`` section of report.md."""
    return markdown.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def _split(tmp_path: Path, name: str, n: int, seed: int) -> dict:
    """One split's evaluation: 2 classes, about half the images wrong, long unicode paths."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    probs = rng.dirichlet([1.0, 1.0], size=n)
    paths = [f"{name}/{LONG}/Ñandú común {i:03d}.png" for i in range(n)]
    return evaluate_predictions(
        y, probs, ["cat", LONG], tmp_path / "plots", paths=paths, prefix=name, worst=16
    )


def test_worst_mistakes_are_one_table_per_split_within_the_limit(tmp_path):
    metrics = {"val": _split(tmp_path, "val", 30, 0), "test": _split(tmp_path, "test", 30, 1)}
    assert all(len(m["worst_mistakes"]) > 5 for m in metrics.values())
    _, md = write_report(
        tmp_path, title="t", metrics=metrics, config={"eval": {"worst_mistakes": 5}}
    )
    text = _section(md.read_text(encoding="utf-8"), "Worst mistakes")
    val, test = text.split("Split: test (5 most confident)")
    assert "Split: val (5 most confident)" in val
    for part, split in ((val, "val"), (test, "test")):
        rows = [line for line in part.splitlines() if line.startswith(f"| {split}/")]
        assert len(rows) == 5, part  # eval.worst_mistakes per split, each under its own name
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    # long paths and names may wrap instead of widening the page; numbers keep their cell
    assert f'<td class="long">val/{LONG}/Ñandú común' in html
    assert "<td>0." in html


def test_a_split_without_mistakes_says_so(tmp_path):
    y = np.array([0, 1, 0, 1])
    probs = np.eye(2)[y] * 0.8 + 0.1
    perfect = evaluate_predictions(y, probs, ["a", "b"], tmp_path / "p", prefix="val")
    mixed = _split(tmp_path, "test", 10, 2)
    _, md = write_report(tmp_path, title="t", metrics={"val": perfect, "test": mixed})
    text = _section(md.read_text(encoding="utf-8"), "Worst mistakes")
    assert "Split: val (no mistakes)" in text
    assert f"Split: test ({len(mixed['worst_mistakes'])} most confident)" in text


@pytest.mark.parametrize("given", [None, []])
def test_an_evaluation_lists_its_one_split_without_a_heading(tmp_path, given):
    m = _split(tmp_path, "test", 10, 3)
    mistakes = m["worst_mistakes"] if given is None else given
    _, md = write_report(tmp_path, title="t", metrics=m, mistakes=mistakes)
    text = _section(md.read_text(encoding="utf-8"), "Worst mistakes")
    assert "Split:" not in text
    assert ("No mistakes listed." in text) == (not mistakes)


def _history(train: list[float], val: list[float]) -> list[dict[str, str]]:
    """metrics.csv rows: the gap of explore I finding 8 (train at chance, val far below)."""
    return [
        {
            "epoch": str(e),
            "train/accuracy": str(t),
            "val/accuracy": str(v),
            "val/loss": str(0.7 + 0.1 * e),
            "val/macro_f1": "0.2105",
        }
        for e, (t, v) in enumerate(zip(train, val, strict=True), start=1)
    ]


def _one_class_answers(tmp_path: Path, name: str, cats: int, dogs: int) -> dict:
    """A model that answers "cat" for every image of a split with more dogs than cats."""
    y = np.array([0] * cats + [1] * dogs)
    probs = np.tile([0.55, 0.45], (y.size, 1))
    return evaluate_predictions(y, probs, ["cat", "dog"], tmp_path / "p", prefix=name)


def test_the_fit_diagnosis_never_diagnoses_a_gap_of_a_model_that_did_not_learn(tmp_path):
    rows = _history([0.579, 0.70, 0.773], [0.267, 0.267, 0.267])
    metrics = {"val": _one_class_answers(tmp_path, "val", 4, 11),
               "test": _one_class_answers(tmp_path, "test", 5, 11)}  # fmt: skip
    _, md = write_report(
        tmp_path, title="t", metrics=metrics, rows=rows,
        summary={"best_epoch": 1, "monitor": "val/macro_f1"},
    )  # fmt: skip
    text = md.read_text(encoding="utf-8")
    assert "No evidence that this model learned" in _section(text, "Metrics")
    diagnosis = " ".join(_section(text, "Fit diagnosis").split())
    assert "Best epoch 1 of 3 by val/macro_f1" in diagnosis
    assert "On val and test the model is not above always answering the most frequent" in diagnosis
    assert "did not learn beyond the majority class" in diagnosis and "lr-find" in diagnosis
    for claim in ("Overfitting", "overfit", "Underfitting", "augmentation", "memorised"):
        assert claim not in diagnosis


def test_the_same_gap_of_a_model_that_learned_is_still_called_overfitting(tmp_path):
    rows = _history([0.579, 0.90, 0.99], [0.267, 0.30, 0.31])
    y = np.array([0] * 30 + [1] * 30)
    probs = np.eye(2)[y] * 0.8 + 0.1
    val = evaluate_predictions(y, probs, ["cat", "dog"], tmp_path / "p", prefix="val")
    _, md = write_report(tmp_path, title="t", metrics={"val": val}, rows=rows,
                         summary={"best_epoch": 2, "monitor": "val/macro_f1"})  # fmt: skip
    diagnosis = _section(md.read_text(encoding="utf-8"), "Fit diagnosis")
    assert "Overfitting" in diagnosis and "majority class" not in diagnosis


def test_data_timing_and_card_tables_read_as_words(tmp_path):
    """No Python or JSON repr, no empty row (explore I, finding 14)."""
    y = np.array([0] * 8 + [1] * 8)
    probs = np.eye(3)[y] * 0.7 + 0.1
    m = evaluate_predictions(y, probs, ["cat", "dog", "rare"], tmp_path / "p", prefix="test")
    data_report = {
        "root": "two", "manifest": None, "layout": "flat", "num_images": 89,
        "image_stats": {"width": {"min": 24, "median": 24.0, "max": 24}, "modes": {"RGB": 89}},
        "counts_per_split": {"train": {"cat": 48, "dog": 41}},
        "audit": {"exact_duplicates": 0, "duplicate_groups": []}, "skipped": [],
    }  # fmt: skip
    card = {"architecture": "cnn", "weights_source": None, "pretrained": False,
            "input": {"img_size": 24, "mean": [0.38843, 0.5081, 0.51853]}}  # fmt: skip
    _, md = write_report(
        tmp_path, title="t", metrics={"test": m}, data_report=data_report, model_card=card,
        summary={"stopped_by_time_budget": False, "train_time_s": 59.51},
    )  # fmt: skip
    text = md.read_text(encoding="utf-8")
    data, timing = _section(text, "Data summary"), _section(text, "Timing")
    model = _section(text, "Model card")
    assert "| width | min 24, median 24, max 24 |" in data and "| modes | RGB 89 |" in data
    assert "| train | cat 48, dog 41 |" in data
    assert "| stopped_by_time_budget | no |" in timing and "| train_time_s | 59.5100 |" in timing
    assert "| input | img_size 24, mean (0.3884, 0.5081, 0.5185) |" in model
    assert "| pretrained | no |" in model
    for empty in ("manifest", "weights_source", "duplicate_groups"):
        assert f"| {empty} |" not in text
    for repr_ in ("{", "[", "False", "True", "None"):
        assert repr_ not in data + timing + model


def test_top_k_over_every_class_is_no_headline_and_no_image_classes_are_apart(tmp_path):
    y = np.array([0] * 8 + [1] * 3)
    probs = np.eye(3)[y] * 0.7 + 0.1
    m = evaluate_predictions(y, probs, ["alpha", "beta", "rare_two_total"], tmp_path / "p")
    assert m["top_k"] == 3 and m["top_k_accuracy"] == 1.0  # k capped at K: always 1
    _, md = write_report(tmp_path, title="t", metrics=m)
    text = " ".join(_section(md.read_text(encoding="utf-8"), "Metrics").split())
    assert "top_3_accuracy" not in text
    assert "Fewer than 10 images in this split: alpha (8), beta (3). Their" in text
    assert "No image in this split: rare_two_total." in text
    many = np.arange(40) % 10
    ten = evaluate_predictions(many, np.eye(10)[many] * 0.5 + 0.05, list("abcdefghij"),
                               tmp_path / "q")  # fmt: skip
    _, md = write_report(tmp_path / "ten", title="t", metrics=ten)
    assert "| top_5_accuracy | 1.0000 |" in md.read_text(encoding="utf-8")  # k < K: a result
