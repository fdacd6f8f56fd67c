"""``find_issues``: from a dataset to issues.csv, issues.html and clean.csv, in that order.

Example:
    >>> from cnnlab.cleaning import find_issues, issues_config  # doctest: +SKIP
    >>> cfg = issues_config("data/flowers")  # doctest: +SKIP
    >>> result = find_issues(cfg, out_dir="issues/flowers")  # doctest: +SKIP
    >>> result.counts["label"]  # doctest: +SKIP
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnnlab.cleaning.detect import KINDS, Issue
from cnnlab.cleaning.skill import ModelSkill
from cnnlab.console import info, warn
from cnnlab.errors import ConfigError

if TYPE_CHECKING:
    from cnnlab.cleaning.crossval import OutOfSample
    from cnnlab.config import Config
    from cnnlab.engine.setup import DataBundle

FEATURE_MODEL = "efficientnet_lite0"  # the backbone whose ImageNet weights ship offline
# Input side (px) of the feature pass: the images' own, clamped. Measured on 2,000 32-px
# images (bench/bench_issues.py data): out-of-sample accuracy 0.72 at 64 px, 0.81 at 96, 0.86
# at 128; label-issue precision 0.21, 0.32, 0.47 at the same recall (~0.89).
FEATURE_SIDES = (128, 224)
FIXES = ("drop", "relabel")
# An ImageNet backbone fed images far below its training size gives weak features. Measured
# on 128 24-px images of 5 classes: out-of-sample accuracy 0.48 at data.img_size=32, 0.88 at
# the default 128 px (and 0.03 vs 0.23 on 60 classes of 8 images).
SMALL_SIDE = (
    "data.img_size={side}: the pretrained backbone sees {side}-px images, and its features are "
    "much weaker below {low} px; leave data.img_size unset and data issues picks the side"
)


@dataclass
class IssuesResult:
    """What ``find_issues`` found and wrote."""

    out_dir: Path
    issues: list[Issue]
    counts: dict[str, int]
    method: str
    folds: int
    images: int
    seconds: float
    skill: ModelSkill  # how good the model behind the label flags is, out of sample
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def recommend_clean(self) -> bool:
        """Whether clean.csv may be offered for training: not when the labels could not be
        judged (the model behind the flags was no better than the baseline)."""
        return self.skill.level != "none"


def default_model() -> str:
    """The pretrained backbone when its weights load offline, else our CNN from scratch."""
    from cnnlab.models.weights import offline_available

    return FEATURE_MODEL if offline_available(FEATURE_MODEL) else "cnn"


def uses_features(cfg: Config) -> bool:
    """Logistic regression on pretrained features when the weights exist and nothing else
    (a fine-tuning mode, pretrained=false) was asked for."""
    from cnnlab.models.registry import model_info

    weights = cfg.model.weights is not None or model_info(cfg.model.name).offline_weights
    return weights and cfg.model.mode in (None, "frozen") and cfg.model.pretrained != "false"


def issues_config(
    data: str | Path,
    model: str | None = None,
    epochs: int | None = None,
    overrides: list[str] | None = None,
) -> Config:
    """The configuration ``data issues`` runs with: the default model unless one is named."""
    from cnnlab.api import make_config

    named_below = any(o.strip().startswith("model.name=") for o in overrides or [])
    name = model or (None if named_below else default_model())
    values: dict[str, Any] = {"model.name": name} if name else {}
    if epochs is not None:
        values["train.epochs"] = epochs
    cfg = make_config(data, overrides=overrides or [], values=values)
    if uses_features(cfg):
        return cfg.model_copy(update={"model": cfg.model.model_copy(update={"mode": "frozen"})})
    if cfg.model.mode is None and cfg.model.weights is None:  # no weights here: from scratch
        model_cfg = cfg.model.model_copy(update={"mode": "scratch", "pretrained": "false"})
        return cfg.model_copy(update={"model": model_cfg})
    return cfg


def _prepare(cfg: Config, features: bool) -> DataBundle:
    """Scan, split and decode once; a feature pass runs at the images' own side, clamped to
    ``FEATURE_SIDES`` (upscaling small images to 224 px costs 3x the time of 128 px)."""
    from cnnlab.data.scan import scan_dataset
    from cnnlab.data.stats import image_stats
    from cnnlab.engine.setup import model_defaults, prepare_data

    default = model_defaults(cfg.model.name).default_img_size
    data_cfg = cfg.data
    if features and data_cfg.img_size is None:
        # the verdicts are cached, so prepare_data's own scan below only stats the files
        scan = scan_dataset(
            str(data_cfg.root), max_pixels=data_cfg.max_pixels, min_side=data_cfg.min_image_side
        )
        stats = image_stats(scan)
        side = int(min(stats["width"]["median"], stats["height"]["median"]))
        side = max(FEATURE_SIDES[0], min(side, FEATURE_SIDES[1], default))
        data_cfg = data_cfg.model_copy(update={"img_size": side})
    elif features and data_cfg.img_size is not None and data_cfg.img_size < FEATURE_SIDES[0]:
        warn(SMALL_SIDE.format(side=data_cfg.img_size, low=FEATURE_SIDES[0]))
    return prepare_data(data_cfg, default)


def _detect(data: DataBundle, oos: OutOfSample, thumbs: list[dict[str, Any]]) -> list[Issue]:
    """Every kind of issue, kind by kind, each ranked worst first."""
    from cnnlab.cleaning import detect
    from cnnlab.data.audit import NEAR_MAX_IMAGES

    labels = data.labels.numpy()
    where = {s.path: s.split for s in data.split.samples}
    split_of = [where.get(p) for p in data.paths]
    names = {p: data.classes[int(y)] for p, y in zip(data.paths, labels, strict=True)}
    ok = {p: t for p, t in zip(data.paths, thumbs, strict=True) if "phash" in t}
    hashes = {p: int(t["phash"], 16) for p, t in ok.items()}
    if len(hashes) > NEAR_MAX_IMAGES:
        info(f"near duplicates: not checked above {NEAR_MAX_IMAGES} images (pairwise cost)")
        hashes = {}
    return [
        *detect.label_issues(labels, oos.probs, data.paths, split_of, data.classes),
        *detect.duplicate_issues(hashes, names, where),
        *detect.outliers(oos.features, oos.probs, labels, data.paths, split_of, data.classes),
        *detect.quality_issues({p: t["grey"] for p, t in ok.items()}, names, where),
    ]


def output_folder(given: str | Path | None, data: str | Path) -> Path:
    """``--out``, refused inside the dataset; the default ``data_issues/<name>`` moves beside
    the dataset when the current folder is inside it.

    Raises:
        ConfigError: ``given`` is inside the dataset folder.
    """
    from cnnlab.paths import dataset_folder, outside_dataset

    default = Path("data_issues") / Path(data).stem
    given_path = Path(given) if given is not None else None
    return outside_dataset(given_path, default, dataset_folder(data), "--out")


def find_issues(
    cfg: Config,
    folds: int = 5,
    out_dir: str | Path | None = None,
    fix: str = "drop",
    progress: bool = True,
) -> IssuesResult:
    """Find label issues, near duplicates, outliers and blank/dark/blurry images.

    The model behind the label flags is scored out of fold against always answering the most
    frequent class (``result.skill``, :mod:`cnnlab.cleaning.skill`); when it cannot judge the
    labels a warning says so and ``result.recommend_clean`` is False (clean.csv is still
    written, marked so in issues.html and summary.json).

    Args:
        cfg: the resolved configuration (``issues_config``): data, model, training.
        folds: K of the K-fold cross-validation (at least 2).
        out_dir: where issues.csv, issues.html and clean.csv go [./data_issues/<name>].
        fix: what clean.csv does with label issues: ``drop`` them or ``relabel`` them.
        progress: show progress bars.
    """
    from cnnlab.cleaning.crossval import features_probs, trained_probs
    from cnnlab.cleaning.outputs import write_outputs
    from cnnlab.cleaning.skill import measure_skill
    from cnnlab.data.audit import thumb_stats
    from cnnlab.data.issues_index import record_issues
    from cnnlab.data.parallel import map_chunks

    if fix not in FIXES:
        raise ConfigError(f"unknown fix '{fix}'; use drop or relabel")
    if folds < 2:
        raise ConfigError(f"--folds must be at least 2, got {folds}")
    out = output_folder(out_dir, str(cfg.data.root))  # refused before any work
    start = time.perf_counter()
    features = uses_features(cfg)
    data = _prepare(cfg, features)
    oos = features_probs(cfg, data, folds) if features else trained_probs(cfg, data, folds)
    thumbs = map_chunks(
        thumb_stats, data.paths, str(data.root), description="hashing images", progress=progress
    )
    issues = _detect(data, oos, thumbs)
    counts = {kind: sum(i.kind == kind for i in issues) for kind in KINDS}
    skill = measure_skill(data.labels.numpy(), oos.probs, data.classes)
    seconds = time.perf_counter() - start
    result = IssuesResult(
        out, issues, counts, oos.method, oos.folds, len(data.paths), seconds, skill
    )
    result.files = write_outputs(result, data, fix)
    summary = {"counts": counts, "method": oos.method, "fix": fix, "model": skill.as_dict()}
    record_issues(data.scan, out, summary)
    info(f"{counts['label']} suspected label issue(s) among {len(data.paths)} images")
    info(skill.headline())
    verdict = skill.verdict(counts["label"])
    if verdict:
        warn(verdict)
    return result
