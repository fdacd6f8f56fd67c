"""How members' probabilities become one prediction: soft, hard, weighted and greedy.

Everything here works on arrays: ``probs`` is ``(M, N, K)`` (members, images, classes).
Every method ends as one weight per member, so the same :func:`combine` serves the val and
test splits, ``cnnlab predict`` and the app:

- ``soft``: equal weights; the ensemble's probabilities are the members' mean.
- ``hard``: one vote per member for its top class; ties go to the tied class with the highest
  mean probability (see :func:`hard_vote`).
- ``weighted``: weights on the simplex that minimise the val log loss of the weighted mean.
- ``greedy``: forward selection with replacement on val (Caruana et al., 2004), started from
  the best single member; the weight of a member is how often it was picked.

Weights are fitted on val only; the test split is never looked at here.
"""

from __future__ import annotations

import numpy as np

METHODS = ("soft", "hard", "weighted", "greedy")
GREEDY_ROUNDS = 25  # members added (with replacement) before the best prefix is kept
_EPS = 1e-15  # probability floor inside the log loss
_TIE = 1e-6  # weight of the mean probability that breaks hard-vote ties


def log_loss(probs: np.ndarray, y: np.ndarray) -> float:
    """Mean negative log probability of the true class."""
    return float(-np.mean(np.log(np.clip(probs[np.arange(len(y)), y], _EPS, 1.0))))


def accuracy(probs: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(probs.argmax(axis=1) == y))


def average(probs: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted mean of the members' probabilities, ``(N, K)``."""
    w = np.asarray(weights, dtype=np.float64)
    return np.tensordot(w / w.sum(), probs, axes=1)


def hard_vote(probs: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Vote shares ``(N, K)``: each member's weight goes to its top class.

    Returned rows sum to 1 and are ``(votes + 1e-6 * mean_prob) / (total + 1e-6)``, so the
    arg-max is the class with most votes and a tie goes to the tied class with the highest
    mean probability; the shares stay readable as "fraction of members".
    """
    m, n, k = probs.shape
    w = np.ones(m) if weights is None else np.asarray(weights, dtype=np.float64)
    votes = np.zeros((n, k))
    for member, weight in zip(probs, w, strict=True):
        votes[np.arange(n), member.argmax(axis=1)] += weight
    return (votes + _TIE * average(probs, w)) / (w.sum() + _TIE)


def combine(probs: np.ndarray, weights: np.ndarray, method: str) -> np.ndarray:
    """The ensemble's ``(N, K)`` probabilities for fitted ``weights``."""
    return hard_vote(probs, weights) if method == "hard" else average(probs, weights)


def fit_weights(probs: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Simplex weights minimising the log loss of the weighted mean on ``(probs, y)`` (val).

    Parametrised as a softmax so the weights stay positive and sum to 1; L-BFGS from equal
    weights, with the analytic gradient.
    """
    from scipy.optimize import minimize
    from scipy.special import softmax

    true = probs[:, np.arange(len(y)), y]  # (M, N): each member's probability of the truth

    def loss(z: np.ndarray) -> tuple[float, np.ndarray]:
        w = softmax(z)
        mix = np.clip(w @ true, _EPS, None)
        grad_w = -(true / mix).mean(axis=1)  # d loss / d w
        return float(-np.log(mix).mean()), w * (grad_w - w @ grad_w)

    result = minimize(loss, np.zeros(len(probs)), jac=True, method="L-BFGS-B")
    return softmax(result.x)


def _score(probs: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """What greedy selection maximises: val accuracy, then lower log loss on ties."""
    return accuracy(probs, y), -log_loss(probs, y)


def greedy_select(probs: np.ndarray, y: np.ndarray, rounds: int = GREEDY_ROUNDS) -> np.ndarray:
    """Caruana's forward selection with replacement; returns pick counts per member.

    Starts from the best single member and keeps the best prefix of the selection path
    (the shortest on ties), so the result's val accuracy is never below the best member's.
    """
    m = len(probs)
    scores = [_score(p, y) for p in probs]
    first = max(range(m), key=lambda i: scores[i])
    counts = np.zeros(m, dtype=np.int64)
    counts[first] = 1
    total = probs[first].copy()
    best, best_counts = scores[first], counts.copy()
    for step in range(2, rounds + 1):
        trial = [_score((total + probs[i]) / step, y) for i in range(m)]
        pick = max(range(m), key=lambda i: trial[i])
        counts[pick] += 1
        total += probs[pick]
        if trial[pick] > best:
            best, best_counts = trial[pick], counts.copy()
    return best_counts


def fit(
    method: str, members: int, probs_val: np.ndarray | None = None, y_val: np.ndarray | None = None
) -> np.ndarray:
    """Member weights (summing to 1) for ``method``; ``weighted`` and ``greedy`` need val."""
    from cnnlab.errors import ConfigError

    if method not in METHODS:
        raise ConfigError(f"unknown ensemble method '{method}'; use one of {', '.join(METHODS)}")
    if method in ("soft", "hard"):
        return np.full(members, 1.0 / members)
    if probs_val is None or y_val is None or len(y_val) == 0:
        raise ConfigError(f"method '{method}' fits its weights on the val split, which is empty")
    if method == "weighted":
        return fit_weights(probs_val, y_val)
    counts = greedy_select(probs_val, y_val)
    return counts / counts.sum()
