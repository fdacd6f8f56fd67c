"""Explanations: a CAM against a plain prediction, and the report's explain figures.

Side by side in one run, on a finished default-``cnn`` run (32 px):
- one image and a batch of 64: ``predict_arrays`` vs Grad-CAM (``Explainer.cams``) vs the
  grad-cam package's own GradCAM on the same model and layer (full backward pass), so the
  ratio shows what a CAM costs beyond a prediction and what the partial backward saves;
- the report's additions for a test split of N images: the two Grad-CAM galleries and the
  embedding with PCA and with t-SNE, against ``evaluate_predictions`` (the metrics and plots
  every report already pays for) on the same images.

Usage: python bench/bench_explain.py [--quick] [--run RUN_DIR]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench_inference import find_or_train_run
from common import best_of, make_shapes_dataset, ratio, save_result, table


def _images(predictor: Any, n: int) -> tuple[torch.Tensor, np.ndarray]:
    files = sorted((make_shapes_dataset() / "test").rglob("*.png"))[:n]
    arrays = np.stack([predictor.load(f) for f in files])
    labels = np.array([predictor.classes.index(f.parent.name) for f in files])
    return torch.from_numpy(arrays).permute(0, 3, 1, 2).contiguous(), labels


def cam_rows(run: Path, repeats: int) -> list[list[Any]]:
    """Seconds per image: predict vs cnnlab's Grad-CAM vs grad-cam's plain GradCAM."""
    from pytorch_grad_cam import GradCAM

    from cnnlab.explain.cam import Explainer

    ex = Explainer(run)
    rows = []
    for batch in (1, 64):
        x, _ = _images(ex.predictor, batch)
        pred = best_of(lambda x=x: ex.predictor.predict_arrays(x), repeats=repeats) / batch
        ours = best_of(lambda x=x: ex.cams(x), repeats=repeats) / batch
        with GradCAM(model=ex.model, target_layers=[ex.module]) as plain:
            norm = ex.predictor.transform(x)
            full = best_of(lambda n=norm: plain(input_tensor=n, targets=None), repeats=repeats)
        full /= batch
        rows.append([f"batch {batch}", pred, ours, full, ratio(ours, pred), ratio(full, ours)])
    return rows


def report_rows(run: Path, n: int, repeats: int) -> list[list[Any]]:
    """Seconds for the report's explain figures vs the evaluation every report runs."""
    from cnnlab.evaluation.evaluate import evaluate_predictions
    from cnnlab.explain.gallery import report_figures
    from cnnlab.predict import Predictor

    p = Predictor(run)
    x, y = _images(p, n)
    probs = p.predict_arrays(x).numpy()
    pred = probs.argmax(axis=1)
    wrong = np.flatnonzero(pred != y)
    worst = wrong[np.argsort(-probs[wrong, pred[wrong]])][:16].tolist()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        base = best_of(
            lambda: evaluate_predictions(y, probs, p.classes, out, images=x, prefix="test"),
            repeats=repeats,
        )
        rows = [["evaluate_predictions (metrics + 4 plots)", base, 1.0]]
        for method in ("none", "pca", "tsne"):
            t = best_of(lambda m=method: report_figures(p, x, y, probs, out, "test", worst, m),
                        repeats)  # fmt: skip
            rows.append([f"CAM galleries + embedding: {method}", t, ratio(t, base)])
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--run", default=None, help="a finished default-cnn run folder")
    parser.add_argument("--images", type=int, default=500, help="test images for the report")
    args = parser.parse_args(argv)
    repeats = 2 if args.quick else 5
    run = find_or_train_run(args.run)
    cams = cam_rows(run, repeats)
    head_cam = ["images", "predict s/img", "gradcam s/img", "plain GradCAM s/img",
                "gradcam / predict", "plain / ours"]  # fmt: skip
    print(table(head_cam, cams))
    report = report_rows(run, args.images, max(1, repeats // 2))
    head_rep = ["what", "seconds", "x evaluate_predictions"]
    print(table(head_rep, report))
    payload = {
        "cam": [dict(zip(head_cam, r, strict=True)) for r in cams],
        "report": [dict(zip(head_rep, r, strict=True)) for r in report],
    }
    print(f"[explain] saved {save_result('explain', payload)}")
    return payload


if __name__ == "__main__":
    main()
