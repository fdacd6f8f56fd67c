"""Predict and evaluate with an ensemble folder, the same way as with a run folder.

:class:`EnsemblePredictor` opens each member as a :class:`cnnlab.predict.Predictor`, so every
member decodes and preprocesses an image its own way (input size, crop, normalisation), then
combines the members' probabilities with the weights fitted when the ensemble was built.
Members with weight 0 (greedy selection may drop some) are not loaded: they do not predict.

A member trained on after the ensemble was built (``cnnlab train --resume``) has other weights
than the ones its weights, summary and report were made from: the ensemble would predict and
score differently from its report without a word. The card records each member's
``model.safetensors`` SHA-256, and a member whose weights differ is refused (rebuild the
ensemble). Every member is checked, weight 0 included: its zero was fitted on its saved scores
and the report compares it with the others, so a member trained on since makes both stale (a
rebuild might pick it now). A weight-0 member whose folder is gone is not needed and not
refused (a used one is: its Predictor cannot load). Ensembles built before the digests were
recorded still load, with a warning.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.ensemble.combine import combine
from cnnlab.ensemble.members import LazyImages
from cnnlab.errors import RunError
from cnnlab.runs import WEIGHTS, read_json, weights_digest


def check_unchanged(ensemble: Path, card: dict[str, Any], entry: dict[str, Any]) -> None:
    """Refuse a member whose weights are not the ones recorded when the ensemble was built.

    Raises:
        RunError: naming the member and the command that builds the ensemble again.
    """
    recorded = entry.get("weights_sha256")
    member = ensemble / entry["run"]
    if recorded is None or not (member / WEIGHTS).is_file():
        return  # an older card; a missing file is the Predictor's error to name
    if weights_digest(member) != recorded:
        runs = " ".join(shlex.quote(os.path.normpath(ensemble / m["run"])) for m in card["members"])
        raise RunError(
            f"{ensemble}: member {entry['name']} ({os.path.normpath(member)}) has changed since "
            f"the ensemble was built: its {WEIGHTS} is not the one recorded (resumed or trained "
            "again), so the ensemble's weights, summary and report describe a model that is "
            f"gone; build the ensemble again: cnnlab ensemble {runs} --method {card['method']}"
        )


class EnsemblePredictor:
    """An ensemble folder, ready to classify images like a :class:`~cnnlab.predict.Predictor`."""

    def __init__(self, path: str | Path, backend: str = "torch") -> None:
        from cnnlab.ensemble.folder import ENSEMBLE_CARD
        from cnnlab.predict import Predictor

        self.run_dir = Path(path)
        self.card: dict[str, Any] = read_json(self.run_dir / ENSEMBLE_CARD)
        self.classes: list[str] = list(self.card["classes"])
        self.method: str = self.card["method"]
        if any("weights_sha256" not in m for m in self.card["members"]):
            from cnnlab.console import warn

            warn(
                f"{self.run_dir}: built by an older cnnlab, without its members' weight "
                "digests: a member trained on since would go unnoticed; build the ensemble "
                "again to have that checked"
            )
        for m in self.card["members"]:  # weight 0 too: its zero was fitted on its old scores
            check_unchanged(self.run_dir, self.card, m)
        used = [m for m in self.card["members"] if m["weight"] > 0]
        self.weights = np.array([m["weight"] for m in used], dtype=np.float64)
        self.members: list[Predictor] = []
        for m in used:
            member = Predictor(self.run_dir / m["run"], backend=backend)
            if member.classes != self.classes:
                raise RunError(
                    f"{member.run_dir}: its classes changed since the ensemble was built"
                )
            self.members.append(member)

    def predict_proba(
        self, inputs: Any, tta: bool | None = None, batch_size: int = 64
    ) -> tuple[list[dict[str, Any]], np.ndarray]:
        """Per input: ``{"path"|"index"}`` (or with ``error``), and ``(N_ok, K)`` probabilities.

        Args:
            inputs: anything :meth:`Predictor.predict` accepts.
            tta: flip test-time augmentation for every member; None: each member's own
                setting from its model card (what its val/test scores used).
        """
        k = len(self.classes)
        index = {c: i for i, c in enumerate(self.classes)}
        stacks = []
        first: list[dict[str, Any]] = []
        for member in self.members:
            use = member.card.get("tta") == "hflip" if tta is None else tta
            out = member.predict(inputs, top_k=k, tta=use, batch_size=batch_size)
            first = first or out
            rows = [r for r in out if "error" not in r]
            probs = np.zeros((len(rows), k))
            for i, r in enumerate(rows):
                for label, p in r["top_k"]:
                    probs[i, index[label]] = p
            stacks.append(probs)
        items = [
            {key: v for key, v in r.items() if key in ("path", "index", "error")} for r in first
        ]
        return items, combine(np.stack(stacks), self.weights, self.method)

    def predict(
        self, inputs: Any, top_k: int = 5, tta: bool | None = None, batch_size: int = 64
    ) -> list[dict[str, Any]]:
        """Same output and the same default as :meth:`cnnlab.predict.Predictor.predict`: with
        ``tta=None`` every member uses its own run's test-time augmentation, as its report did."""
        from cnnlab.predict import top_k_count

        k = top_k_count(top_k, len(self.classes))  # before any work: k < 1 is refused
        items, probs = self.predict_proba(inputs, tta=tta, batch_size=batch_size)
        results, row = [], 0
        for item in items:
            if "error" in item:
                results.append(item)
                continue
            order = np.argsort(-probs[row], kind="stable")[:k]
            top = [(self.classes[j], float(probs[row, j])) for j in order]
            results.append({**item, "label": top[0][0], "prob": top[0][1], "top_k": top})
            row += 1
        return results


