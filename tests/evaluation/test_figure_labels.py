"""What the figures say: class names told apart, captions and titles inside the picture,
classes with no image marked as such, and a warning when a class name cannot be drawn.

Each figure is read back as matplotlib laid it out, just before it is saved (the real
``save_png`` still writes the PNG): tick labels, texts and their drawn extents.
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest

from cnnlab.evaluation import figure, plots
from cnnlab.evaluation.metrics import compute_metrics
from cnnlab.explain.embedding import plot_embedding
from cnnlab.explain.gallery import plot_cam_gallery
from cnnlab.studies import plots as study_plots
from cnnlab.studies.report import class_f1, mean_over_seeds

PREFIX = "Especie_de_ave_migratoria_del_norte_variante_"  # 45 characters
LONG = (
    [f"{PREFIX}{i:02d}" for i in range(25)]
    + [f"Ñandú común de la pampa húmeda — subespecie número {i:02d}" for i in range(20)]
    + [f"東京都立大学附属研究所の鳥類標本コレクション番号第三保管庫{i:02d}" for i in range(5)]
    + [f"서울대학교 생명과학부 조류 표본 컬렉션 번호 제삼 보관소 항목{i:02d}" for i in range(5)]
    # differ only in the middle: the default cut keeps the same two ends for both
    + [f"lake_{c}_birds_of_the_northern_shore_region" for c in "AB"]
)


@pytest.fixture
def drawn(monkeypatch):
    """Every figure saved in the test, laid out as it was drawn."""
    figures = []
    real = figure.save_png

    def spy(fig, path, *args, **kwargs):
        figures.append(fig)
        return real(fig, path, *args, **kwargs)

    for module in (figure, plots, study_plots):
        monkeypatch.setattr(module, "save_png", spy)
    return figures


def _ticks(ax, axis: str = "y") -> list[str]:
    return [t.get_text() for t in getattr(ax, f"get_{axis}ticklabels")()]


def test_short_labels_keep_both_ends_and_never_merge_two_names() -> None:
    labels = figure.short_labels(LONG)
    assert len(set(labels)) == len(LONG)
    assert labels[7].startswith("Especie") and labels[7].endswith("_07")
    assert all(len(a) <= 24 for a in labels[:-2])  # only the two that clashed grew


def test_matrix_and_f1_plots_draw_every_class_name_differently(tmp_path, drawn) -> None:
    k = len(LONG)
    y = np.repeat(np.arange(k), 2)
    probs = np.full((y.size, k), 0.1 / k)
    probs[np.arange(y.size), (y + 1) % k] += 0.9  # every image mistaken for the next class
    m = compute_metrics(y, probs, LONG)
    plots.plot_confusion_matrix(m["confusion_matrix"], LONG, tmp_path / "cm.png")
    plots.plot_per_class_f1(m["per_class"], tmp_path / "f1.png", m["confusion_matrix"])
    cm_axes, f1_axes = drawn[0].axes[0], drawn[1].axes[0]
    assert len(set(_ticks(cm_axes, "x"))) == len(set(_ticks(cm_axes, "y"))) == k
    assert len(set(_ticks(f1_axes))) == k


def _caption_boxes(fig) -> list:
    renderer = fig.canvas.get_renderer()
    return [t.get_window_extent(renderer) for t in fig.axes[0].texts]


def test_mistake_captions_fit_their_cell_with_long_and_cjk_names(tmp_path, drawn) -> None:
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (24, 24, 3), dtype=np.uint8) for _ in range(12)]
    true = [45, 50, 0, 25, 46, 51, 1, 26, 47, 55, 2, 27]  # Japanese, Korean, Latin, ...
    pred = [50, 45, 2, 26, 51, 46, 3, 27, 52, 56, 4, 28]
    plots.plot_worst_mistakes(images, true, pred, [0.5] * 12, LONG, tmp_path / "worst.png")
    fig = drawn[0]
    boxes = _caption_boxes(fig)
    width = fig.get_figwidth() * fig.dpi
    assert all(b.x0 >= 0 and b.x1 <= width for b in boxes)  # none runs off the picture
    assert not any(a.overlaps(b) for a, b in itertools.combinations(boxes, 2))
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert all(line.split(": ")[1].split(" (")[0] for t in texts for line in t.split("\n"))
    true_line, pred_line = texts[2].split("\n")  # Especie 00 mistaken for 02: still told apart
    assert true_line.endswith("_00") and "_02 (" in pred_line


@pytest.mark.parametrize("n", [1, 3])
def test_cam_gallery_title_is_never_cut_off(tmp_path, drawn, n) -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 24, 24, 3), dtype=np.uint8)
    captions = [f"true {LONG[i]}\npred {LONG[50 + i]} 0.93" for i in range(n)]
    title = "Grad-CAM (backbone.blocks.2) of the predicted class: one correct image per class"
    plot_cam_gallery(images, rng.random((n, 6, 6)), captions, tmp_path / "cam.png", title)
    fig = drawn[0]
    renderer = fig.canvas.get_renderer()
    width = fig.get_figwidth() * fig.dpi
    texts = [fig.axes[0].title, *fig.axes[0].texts]
    for box in (t.get_window_extent(renderer) for t in texts):
        assert box.x0 >= 0 and box.x1 <= width
    assert fig.axes[0].title.get_text().replace("\n", " ") == title


def test_a_class_with_no_image_is_marked_not_drawn_as_the_worst(tmp_path, drawn) -> None:
    names = ["alpha", "beta", "never_here", "absent_but_predicted"]
    y = np.array([0, 0, 1, 1])
    probs = np.array([[0.9, 0.1, 0, 0], [0.2, 0.8, 0, 0], [0, 1.0, 0, 0], [0, 0.2, 0, 0.8]])
    m = compute_metrics(y, probs, names)
    plots.plot_per_class_f1(m["per_class"], tmp_path / "f1.png", m["confusion_matrix"])
    ax = drawn[0].axes[0]
    labels = _ticks(ax)
    assert labels[-1] == "never_here (no image)"  # last, not at the top as the worst
    assert labels[0] == "absent_but_predicted (n=0)"  # predicted: a real F1 of 0
    assert len(ax.patches) == 3  # no bar for the class that was never measured
    assert "no image: not measured" in [t.get_text() for t in ax.texts]


def test_study_heatmap_marks_no_image_cells_apart_from_a_real_zero(tmp_path, drawn) -> None:
    # two seeds of one cell: class 2 has no image and is never predicted, class 3 fails
    runs = [(np.array([0, 1, 3]), np.array([0, 1, 0])), (np.array([0, 1, 3]), np.array([0, 0, 1]))]
    f1 = mean_over_seeds([class_f1(y, p, 4)[0] for y, p in runs])
    assert np.isnan(f1[2]) and f1[3] == 0.0
    classes = ["alpha", "beta", "delta_no_test", "rare"]
    study_plots.plot_f1_heatmap(f1[None, :], ["c1"], classes, tmp_path / "f1.png")
    texts = [t.get_text() for t in drawn[0].axes[0].texts]
    assert texts[2] == "no\nimage" and texts[3] == "0.00"
    assert "no test image" in drawn[0].axes[0].get_title()


def test_figure_details_epochs_legend_and_empty_bins(tmp_path, drawn) -> None:
    curves = {"a (c1)": [np.array([0.5, 0.6, 0.7])], "b (c2)": [np.array([0.4, 0.6, 0.8])]}
    study_plots.plot_cell_curves(curves, tmp_path / "curves.png")
    ticks = drawn[0].axes[0].get_xticks()
    assert all(float(t).is_integer() for t in ticks)  # epochs 1, 2, 3: no 1.25
    y = np.array([0, 1, 3] * 4)
    plot_embedding(np.random.default_rng(0).random((12, 8)), y, y, ["a", "b", "gone", "d"],
                   tmp_path / "emb.png")  # fmt: skip
    legend = [t.get_text() for t in drawn[1].axes[0].get_legend().get_texts()]
    assert legend == ["a", "b", "d"]  # "gone" has no image in this split
    probs = np.array([[0.95, 0.05], [0.9, 0.1], [0.6, 0.4], [0.55, 0.45]])
    plots.plot_reliability(probs, np.array([0, 1, 0, 0]), tmp_path / "rel.png", bins=10)
    top = drawn[2].axes[0]
    hatched = [p for p in top.patches if p.get_hatch()]
    assert len(hatched) == 10 - 3  # the bins with no image: 3 of 10 have one
    assert "empty bin (no image)" in [t.get_text() for t in top.get_legend().get_texts()]


def test_one_warning_names_the_class_names_no_font_can_draw(tmp_path, monkeypatch, capfd) -> None:
    monkeypatch.setattr(figure, "_warned", set())
    names = ["cat", "dog", "bird \u0378"]  # U+0378: unassigned, in no font
    cm = np.eye(3, dtype=int)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plots.plot_confusion_matrix(cm, names, tmp_path / "cm.png")
        plots.plot_confusion_matrix(cm, names, tmp_path / "cm2.png")
    assert not [w for w in caught if "lyph" in str(w.message)]  # the per-glyph flood stays off
    err = capfd.readouterr().err
    assert err.count("warning:") == 1
    assert "1 of 3 class names" in err and "font" in err
    assert figure.undrawable(["cat", "a\u200db"]) == []  # a joiner is not drawn: never counted
