"""A 2-D map of what the network computed: penultimate features, t-SNE or PCA (scikit-learn).

The features are the backbone's pooled output, the vector the classifier head reads. Points
are coloured by true class; mistakes are drawn as crosses in the colour of their true class,
so a cross inside another class's cloud is an image the network saw as that class.

PCA is the default: it costs milliseconds and is deterministic. t-SNE shows clusters better
but costs seconds even for a few hundred images (``bench/bench_explain.py``), so it is opt-in
(``eval.embedding=tsne``). The method used is written in the plot's title.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

TSNE_MAX = 2000  # images; beyond this the embedding is PCA
_BATCH = 256  # images per feature pass
_EIGH_MAX_FEATURES = 2048  # up to this many features PCA eigen-decomposes the covariance


def features(predictor: Any, images_u8: torch.Tensor) -> np.ndarray:
    """Penultimate (backbone) features ``(N, F)`` with the run's eval preprocessing."""
    from cnnlab.engine.features import compute_features

    model = predictor.model
    feats = compute_features(
        model.backbone, images_u8, predictor.transform, _BATCH, device=predictor.device
    )
    return feats.numpy().astype(np.float64)


def project(feats: np.ndarray, method: str = "pca", seed: int = 0) -> tuple[np.ndarray, str]:
    """``(N, 2)`` coordinates and the method used (``PCA`` or ``t-SNE``).

    ``tsne`` runs on at most 50 PCA dimensions (the usual speed-up) and falls back to PCA
    below 10 or above :data:`TSNE_MAX` images.
    """
    from sklearn.decomposition import PCA

    n = len(feats)
    if n < 3:
        return np.zeros((n, 2)), "no projection (fewer than 3 images)"
    dims = min(50 if method == "tsne" else 2, n, feats.shape[1])
    solver = pca_solver(n, feats.shape[1])
    reduced = PCA(n_components=dims, svd_solver=solver, random_state=seed).fit_transform(feats)
    if method != "tsne" or n > TSNE_MAX or n < 10:
        return np.pad(reduced[:, :2], ((0, 0), (0, max(0, 2 - dims)))), "PCA"
    from sklearn.manifold import TSNE

    perplexity = float(min(30, (n - 1) // 3))
    tsne = TSNE(2, perplexity=perplexity, init="pca", random_state=seed, max_iter=500)
    return tsne.fit_transform(reduced), "t-SNE"


def pca_solver(n: int, f: int) -> str:
    """The exact PCA solver that is cheaper for ``n`` images of ``f`` features.

    The covariance's eigenvectors give the same components as a full SVD (to float rounding)
    but cost ~f**3: ~5x faster for a few hundred images of a few hundred features, ~10x slower
    for 296 images of EfficientNet-Lite0's 1280 (the demo's test split), where the SVD of the
    ``(n, f)`` matrix costs ~n**2 * f.
    """
    if f <= min(n, _EIGH_MAX_FEATURES):
        return "covariance_eigh"
    return "full" if f <= _EIGH_MAX_FEATURES else "auto"


def plot_embedding(
    feats: np.ndarray,
    y: np.ndarray,
    pred: np.ndarray,
    classes: list[str],
    path: Path,
    method: str = "pca",
) -> Path:
    """Scatter of ``feats`` projected to 2-D (``pca`` or ``tsne``) by true class; mistakes
    as crosses in their true class's colour. The legend lists the classes with an image here
    (a class absent from the split has no point to name); colours follow the label order, so
    a class keeps its colour across splits."""
    from cnnlab.evaluation.figure import new_figure, save_png, short_labels, style, warn_undrawable

    xy, used = project(feats, method)
    wrong = pred != y
    present = [k for k in range(len(classes)) if (y == k).any()]  # the legend lists only these
    legend = len(present) <= 20
    names = short_labels(classes, 20)
    warn_undrawable(classes)
    with style():
        # fixed geometry (no layout engine, no tight crop: each lays the texts out again);
        # the legend sits right of the points, so it never hides any
        fig = new_figure(8.4 if legend else 7.0, 5.5)
        ax = fig.add_axes((0.02, 0.02, 0.8 if legend else 0.96, 0.9))
        cmap = _colours(len(classes))
        for k in present:
            ok, bad = (y == k) & ~wrong, (y == k) & wrong
            ax.scatter(*xy[ok].T, s=10, color=cmap[k], label=names[k], alpha=0.8)
            ax.scatter(*xy[bad].T, s=36, color=cmap[k], marker="x", linewidths=1.4)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(
            f"{used} of penultimate features: {len(y)} images, "
            f"{int(wrong.sum())} mistakes (x, coloured by true class)",
            fontsize=9,
            y=1.0,
        )
        if legend:
            ax.legend(fontsize=7, markerscale=1.5, loc="upper left", bbox_to_anchor=(1.0, 1.0),
                      frameon=False)  # fmt: skip
        return save_png(fig, path)


def _colours(k: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if k <= 10 else "tab20" if k <= 20 else "turbo"]
    return [cmap(i if k <= 20 else i / max(k - 1, 1)) for i in range(k)]
