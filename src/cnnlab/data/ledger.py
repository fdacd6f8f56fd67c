"""The split ledger: where the small-class fix-up put files, remembered between runs.

Why a memory at all: a split that depends only on each file's own hash is stable when images
are added, but can leave a tiny class without a val or test image; a fix-up that moves a file
to fill that gap depends on the other files, so recomputing it after an image is added can
move the file back. No function of the folder's current contents alone can do both: a class of
three files must give each a different split, so if adding files never moved one, any three
of four files would have to keep three different splits, which four files cannot do. So the
fix-up's decisions are written down, and later splits keep them.

Only fix-up moves are stored (a few files per tiny class); every other file's split is its
hash. Entries live in ``$CNNLAB_CACHE/splits/`` keyed by the dataset (folder or manifest),
``data.split_seed`` and the two fractions, as JSON. Deleting them is safe but can move the
few files a fix-up placed; pass a run's ``split.csv`` (``data.split_file``) to pin a split
across machines and people.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from cnnlab.atomic import atomic_write_text
from cnnlab.cachedir import touch
from cnnlab.paths import cache_dir

LEDGER_FORMAT = "cnnlab-split-ledger/1"


def ledger_key(source: Path, seed: int, val_fraction: float, test_fraction: float) -> str:
    """What a remembered fix-up belongs to: the same data, seed and fractions."""
    return f"{source}|{seed}|{val_fraction!r}|{test_fraction!r}"


def _file(key: str) -> Path:
    return cache_dir("splits") / (hashlib.sha256(key.encode()).hexdigest()[:24] + ".json")


def load_ledger(key: str, warnings: list[str]) -> dict[str, tuple[str, str]]:
    """``path -> (class, split)`` of earlier fix-up moves; empty when none or unreadable."""
    file = _file(key)
    try:
        doc = json.loads(file.read_text(encoding="utf-8"))
        if doc.get("format") != LEDGER_FORMAT or doc.get("key") != key:
            return {}
        moved = {str(p): (str(v[0]), str(v[1])) for p, v in doc["moved"].items()}
        touch(file)  # in use: least-recently-used eviction and `cache clean` spare it
        return moved
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError):
        warnings.append(f"split ledger {file} was unreadable; small-class placements redone")
        return {}


def save_ledger(key: str, moved: dict[str, tuple[str, str]], warnings: list[str]) -> None:
    """Write the fix-up moves atomically (durable: losing them could move files later)."""
    file = _file(key)
    doc = {"format": LEDGER_FORMAT, "key": key, "moved": {p: list(v) for p, v in moved.items()}}
    try:
        atomic_write_text(file, json.dumps(doc, ensure_ascii=False, sort_keys=True))
    except OSError as exc:
        warnings.append(f"could not write the split ledger {file} ({exc})")
