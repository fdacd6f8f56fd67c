"""The report's explain figures: which images the galleries pick, the 2-D embedding."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.decomposition import PCA
from tests.evaluation.conftest import build_run

from cnnlab.explain.embedding import pca_solver, project
from cnnlab.explain.gallery import correct_rows, report_figures
from cnnlab.predict import Predictor


def test_correct_gallery_takes_the_most_confident_hit_per_class() -> None:
    y = np.array([0, 0, 1, 1, 2])
    probs = np.array(
        [[0.6, 0.3, 0.1], [0.9, 0.05, 0.05], [0.5, 0.4, 0.1], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1]]
    )
    assert correct_rows(y, probs) == [1, 3]  # class 2 has no correct image: left out
    assert correct_rows(y, probs, limit=1) == [1]


def test_projection_methods_and_tiny_inputs() -> None:
    rng = np.random.default_rng(0)
    feats = np.concatenate([rng.normal(0, 1, (20, 8)), rng.normal(6, 1, (20, 8))])
    for method, name in (("pca", "PCA"), ("tsne", "t-SNE")):
        xy, used = project(feats, method)
        assert xy.shape == (40, 2) and used == name and np.isfinite(xy).all()
        # the two blobs stay apart along some axis
        gap = np.abs(xy[:20].mean(axis=0) - xy[20:].mean(axis=0)).max()
        assert gap > xy[:20].std(axis=0).max()
    assert project(feats[:2], "tsne")[0].shape == (2, 2)
    assert project(feats[:, :1], "pca")[0].shape == (40, 2)


def test_pca_takes_the_cheaper_exact_solver_and_both_give_the_same_map() -> None:
    # wider than tall (the demo's 296 test images of EfficientNet-Lite0's 1280 features): the
    # covariance's eigenvectors cost ~10x an SVD there, 15 s of a frozen run on a busy CPU
    assert pca_solver(296, 1280) == "full"
    assert pca_solver(300, 256) == "covariance_eigh"
    assert pca_solver(10, 4096) == "auto"
    feats = np.random.default_rng(1).normal(0, 1, (12, 40)) * np.arange(1, 41)
    xy, _ = project(feats, "pca")
    ref = PCA(n_components=2, svd_solver="covariance_eigh").fit_transform(feats)
    assert np.allclose(np.abs(xy), np.abs(ref), atol=1e-8)  # the same axes, up to sign


def test_report_figures_on_a_run(tmp_path) -> None:
    run = build_run(tmp_path, model="tiny_cnn")
    p = Predictor(run)
    files = sorted((run.parent.parent / "data").rglob("*.png"))
    x = torch.from_numpy(np.stack([p.load(f) for f in files])).permute(0, 3, 1, 2).contiguous()
    y = np.array([p.classes.index(f.parent.name) for f in files])
    probs = p.predict_arrays(x).numpy()
    wrong = np.flatnonzero(probs.argmax(axis=1) != y)[:5].tolist()
    out = report_figures(p, x, y, probs, tmp_path / "plots", "test", wrong, "pca")
    expected = {"test_embedding"} | ({"test_gradcam_mistakes"} if wrong else set())
    assert expected <= set(out) and all(path.stat().st_size > 1000 for path in out.values())
    assert "test_embedding" not in report_figures(p, x, y, probs, tmp_path, "t", [], "none")


def test_run_reports_show_cams_and_embedding_unless_turned_off(tiny_folder, tmp_path) -> None:
    import cnnlab

    common = {"epochs": 1, "runs_dir": tmp_path / "runs", "batch_size": 16}
    run = cnnlab.train(tiny_folder, **common)
    plots = {p.stem for p in (run.path / "plots").glob("*.png")}
    assert "test_embedding" in plots and plots & {"test_gradcam_mistakes", "test_gradcam_correct"}
    html = (run.path / "report.html").read_text(encoding="utf-8")
    assert "test_embedding" in html and "test_gradcam_" in html
    off = cnnlab.train(tiny_folder, eval__explain=False, **common)
    assert not any(
        "gradcam" in p.name or "embedding" in p.name for p in (off.path / "plots").iterdir()
    )
