"""How good the classifier behind the label flags is, and what its flags are worth.

Confident learning flags an image when the out-of-sample model is confident in a class other
than the given one, so the flags are no better than that model. ``data issues`` flagged 61 %
of 480 correctly labelled images while its cross-validated classifier was at chance, and said
nothing about it. Every run now measures the model on the same out-of-fold probabilities
cleanlab uses, next to the no-skill baseline of always answering the most frequent class, and
grades it:

- ``none``, the labels cannot be judged: the Wilson 95 % lower bound of its accuracy is not
  above the majority rate (no evidence it learned anything: the rule run reports use,
  :func:`cnnlab.evaluation.intervals.beats_majority`), or its accuracy or macro F1 is below
  ``JUDGE_FROM`` (0.5). The second rule: let ``a`` be the share of images the model gets
  right and ``r`` the share of wrong labels. A flag is a disagreement; it is a real label
  error about ``r * a`` of the time and a model mistake on a good label ``(1 - r) * (1 - a)``
  of the time. With ``a < 0.5`` and ``r < 0.5`` the second is always larger: most flags are
  the model's own mistakes, whatever the noise. Macro F1 applies the same bound to the
  average class, so that a majority class cannot carry a model that fails on every other.
- ``moderate``: judged, but its accuracy or macro F1 is below ``GOOD_FROM`` (0.9); the flags
  are as reliable as that allows. Measured on 2,000 noisy 32-px images (bench/bench_issues.py):
  out-of-sample accuracy 0.86 gave a label-issue precision of 0.47, 0.81 gave 0.32.
- ``good``: both at least ``GOOD_FROM``.

The accuracy is measured against the given labels, wrong ones included, so label noise lowers
it too: a perfect model on labels 20 % wrong scores 0.8 here. That is why the bar for ``none``
is 0.5 and not near the top: noise alone cannot bring a model that far down.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

JUDGE_FROM = 0.5  # accuracy and macro F1 below this: most flags are the model's mistakes
GOOD_FROM = 0.9  # below this the flags need a review (precision 0.47 measured at 0.86)
LEVELS = ("none", "moderate", "good")


@dataclass(frozen=True)
class ModelSkill:
    """Out-of-fold accuracy and macro F1 of the model behind the flags, and the baseline's."""

    images: int
    accuracy: float
    accuracy_low: float  # Wilson 95 % interval of the accuracy
    accuracy_high: float
    macro_f1: float
    majority_class: str
    majority_accuracy: float  # always answering the most frequent class
    majority_macro_f1: float
    level: str  # one of LEVELS

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def headline(self) -> str:
        """One line: the model's scores next to the baseline's."""
        return (
            f"out-of-sample model: accuracy {self.accuracy:.3f} (95% CI {self.accuracy_low:.3f}-"
            f"{self.accuracy_high:.3f}), macro F1 {self.macro_f1:.3f} over {self.images} images; "
            f"always answering '{self.majority_class}': accuracy {self.majority_accuracy:.3f}, "
            f"macro F1 {self.majority_macro_f1:.3f}"
        )

    def verdict(self, flagged: int) -> str | None:
        """What the ``flagged`` label issues are worth; None when the model is good."""
        if self.level == "good":
            return None
        if self.level == "moderate":
            return (
                f"the label flags are only as reliable as a model with out-of-sample accuracy "
                f"{self.accuracy:.3f} and macro F1 {self.macro_f1:.3f} allows: it disagrees "
                f"with {1 - self.accuracy:.0%} of the given labels, so expect correctly "
                f"labelled images among the {flagged} flagged; review them in issues.html "
                "before training on clean.csv"
            )
        if self.accuracy_low <= self.majority_accuracy:
            why = (
                f"its out-of-sample accuracy {self.accuracy:.3f} (95% CI from "
                f"{self.accuracy_low:.3f}) is not above always answering the most frequent "
                f"class ({self.majority_accuracy:.3f})"
            )
        else:
            low = [
                f"{name} {value:.3f}"
                for name, value in (("accuracy", self.accuracy), ("macro F1", self.macro_f1))
                if value < JUDGE_FROM
            ]
            why = (
                f"its out-of-sample {' and '.join(low)} {'are' if len(low) > 1 else 'is'} "
                f"below {JUDGE_FROM}, so most disagreements with a label are its own mistakes"
            )
        return (
            f"label issues cannot be judged with this model: {why}; the {flagged} flagged "
            "images are not evidence of wrong labels and clean.csv is not recommended"
        )


def grade(accuracy: float, macro_f1: float, accuracy_low: float, majority: float) -> str:
    """``none``, ``moderate`` or ``good`` by the rules in the module docstring.

    Example:
        >>> grade(0.48, 0.35, 0.40, 0.31), grade(0.86, 0.84, 0.8, 0.25), grade(0.95, 0.94, 0.9, 0.5)
        ('none', 'moderate', 'good')
    """
    if accuracy_low <= majority or min(accuracy, macro_f1) < JUDGE_FROM:
        return "none"
    return "moderate" if min(accuracy, macro_f1) < GOOD_FROM else "good"


def measure_skill(labels: np.ndarray, probs: np.ndarray, classes: list[str]) -> ModelSkill:
    """Score the out-of-fold ``probs`` ``(N, K)`` against the given ``labels``.

    Macro F1 follows the run reports' rule (classes present or predicted), so the numbers read
    the same as a run's.
    """
    from cnnlab.evaluation.intervals import macro_f1, wilson_interval

    y = np.asarray(labels, dtype=np.int64)
    pred = np.asarray(probs).argmax(axis=1)
    n, k = int(y.size), len(classes)
    hits = int((pred == y).sum())
    low, high = wilson_interval(hits, n)
    counts = np.bincount(y, minlength=k)
    top = int(counts.argmax())
    accuracy, f1 = hits / n, float(macro_f1(y, pred, k))
    majority = float(counts[top] / n)
    return ModelSkill(
        images=n,
        accuracy=accuracy,
        accuracy_low=low,
        accuracy_high=high,
        macro_f1=f1,
        majority_class=classes[top],
        majority_accuracy=majority,
        majority_macro_f1=float(macro_f1(y, np.full_like(y, top), k)),
        level=grade(accuracy, f1, low, majority),
    )
