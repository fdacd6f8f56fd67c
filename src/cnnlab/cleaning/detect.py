"""The four kinds of dataset problems, each found by a measurable rule.

- ``label``: cleanlab's confident learning (``find_label_issues``) on out-of-sample
  probabilities, ranked by label quality (the out-of-sample probability of the given label,
  cleanlab's ``self_confidence``); the suggestion is the most probable other class.
- ``near_duplicate``: 64-bit perceptual hashes (``data.audit``) within ``NEAR_BITS`` bits,
  across classes and splits; the pair's later member (test before val before train) is the
  row's ``path``, so leaving out every listed path keeps one image of each group.
- ``outlier``: cleanlab's ``OutOfDistribution`` score (mean distance to the nearest
  neighbours in feature space, or from the probabilities when there are no features); an
  image is flagged when ``-log(score)`` passes Tukey's fence ``Q3 + 1.7 IQR`` over the
  dataset, the rule cleanlab's Datalab applies to the same distances.
- ``blank``, ``dark``, ``blurry``: on a 64-px grey thumbnail, pixel std below
  ``BLANK_STD``; else mean below ``DARK_MEAN``; else a sharpness (Laplacian variance / grey
  variance) below ``BLUR_FRACTION`` of the dataset's median sharpness. The blur rule is
  relative because small or upscaled images are all soft: it finds the images much softer
  than their peers, not a dataset that is soft throughout.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

KINDS = ("label", "near_duplicate", "outlier", "blank", "dark", "blurry")
BLANK_STD = 0.015  # grey std on a 0..1 scale: ~4 of 255 levels, an almost uniform picture
DARK_MEAN = 0.10  # grey mean on a 0..1 scale: ~25 of 255 levels
BLUR_FRACTION = 0.1  # sharper than 1/10 of the dataset's median sharpness is not "very blurry"
OUTLIER_FENCE = 1.7  # IQRs above Q3 of -log(OOD score); cleanlab Datalab's default (1/0.37 - 1)
_SPLIT_ORDER = {"test": 0, "val": 1, "train": 2, None: 3}


@dataclass
class Issue:
    """One row of ``issues.csv``. ``score`` is the kind's own measure (docs/data.md)."""

    kind: str
    path: str
    split: str | None
    given: str
    score: float
    suggested: str | None = None
    suggested_prob: float | None = None
    related: str | None = None  # the other image of a near-duplicate pair
    rank: int = 0  # 1 = worst of its kind


def _ranked(issues: list[Issue], key: Any) -> list[Issue]:
    issues.sort(key=key)
    for i, issue in enumerate(issues, start=1):
        issue.rank = i
    return issues


def label_issues(
    labels: np.ndarray, probs: np.ndarray, paths: list[str], splits: list[Any], classes: list[str]
) -> list[Issue]:
    """Confident learning's label issues, worst (lowest label quality) first."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    if len(classes) < 2:
        return []
    # "both" (prune_by_noise_rate and prune_by_class agree) was measured on 2,000 noisy 32-px
    # images: precision 0.55 vs 0.47 for cleanlab's default, recall 0.88 vs 0.89. One process:
    # cleanlab's worker pool costs ~0.5-1 s to start, the work itself ~0.04 s on 2,000 images.
    found = find_label_issues(labels, probs, filter_by="both", n_jobs=1)
    quality = get_label_quality_scores(labels, probs, method="self_confidence")
    other = probs.copy()
    other[np.arange(len(labels)), labels] = -1.0  # the suggestion is never the given label
    best = other.argmax(axis=1)
    rows = [
        Issue("label", paths[i], splits[i], classes[labels[i]], float(quality[i]),
              classes[best[i]], float(probs[i, best[i]]))
        for i in np.flatnonzero(found)
    ]  # fmt: skip
    return _ranked(rows, lambda r: r.score)


def outliers(
    features: np.ndarray | None,
    probs: np.ndarray,
    labels: np.ndarray,
    paths: list[str],
    splits: list[Any],
    classes: list[str],
) -> list[Issue]:
    """Images far from every other in feature space (or atypical in their probabilities)."""
    from cleanlab.outlier import OutOfDistribution

    k = min(10, len(labels) - 1)
    if k < 2:
        return []
    ood = OutOfDistribution({"k": k} if features is not None else None)
    if features is not None:
        scores = ood.fit_score(features=features, verbose=False)
    else:
        scores = ood.fit_score(pred_probs=probs, labels=labels, verbose=False)
    dist = -np.log(np.clip(scores, 1e-12, 1.0))
    q1, q3 = np.percentile(dist, [25, 75])
    flagged = np.flatnonzero(dist > q3 + OUTLIER_FENCE * (q3 - q1))
    rows = [Issue("outlier", paths[i], splits[i], classes[labels[i]], float(scores[i]))
            for i in flagged]  # fmt: skip
    return _ranked(rows, lambda r: r.score)


def duplicate_issues(
    hashes: dict[str, int], labels: dict[str, str], splits: dict[str, Any]
) -> list[Issue]:
    """Near-duplicate pairs, one row per image to drop; cross-class, then cross-split first."""
    from cnnlab.data.audit import near_duplicates

    paths = list(hashes)
    order = {p: (_SPLIT_ORDER.get(splits[p], 3), p) for p in paths}
    best: dict[str, Issue] = {}
    severity: dict[str, tuple[Any, ...]] = {}
    for i, j, bits in near_duplicates([hashes[p] for p in paths]):
        keep, drop = sorted((paths[i], paths[j]), key=order.__getitem__, reverse=True)
        key = (labels[keep] == labels[drop], splits[keep] == splits[drop], bits, drop)
        if drop in severity and severity[drop] <= key:
            continue  # an image's row names its closest, most worrying twin
        severity[drop] = key
        other = labels[keep] if labels[keep] != labels[drop] else None
        best[drop] = Issue(
            "near_duplicate", drop, splits[drop], labels[drop], float(bits), other, related=keep
        )
    return _ranked(list(best.values()), lambda r: severity[r.path])


def quality_issues(
    grey: dict[str, list[float]], labels: dict[str, str], splits: dict[str, Any]
) -> list[Issue]:
    """Almost blank, very dark and very blurry images from thumbnail statistics."""
    stats = {p: (m, s, lap) for p, (m, s, lap) in grey.items()}
    sharp = {p: lap / (s * s) for p, (m, s, lap) in stats.items() if s >= BLANK_STD}
    median = float(np.median(list(sharp.values()))) if sharp else 0.0
    rows: dict[str, list[Issue]] = {"blank": [], "dark": [], "blurry": []}
    for p, (mean, std, _) in stats.items():
        if std < BLANK_STD:
            kind, score = "blank", std
        elif mean < DARK_MEAN:
            kind, score = "dark", mean
        elif median > 0 and sharp[p] < BLUR_FRACTION * median:
            kind, score = "blurry", sharp[p] / median
        else:
            continue
        rows[kind].append(Issue(kind, p, splits[p], labels[p], float(score)))
    return [i for kind in rows for i in _ranked(rows[kind], lambda r: r.score)]
