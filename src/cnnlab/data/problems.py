"""Problems found in a dataset, collected instead of raised one at a time.

A data audit has to report everything it finds in one pass (an empty class folder should not
hide a too-small class or a bad manifest row), while training has to refuse the same folder
before any work. So the scan, the walk and the split each collect :class:`Problem` objects,
``cnnlab data inspect`` writes them all to ``data_report.json``, and training turns the blocking
ones into a single :class:`~cnnlab.errors.DataError` with :func:`raise_blocking`.

Example:
    >>> p = Problem("empty class", "class folder 'b' has no image files; add images")
    >>> blocking_message([p], "ds")
    "ds: class folder 'b' has no image files; add images"
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from cnnlab.errors import DataError

# kind -> what it means; the kinds are fixed words that scripts can match on.
KINDS = {
    "empty class": "a class folder without image files",
    "unusable class": "a class whose every image was skipped",
    "small class": "a class with fewer images than the split needs",
    "no training images": "a class with no image in the training split",
    "no classes": "nothing left to train on",
    "no validation images": "an empty validation split (it picks the best epoch)",
    "manifest row": "a CSV manifest row that cannot be used",
    "outside path": "a CSV manifest path that leaves the manifest's folder",
    "excluded class": "a class data.exclude empties: blocking for train, a warning for val/test",
    "unmeasured class": "a class with training images but none in val or test (a warning)",
    "dropped class": "a small or excluded class left out (data.drop_small_classes=true)",
}


@dataclass(frozen=True)
class Problem:
    """One finding about the dataset; ``blocking`` ones stop training."""

    kind: str
    message: str  # one line naming the class, path or row, and what to do
    blocking: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def blocking(problems: Iterable[Problem]) -> list[Problem]:
    """The problems that would stop training."""
    return [p for p in problems if p.blocking]


def blocking_message(
    problems: Iterable[Problem], root: object, stops: str = "training"
) -> str | None:
    """One line listing every blocking problem, or None when ``stops`` (the work they stop:
    training, or ``cnnlab eval`` on a manifest) can go ahead."""
    found = blocking(problems)
    if not found:
        return None
    if len(found) == 1:
        text = found[0].message
        return text if str(root) in text else f"{root}: {text}"
    listed = "; ".join(p.message for p in found[:10])
    more = f"; and {len(found) - 10} more" if len(found) > 10 else ""
    return (
        f"{root}: {len(found)} problems stop {stops}: {listed}{more} "
        f"(`cnnlab data inspect {root}` writes them all to data_report.json)"
    )


def raise_blocking(problems: Iterable[Problem], root: object, stops: str = "training") -> None:
    """Raise one DataError naming every blocking problem; return when there is none."""
    message = blocking_message(problems, root, stops)
    if message is not None:
        raise DataError(message)
