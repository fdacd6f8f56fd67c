"""Plots for 2 and 200 classes with Unicode names; the self-contained HTML report."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from cnnlab.evaluation import plots
from cnnlab.evaluation.metrics import compute_metrics
from cnnlab.evaluation.report import write_report

PNG = b"\x89PNG\r\n\x1a\n"
SECTIONS = {"data", "model", "config", "metrics", "plots", "mistakes", "timing", "diagnosis"}


def _names(k: int) -> list[str]:
    base = ["猫", "chien 🐶", "Ärger", "<script>alert(1)</script>", "a & b", "日本語のクラス名"]
    return [f"{base[i % len(base)]} {i}" for i in range(k)]


def _case(k: int, n: int = 300, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, size=n)
    probs = rng.dirichlet(np.ones(k), size=n)
    probs[np.arange(n), y] += 0.5  # better than chance, so the plots are not all empty
    return y, probs / probs.sum(axis=1, keepdims=True)


def _rows() -> list[dict[str, str]]:
    return [
        {
            "epoch": str(e),
            "train/loss": f"{1 / e:.3f}",
            "val/loss": f"{1.2 / e:.3f}",
            "train/accuracy": f"{1 - 0.5 / e:.3f}",
            "val/accuracy": f"{0.9 - 0.5 / e:.3f}",
            "train/macro_f1": "",
            "val/macro_f1": f"{0.85 - 0.5 / e:.3f}",
            "epoch_time_s": "1.5",
        }
        for e in range(1, 6)
    ]


@pytest.mark.parametrize("k", [2, 200])
def test_plots_write_pngs_for_2_and_200_unicode_classes(tmp_path, k):
    y, probs = _case(k)
    names = _names(k)
    m = compute_metrics(y, probs, names)
    written = [
        plots.plot_confusion_matrix(m["confusion_matrix"], names, tmp_path / "cm.png"),
        plots.plot_confusion_matrix(
            m["confusion_matrix"], names, tmp_path / "cmc.png", normalize=False
        ),
        plots.plot_per_class_f1(m["per_class"], tmp_path / "f1.png"),
        plots.plot_reliability(probs, y, tmp_path / "rel.png", bins=10),
    ]
    for path in written:
        assert path.read_bytes()[:8] == PNG


def test_learning_curves_and_mistake_gallery(tmp_path):
    lc = plots.plot_learning_curves(_rows(), tmp_path / "lc.png", best_epoch=4)
    rng = np.random.default_rng(0)
    images = [
        rng.integers(0, 256, (32, 32, 3), dtype=np.uint8),
        rng.integers(0, 256, (3, 32, 32), dtype=np.uint8),  # CHW
        rng.integers(0, 256, (1, 32, 32), dtype=np.uint8),
    ]  # greyscale CHW
    gallery = plots.plot_worst_mistakes(
        images, [0, 1, 2], [1, 2, 0], [0.9, 0.8, 0.7], ["猫", "🐶", "x"], tmp_path / "worst.png"
    )
    empty = plots.plot_worst_mistakes([], [], [], [], ["a"], tmp_path / "none.png")
    for path in (lc, gallery, empty):
        assert path.read_bytes()[:8] == PNG


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.sections: set[str] = set()
        self.imgs: list[str] = []
        self.urls: list[str] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.add(tag)
        if tag == "section":
            self.sections.add(attrs.get("id", ""))
        if tag == "img":
            self.imgs.append(attrs.get("src", ""))
        self.urls += [v for k, v in attrs.items() if k in {"src", "href"} and v]


def _report(tmp_path: Path, metrics: dict) -> Path:
    names = metrics["classes"] if "classes" in metrics else metrics["test"]["classes"]
    cm = metrics.get("confusion_matrix") or metrics["test"]["confusion_matrix"]
    pngs = {
        "confusion": plots.plot_confusion_matrix(cm, names, tmp_path / "plots" / "cm.png"),
        "curves": plots.plot_learning_curves(_rows(), tmp_path / "plots" / "lc.png", 4),
    }
    html_path, md_path = write_report(
        tmp_path,
        title="run <1>",
        summary={"train_time_s": 12.5},
        metrics=metrics,
        config={"data": {"root": "/data/猫"}, "model": {"name": "cnn"}},
        model_card={"architecture": "cnn", "classes": names, "input": {"img_size": 32}},
        data_report={"images": 300, "skipped": [{"path": "http://x/bad.png", "reason": "empty"}]},
        rows=_rows(),
        plots=pngs,
        mistakes=[{"path": "a/<b>.png", "true": names[0], "pred": names[1], "prob": 0.9}],
    )
    assert md_path.is_file() and "## Fit diagnosis" in md_path.read_text(encoding="utf-8")
    return html_path


@pytest.mark.parametrize("per_split", [False, True])
def test_report_is_self_contained_and_escaped(tmp_path, per_split):
    y, probs = _case(6, n=60)
    m = compute_metrics(y, probs, _names(6))
    html_path = _report(tmp_path, {"val": m, "test": m} if per_split else m)
    text = html_path.read_text(encoding="utf-8")
    parser = _Collector()
    parser.feed(text)
    assert parser.sections >= SECTIONS
    assert len(parser.imgs) == 2
    assert all(src.startswith("data:image/png;base64,") for src in parser.imgs)
    assert all(u.startswith(("data:", "#")) for u in parser.urls)  # nothing external
    assert "script" not in parser.tags  # the class name "<script>..." was escaped
    assert "&lt;script&gt;" in text and "日本語のクラス名" in text and "a/&lt;b&gt;.png" in text
    assert "Skipped files: 1" in text
    assert "Overfitting" in text or "close" in text  # the fit diagnosis is there