def _score(
    ens: EnsemblePredictor, root: Path, samples: list[tuple[str, str]], tta: bool | None
) -> tuple[list[str], list[int], np.ndarray, list[dict[str, str]]]:
    """(paths, labels, probs) of the readable samples, and the skipped ones with reasons."""
    items, probs = ens.predict_proba([str(root / rel) for rel, _ in samples], tta=tta)
    index = {c: i for i, c in enumerate(ens.classes)}
    paths, labels, skipped = [], [], []
    for (rel, label), item in zip(samples, items, strict=True):
        if "error" in item:
            skipped.append({"path": rel, "reason": item["error"]})
        else:
            paths.append(rel)
            labels.append(index[label])
    if not paths:
        raise RunError(f"{root}: none of the {len(samples)} images could be read")
    return paths, labels, probs, skipped


def evaluate_ensemble(
    path: str | Path,
    data: str | Path | None = None,
    split: str | None = None,
    out_dir: str | Path | None = None,
    tta: bool | None = None,
) -> dict[str, Any]:
    """``cnnlab eval`` for an ensemble folder: its own split, a labelled folder or a manifest.

    Mirrors :func:`cnnlab.evaluation.evaluate.evaluate_run` (same sample lists, metrics,
    plots and report) with the ensemble's combined probabilities; ``tta`` None uses each
    member's own setting.
    """
    import torch

    from cnnlab.evaluation import evaluate as E
    from cnnlab.evaluation.changed import CHANGED
    from cnnlab.runs import Run

    run = Run(Path(path))
    ens = EnsemblePredictor(run.path)
    given, changed = E.eval_data(run, data, split, ens.classes)
    root, samples, left_out, source = given.root, given.samples, given.left_out, given.source
    paths, labels, probs, skipped = _score(ens, root, samples, tta)
    skipped = given.unplaced + skipped
    where = Path(out_dir) if out_dir is not None else run.path / given.name
    with E.evaluation_dir(where) as out:
        load = ens.members[0].load  # decodes only the gallery's few mistakes
        images = LazyImages(lambda i: load(root / paths[i]))
        metrics = E.evaluate_predictions(
            labels, probs, ens.classes, out, images=images, paths=paths
        )
        E.write_predictions(
            out / "predictions.csv", paths, labels, torch.from_numpy(probs), ens.classes
        )
        summary = {"source": source, "images": len(paths), "skipped_files": len(skipped),
                   "left_out_images": sum(left_out.values()),
                   "changed_files": len(changed)}  # fmt: skip
        report = {"source": source, "images": len(samples), "evaluated": len(paths),
                  **({E.LEFT_OUT: left_out} if left_out else {}),
                  **({CHANGED: changed} if changed else {}), "skipped": skipped}  # fmt: skip
        html, _ = E.write_report(
            out, title=f"{run.name}: ensemble evaluation on {source}", summary=summary,
            metrics=metrics, config=run.config, model_card=ens.card, data_report=report,
            plots={k: Path(v) for k, v in metrics["plots"].items()},
            mistakes=metrics["worst_mistakes"], caution=given.caution,
        )  # fmt: skip
        return {**metrics, **summary, "out_dir": str(out), "report": str(html), "skipped": skipped,
                "left_out": left_out, "changed": changed}  # fmt: skip
