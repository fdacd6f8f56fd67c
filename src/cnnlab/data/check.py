"""One check of a dataset for training and for ``cnnlab data inspect``, and its report.

Both paths call :func:`check_dataset`, so ``inspect`` reports exactly what training would
refuse: scan, split and quick audit run to the end and collect every problem. Training then
raises the blocking ones as one error; ``inspect`` writes them all to ``data_report.json``.

``data_report.json`` has one schema in both places (``format: cnnlab-data-report/1``):
``root`` (the folder's name, never its full path), ``layout``, ``classes``, ``counts``,
``skipped`` (path relative to the root + reason), ``problems`` (kind, message, blocking),
``ready_to_train``, ``splits`` (images per split), ``counts_per_split`` (per split and
class, of the split as made, in every layout), ``split_seed``, ``audit`` (duplicates,
leakage, label conflicts; ``inspect`` adds near duplicates and channel statistics),
``excluded`` (files ``data.exclude`` left out), ``skipped_at_load`` (files gone or broken
after the scan; runs only), ``fingerprint`` (a hash of every image's bytes with its label)
and image statistics. With ``data.exclude`` every count, the audit and the verdict are of
the images that remain.

Example:
    >>> from cnnlab.config import DataConfig
    >>> check = check_dataset(DataConfig(root="data/flowers"))  # doctest: +SKIP
    >>> check.ready, [p.message for p in check.problems]  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence, Set
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnnlab.data.problems import Problem, blocking, raise_blocking

if TYPE_CHECKING:
    from cnnlab.config import DataConfig
    from cnnlab.data.scan import Record, ScanResult, Skipped
    from cnnlab.data.split import Split

REPORT_FORMAT = "cnnlab-data-report/1"


@dataclass
class DataCheck:
    """What a dataset holds, how it splits, and everything wrong with it."""

    scan: ScanResult
    split: Split
    split_seed: int | None  # None: the split came from a saved split.csv
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # for the caller to print
    audit: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # for the caller to print (info)
    excluded: list[Record] = field(default_factory=list)  # left out by data.exclude

    @property
    def ready(self) -> bool:
        """True when nothing would stop training."""
        return not blocking(self.problems)

    @property
    def scanned(self) -> ScanResult:
        """The scan with the files ``data.exclude`` left out (``scan`` is without them)."""
        if not self.excluded:
            return self.scan
        return dataclasses.replace(self.scan, records=[*self.scan.records, *self.excluded])

    def raise_blocking(self) -> None:
        """One DataError naming every problem that stops training (none: return)."""
        raise_blocking(self.problems, self.scan.manifest or self.scan.root)


def check_dataset(
    data: DataConfig, split_file: Path | None = None, audit: bool = True, progress: bool = True
) -> DataCheck:
    """Scan, split, leave out ``data.exclude`` and audit ``data.root``, collecting problems
    instead of stopping at one.

    The audit's findings are in ``audit``; callers word them (:func:`audit_warnings`).

    Raises:
        ConfigError: the cache folder is inside the dataset.
        DataError: the root is not a dataset at all, or a reused ``split_file`` no longer
            matches the folder.
    """
    from cnnlab.data import scan as scan_module
    from cnnlab.data.audit import audit_dataset
    from cnnlab.data.split import load_split, make_split
    from cnnlab.paths import check_cache_outside, dataset_folder

    if data.root is None:
        from cnnlab.errors import DataError

        raise DataError("no dataset folder given (data.root)")
    check_cache_outside(dataset_folder(data.root))
    scan = scan_module.scan_dataset(
        data.root,
        max_pixels=data.max_pixels,
        min_side=data.min_image_side,
        max_bytes=max_file_bytes(data.max_file_mb),
        allow_outside_paths=data.allow_outside_paths,
        strict=False,
        progress=progress,
    )
    if split_file is not None:
        split = load_split(split_file, scan)
    else:
        split = make_split(
            scan,
            data.val_fraction,
            data.test_fraction,
            data.split_seed,
            drop_small_classes=data.drop_small_classes,
            strict=False,
        )
    check = DataCheck(scan, split, data.split_seed if split_file is None else None)
    check.problems = [*scan.problems, *split.problems]
    check.warnings = [*scan.warnings, *split.warnings]
    if data.exclude:
        _exclude(check, data.exclude, data.drop_small_classes)
    gaps = unmeasured_classes(check.split, split if data.exclude else None, data.exclude)
    check.problems += gaps
    check.warnings += [p.message for p in gaps]
    check.audit = audit_dataset(check.scan, check.split) if audit else {}
    if check.split.classes and not check.split.indices("val"):
        check.problems.append(
            Problem(
                "no validation images",
                "the validation split is empty (it picks the best epoch): set "
                "data.val_fraction > 0 or add a val/ folder",
            )
        )
    return check


def _exclude(check: DataCheck, path: str, drop_classes: bool) -> None:
    """Leave the files listed at ``path`` out of ``check`` (see :mod:`cnnlab.data.exclude`)."""
    from cnnlab.data.exclude import apply_exclude

    out = apply_exclude(check.scan, check.split, path, drop_classes)
    check.scan, check.split, check.excluded = out.scan, out.split, out.records
    check.problems += out.problems
    check.warnings += out.warnings
    check.notes += out.notes


def unmeasured_classes(
    split: Split, before: Split | None = None, exclude: str | None = None
) -> list[Problem]:
    """A warning for each class with training images but none in val or test while other
    classes have some there: the run trains, but that class's scores there cannot be
    measured. The one check for every way it happens (a split layout or manifest without the
    class there, or ``data.exclude`` listing its last images there); ``before``, the split
    without the ``exclude`` list, tells a gap the list made, which the message names."""
    now = split.counts()
    was = before.counts() if before is not None else now
    found = []
    for name in split.classes:
        empty = [s for s in ("val", "test") if any(now[s].values()) and not now[s][name]]
        if not now["train"][name] or not empty:
            continue  # no training image: a blocking problem of its own
        where = ", ".join(empty)
        if exclude and any(was[s].get(name) for s in empty):
            listed = sum(was[s].get(name, 0) - now[s][name] for s in now)
            text = f"no image left in {where}: data.exclude ({exclude}) lists {listed}"
            text, kind = f"{text} of its images", "excluded class"
        else:
            text, kind = f"no image in {where}", "unmeasured class"
        message = f"class '{name}' has {text}; its {where} scores cannot be measured"
        found.append(Problem(kind, message, blocking=False))
    return found


def max_file_bytes(megabytes: float) -> int:
    """``data.max_file_mb`` in bytes (MiB, as file managers count)."""
    return int(megabytes * 2**20)


def data_report(
    check: DataCheck,
    splits: dict[str, int] | None = None,
    skipped_at_load: Sequence[Skipped] = (),
) -> dict[str, Any]:
    """The ``data_report.json`` document (see the module docstring for its fields)."""
    doc: dict[str, Any] = {"format": REPORT_FORMAT, **check.scan.to_report()}
    counts = split_counts(check.split, {s.path for s in skipped_at_load})
    doc.update(
        counts_per_split=counts,
        ready_to_train=check.ready,
        problems=[p.to_dict() for p in check.problems],
        splits=splits or {name: sum(c.values()) for name, c in counts.items()},
        split_seed=check.split_seed,
        skipped_at_load=[{"path": s.path, "reason": s.reason} for s in skipped_at_load],
        audit=check.audit,
        excluded=sorted(r.path for r in check.excluded),
        fingerprint=dataset_fingerprint(check.scan.records),
    )
    return doc


def split_counts(split: Split, gone: Set[str] = frozenset()) -> dict[str, dict[str, int]]:
    """``{split: {class: images}}`` of the split as made, in every layout (a flat folder's
    too), without the files in ``gone`` (skipped at load): they add up to ``splits``."""
    counts = split.counts()
    for sample in split.samples:
        if sample.path in gone:
            counts[sample.split][split.classes[sample.label]] -= 1
    return counts


def dataset_fingerprint(records: Sequence[Any]) -> str:
    """A short hash of the dataset's content: each image's bytes (sha1) with its label.

    Renaming or moving files keeps it; changing, adding or relabelling an image changes it
    (tracking tags runs with it, so runs on the same data can be found together).
    """
    import hashlib

    lines = sorted(f"{r.label}\t{r.sha1}" for r in records)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]
