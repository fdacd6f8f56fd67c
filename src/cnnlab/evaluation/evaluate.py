"""Evaluate predictions or a whole run: metrics.json, plots and a report in one folder.

:func:`evaluate_predictions` is the shared core: ``fit`` calls it for the val and test splits
at the end of training, and :func:`evaluate_run` (``cnnlab eval``) calls it after predicting
a run's own split, any other labelled folder or a CSV manifest. Files that cannot be read are
skipped, counted and listed in the report; they never stop an evaluation.
"""

from __future__ import annotations

import contextlib
import csv
import io
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cnnlab.console import result as print_result
from cnnlab.console import warn
from cnnlab.errors import ConfigError, DataError
from cnnlab.evaluation import plots as P
from cnnlab.evaluation.changed import CHANGED, check_split_files
from cnnlab.evaluation.figure import warn_undrawable
from cnnlab.evaluation.metrics import compute_metrics, macro_f1_note
from cnnlab.evaluation.plotjobs import PlotJobs
from cnnlab.evaluation.report import write_report
from cnnlab.runs import BUILDING, SPLIT, SUMMARY, atomic_write_text, load_run, write_json

_MAX_SUFFIX = 10_000


def _worst(
    y: np.ndarray, probs: np.ndarray, paths: Sequence[str] | None, classes: Sequence[str], n: int
) -> list[dict[str, Any]]:
    """The ``n`` most confident mistakes (the ones most worth a look), most confident first."""
    pred = probs.argmax(axis=1)
    wrong = np.flatnonzero(pred != y)
    conf = probs[wrong, pred[wrong]]
    order = wrong[np.argsort(-conf, kind="stable")][:n]
    return [
        {
            ("path" if paths is not None else "index"): paths[i] if paths is not None else int(i),
            "true": classes[y[i]],
            "pred": classes[pred[i]],
            "prob": float(probs[i, pred[i]]),
            "true_prob": float(probs[i, y[i]]),
            "row": int(i),
        }
        for i in order
    ]


def _image(images: Any, i: int) -> np.ndarray:
    img = images[i]
    return img.numpy() if isinstance(img, torch.Tensor) else np.asarray(img)


def evaluate_predictions(
    y_true: Any,
    probs: Any,
    classes: Sequence[str],
    out_dir: str | Path,
    images: Any = None,
    paths: Sequence[str] | None = None,
    prefix: str = "",
    top_k: int = 5,
    ece_bins: int = 15,
    worst: int = 16,
    plots: PlotJobs | None = None,
) -> dict[str, Any]:
    """Metrics plus plots for one set of predictions, written into ``out_dir``.

    Args:
        y_true: integer labels ``(N,)``.
        probs: probabilities ``(N, K)``.
        classes: class names in label order.
        out_dir: folder for ``[prefix_]metrics.json`` and the PNGs.
        images: optional uint8 images (``(N, C, H, W)`` tensor or HWC arrays) for the gallery
            of worst mistakes.
        paths: optional file path per sample, listed with the mistakes.
        prefix: file-name prefix, e.g. ``val`` -> ``val_confusion_matrix.png``.
        top_k: k of the top-k accuracy.
        ece_bins: bins of the calibration error and the reliability diagram.
        worst: how many confidently wrong samples to list and show.
        plots: collect the plots here to draw them later with others (``fit`` draws val,
            test and learning curves together, in two processes); None draws them now.

    Returns:
        :func:`~cnnlab.evaluation.metrics.compute_metrics`' dict plus ``worst_mistakes`` and
        ``plots`` (name -> PNG path).
    """
    y = np.asarray(y_true, dtype=np.int64).reshape(-1)
    p = np.asarray(torch.as_tensor(probs, dtype=torch.float64))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tag = f"{prefix}_" if prefix else ""
    metrics = compute_metrics(y, p, classes, top_k=top_k, ece_bins=ece_bins)
    mistakes = _worst(y, p, paths, classes, worst)
    jobs = plots if plots is not None else PlotJobs()
    files = _add_plots(jobs, out, tag, metrics, y, p, mistakes, images, ece_bins)
    if plots is None:
        jobs.draw()
    metrics["worst_mistakes"] = mistakes
    metrics["plots"] = {k: str(v) for k, v in files.items()}
    write_json(out / f"{tag}metrics.json", metrics)
    return metrics


def _add_plots(
    jobs: PlotJobs,
    out: Path,
    tag: str,
    metrics: dict[str, Any],
    y: np.ndarray,
    p: np.ndarray,
    mistakes: list[dict[str, Any]],
    images: Any,
    ece_bins: int,
) -> dict[str, Path]:
    """Schedule one evaluation's plots; returns name -> PNG path (drawn by ``jobs.draw``)."""
    classes = metrics["classes"]
    warn_undrawable(classes)  # here, before jobs.draw forks: one line, not one per process
    files = {
        f"{tag}{n}": out / f"{tag}{n}.png"
        for n in ("confusion_matrix", "per_class_f1", "reliability")
    }
    jobs.add(
        P.plot_confusion_matrix,
        metrics["confusion_matrix"],
        classes,
        files[f"{tag}confusion_matrix"],
    )
    jobs.add(
        P.plot_per_class_f1,
        metrics["per_class"],
        files[f"{tag}per_class_f1"],
        metrics["confusion_matrix"],
    )
    jobs.add(P.plot_reliability, p, y, files[f"{tag}reliability"], ece_bins)
    if images is not None and mistakes:
        rows = [m["row"] for m in mistakes]
        files[f"{tag}worst_mistakes"] = out / f"{tag}worst_mistakes.png"
        jobs.add(
            P.plot_worst_mistakes,
            [_image(images, i) for i in rows],
            [int(y[i]) for i in rows],
            [int(p[i].argmax()) for i in rows],
            [m["prob"] for m in mistakes],
            classes,
            files[f"{tag}worst_mistakes"],
        )
    return files


def _unique_dir(path: Path) -> Path:
    """``path`` created fresh, or ``path-2``, ``path-3``...: an evaluation never overwrites."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for i in range(1, _MAX_SUFFIX):
        candidate = path if i == 1 else path.with_name(f"{path.name}-{i}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return candidate
    raise DataError(f"{path}: too many evaluation folders with this name; pass --out")


@contextlib.contextmanager
def evaluation_dir(path: Path) -> Iterator[Path]:
    """A fresh evaluation folder (:func:`_unique_dir`) that is complete when the block ends,
    else gone: Ctrl-C or an error mid-way removes it (it used to stay with a plot or two and
    nothing saying so); a process killed outright leaves its ``.building`` marker."""
    from cnnlab.runlock import building

    with building(_unique_dir(path), BUILDING) as out:
        yield out


EVAL_SPLITS = ("test", "val", "train")  # a run's split.csv and a split folder's names


def check_split(split: str | None) -> None:
    """Refuse a split name other than ``test``, ``val`` or ``train`` (None: the default).

    Raises:
        ConfigError: naming the split and the allowed ones.
    """
    if split is not None and split not in EVAL_SPLITS:
        raise ConfigError(f"unknown split '{split}'; use one of {', '.join(EVAL_SPLITS)}")


def split_samples(run: Any, split: str) -> tuple[Path, list[tuple[str, str]]]:
    """(dataset root, [(relative path, class name)]) of the run's own ``split``.

    Public: ``cnnlab eval``, ensembles and the app's sample images all read a run's split here.

    Raises:
        ConfigError: ``split`` is not test, val or train.
        DataError: the dataset or split.csv is gone, or the split has no samples.
    """
    check_split(split)
    data_root = (run.config.get("data") or {}).get("root")
    if not data_root:
        raise DataError(f"{run.path / 'config.yaml'}: no data.root; pass --data FOLDER")
    from cnnlab.paths import dataset_folder

    # a manifest's paths are read from its root column's folder (clean.csv), else its own
    root = dataset_folder(data_root)
    if not root.is_dir():
        raise DataError(f"{root}: the run's dataset folder is gone; pass --data FOLDER")
    split_file = run.path / SPLIT
    if not split_file.is_file():
        raise DataError(f"{split_file}: missing; pass --data FOLDER to evaluate on a folder")
    with split_file.open(newline="", encoding="utf-8") as fh:
        samples = [(r["path"], r["label"]) for r in csv.DictReader(fh) if r["split"] == split]
    if not samples:
        raise DataError(f"{split_file}: no '{split}' samples; use --split val or --data FOLDER")
    return root, samples


LEFT_OUT = "left out: classes the model does not know"  # the report's data section


def _walk_skipped(found: Any, split: str) -> list[dict[str, str]]:
    """What the walk left out (a loose file in the root, a link out of it) and why; of a
    split-layout folder, only what lies in the evaluated split's folder or in the root."""
    from cnnlab.data.walk import SPLIT_NAMES

    def evaluated(rel: str) -> bool:
        top, _, below = rel.partition("/")
        return found.layout != "split" or not below or SPLIT_NAMES.get(top.lower()) == split

    return [{"path": rel, "reason": why} for rel, why in found.skipped if evaluated(rel)]


def _split_candidates(where: Path, found: Any, split: str | None) -> tuple[list[Any], str | None]:
    """The candidates of the evaluated split and its name: ``split`` (default test) of a
    split-layout folder or of a manifest with a split column; every image of a flat folder or
    every row of a manifest without one, and None (a ``split`` is refused: it has none)."""
    manifest = found.layout == "csv"
    has_splits = any(c.split for c in found.candidates) if manifest else found.layout == "split"
    if not has_splits:
        if split is not None:
            lacks, every = (
                ("no split column", "every row") if manifest
                else ("no split folders (train/, val/, test/)", "every image in its class folders")
            )  # fmt: skip
            raise ConfigError(
                f"--split {split}: {where} has {lacks}, so {every} is evaluated; leave out --split"
            )
        return list(found.candidates), None
    want = split or "test"
    chosen = [c for c in found.candidates if c.split == want]
    if not chosen:
        have = sorted({c.split for c in found.candidates if c.split})
        none = f"no rows of split '{want}'" if manifest else f"no images in a '{want}' split folder"
        raise DataError(f"{where}: {none}; it has {', '.join(have)}: choose one with --split")
    return chosen, want


def _known(
    where: Path, cands: list[Any], classes: Sequence[str], manifest: bool
) -> tuple[list[tuple[str, str]], dict[str, int]]:
    """[(relative path, label)] of the candidates whose label the model knows, and the count
    per label it does not know (left out with a warning; none known is an error)."""
    known = set(classes)
    unknown = dict(sorted(Counter(c.label for c in cands if c.label not in known).items()))
    samples = [(c.rel, c.label) for c in cands if c.label in known]
    knows = f"the model knows {', '.join(classes)}"
    group = "labels" if manifest else "class folders"
    if unknown and not samples:
        raise DataError(
            f"{where}: none of its {group} is one the model knows ({', '.join(unknown)}; {knows})"
        )
    if unknown:
        listed = ", ".join(f"{name} ({n})" for name, n in unknown.items())
        what = "rows with labels" if manifest else "images in class folders"
        warn(f"{where}: {sum(unknown.values())} {what} the model does not know are left out: "
             f"{listed}; {knows}")  # fmt: skip
    return samples, unknown


@dataclass(frozen=True)
class LabelledData:
    """What ``cnnlab eval`` scores: images under ``root``, and how the report names them."""

    root: Path  # the folder the sample paths are relative to
    samples: list[tuple[str, str]]  # (relative path, label), labels the model knows only
    left_out: dict[str, int]  # label the model does not know -> images left out
    unplaced: list[dict[str, str]]  # files the walk or manifest skipped, with the reason
    source: str  # names only (reports get shared): "split 'val' of five", "labels.csv"
    name: str  # the default evaluation folder: eval-val, eval-five-val, eval-labels
    split: str | None = None  # the split evaluated; None: every image (the data has no splits)
    caution: str = ""  # said in the report and warned: e.g. these are the run's val images


def folder_samples(folder: Path, split: str | None, classes: Sequence[str]) -> LabelledData:
    """A labelled folder's images of the classes the model knows, the images per class folder
    it does not know (left out, with a warning), and the files the walk skipped (``{"path",
    "reason"}``: loose files in the root, links out of it), which eval lists with the
    unreadable ones, as ``cnnlab data inspect`` does.

    A new batch of photos often holds a class the model never saw; its images cannot be
    scored against a label the model cannot output, and the folder is the user's (read-only
    to us), so they are counted and named instead of refusing the whole folder. Only a folder
    with no known class at all is an error. A split-layout folder is evaluated on ``split``
    alone (default test); a split it lacks is an error, never a silent fall back to every
    image (its training images included).
    """
    from cnnlab.data.walk import walk_folder

    check_split(split)
    if folder.is_file():
        raise DataError(
            f"{folder}: --data takes a labelled folder (ROOT/<class>/*.jpg) or a CSV manifest "
            "(a .csv file with columns path,label[,split]), not this file"
        )
    if not folder.is_dir():
        raise DataError(f"{folder}: labelled folder not found; expected ROOT/<class>/*.jpg")
    found = walk_folder(folder)
    chosen, used = _split_candidates(folder, found, split)
    samples, unknown = _known(folder, chosen, classes, False)
    skipped = _walk_skipped(found, split or "test")
    name = folder.resolve().name
    return _named(folder, (samples, unknown, skipped), name, name, used)


def manifest_samples(manifest: Path, split: str | None, classes: Sequence[str]) -> LabelledData:
    """:func:`folder_samples` for a CSV manifest ``path,label[,split][,root]``; its ``root``
    is the folder the paths are relative to.

    Read as training reads it (:func:`~cnnlab.data.manifest.read_manifest` from
    :func:`~cnnlab.data.issues_index.manifest_root`), so a labelled batch or ``cnnlab data
    issues``' clean.csv is evaluated on exactly the files training would take. Bad rows and
    paths outside the root are one error naming their lines. With a split column only
    ``split`` (default test) is evaluated; without one every row, and ``split`` is refused.
    """
    from cnnlab.data.issues_index import manifest_root
    from cnnlab.data.manifest import read_manifest
    from cnnlab.data.problems import raise_blocking

    check_split(split)
    manifest = manifest.resolve()
    root = manifest_root(manifest)
    found = read_manifest(manifest, root=root)
    raise_blocking([_for_eval(p) for p in found.problems], manifest, stops="the evaluation")
    chosen, used = _split_candidates(manifest, found, split)
    samples, unknown = _known(manifest, chosen, classes, True)
    skipped = _walk_skipped(found, split or "test")
    return _named(root, (samples, unknown, skipped), manifest.name, manifest.stem, used)


def _named(
    root: Path,
    found: tuple[list[tuple[str, str]], dict[str, int], list[dict[str, str]]],
    shown: str,
    stem: str,
    split: str | None,
) -> LabelledData:
    """``found`` (samples, left out, unplaced) named for the report (``shown``: the folder's
    or manifest's name) and the default folder (``eval-<stem>[-<split>]``), with the split
    when the data has splits: "evaluation on five" in a folder ``eval-five`` never said it was
    five's val split (explore I, finding 10)."""
    if split is None:
        return LabelledData(root, *found, shown, f"eval-{stem}", None)
    return LabelledData(root, *found, f"split '{split}' of {shown}", f"eval-{stem}-{split}", split)


def _for_eval(problem: Any) -> Any:
    """A manifest problem as eval words it: an outside path cannot be allowed here (eval has
    no ``data.allow_outside_paths``), so its fix is to move the file in."""
    if problem.kind != "outside path":
        return problem
    where = problem.message.rpartition("; ")[0]
    return replace(problem, message=f"{where}; move the file into it (eval reads none outside)")


def labelled_data(data: str | Path, split: str | None, classes: Sequence[str]) -> LabelledData:
    """``--data`` of ``cnnlab eval`` (runs and ensembles alike): a labelled folder
    (:func:`folder_samples`) or a ``.csv`` manifest (:func:`manifest_samples`).

    Raises:
        ConfigError: ``split`` is refused (unknown, or ``data`` has no splits).
        DataError: the folder or manifest cannot be evaluated (see the two functions).
    """
    path = Path(data).expanduser()
    if path.is_file() and path.suffix.lower() == ".csv":
        return manifest_samples(path, split, classes)
    return folder_samples(path, split, classes)


def eval_data(
    run: Any, data: str | Path | None, split: str | None, classes: Sequence[str]
) -> tuple[LabelledData, dict[str, str]]:
    """What ``cnnlab eval`` scores for a run or an ensemble: ``data`` (:func:`labelled_data`),
    or with None the run's own ``split`` (default test), plus the files of that split
    rewritten since training (``{path: "recorded sha1 -> now"}``; empty for ``data``).

    When the images are the run's own val or train images the result's ``caution`` says so
    (:func:`~cnnlab.evaluation.seen.seen_caution`), and a warning too."""
    from cnnlab.evaluation.seen import seen_caution

    changed: dict[str, str] = {}
    if data is not None:
        given = labelled_data(data, split, classes)
    else:
        split = split or "test"
        root, samples = split_samples(run, split)
        changed = check_split_files(root, run.path / SPLIT, split)
        source = f"split '{split}' of {root.name}"  # names only: reports get shared
        given = LabelledData(root, samples, {}, [], source, f"eval-{split}", split)
    caution = seen_caution(run, given.root, given.samples)
    if caution:
        warn(caution)
    return replace(given, caution=caution), changed


def evaluate_run(
    run_dir: str | Path,
    data: str | Path | None = None,
    split: str | None = None,
    out_dir: str | Path | None = None,
    tta: bool | None = None,
) -> dict[str, Any]:
    """Evaluate a finished run on its own split, another labelled folder or a CSV manifest.

    Args:
        run_dir: the run folder.
        data: a labelled folder (``ROOT/<class>/*`` or ``ROOT/{train,val,test}/<class>/*``)
            or a ``.csv`` manifest ``path,label[,split][,root]`` read as training reads it
            (paths relative to its folder or its root column; a bad row is an error naming
            its line); images of classes the model does not know are left out, with a
            warning. None evaluates the run's own ``split`` from ``split.csv`` and
            ``data.root``; files rewritten since training (their sha1 differs from
            split.csv's) are scored as they are now, with a warning, and listed in the report.
        split: ``test``, ``val`` or ``train``: the run's split, or that split of a
            split-layout ``data`` folder or of a manifest with a split column; None: test, or
            every image of a flat ``data`` folder or of a manifest without a split column
            (which have no splits, so naming one is an error).
        out_dir: evaluation folder; default ``RUN/eval-<split>`` for the run's own split,
            ``RUN/eval-<folder name or manifest stem>[-<split>]`` for ``data`` (the split when
            it has splits). A suffix is added if it exists.
        tta: flip test-time augmentation; None uses the model card's setting.

    Returns:
        The metrics dict plus ``out_dir``, ``report``, ``skipped``, ``changed``
        (``{path: "recorded sha1 -> now"}``, 12-digit prefixes) and ``caution`` (a sentence
        when the images are the run's own val or train images, else ``""``).

    Example:
        >>> evaluate_run("runs/cnn-1", data="photos/new")["accuracy"]  # doctest: +SKIP
        >>> evaluate_run("runs/cnn-1", data="batch/labels.csv")["accuracy"]  # doctest: +SKIP
    """
    from cnnlab.evaluation.stream import FileImages, predict_stream
    from cnnlab.predict import Predictor

    check_split(split)  # before the model loads
    run = load_run(run_dir)
    predictor = Predictor(run.path)
    classes = predictor.classes
    given, changed = eval_data(run, data, split, classes)
    root, samples, left_out = given.root, given.samples, given.left_out
    start = time.perf_counter()
    use_tta = predictor.tta if tta is None else tta
    probs, labels, paths, skipped = predict_stream(predictor, root, samples, classes, use_tta)
    skipped = given.unplaced + skipped
    if not paths:
        raise DataError(f"{root}: none of the {len(samples)} images could be read")
    images = FileImages(predictor, root, paths)
    elapsed = time.perf_counter() - start
    with evaluation_dir(Path(out_dir) if out_dir is not None else run.path / given.name) as out:
        metrics = evaluate_predictions(labels, probs, classes, out, images=images, paths=paths)
        write_predictions(out / "predictions.csv", paths, labels, probs, classes)
        source = given.source
        summary = {
            "source": source,
            "images": len(paths),
            "skipped_files": len(skipped),
            "left_out_images": sum(left_out.values()),
            "changed_files": len(changed),
            "tta": use_tta,
            "eval_time_s": round(elapsed, 3),
            "images_per_s": round(len(paths) / max(elapsed, 1e-9), 1),
        }
        trained = run.summary if (run.path / SUMMARY).is_file() else {}
        html, _ = write_report(
            out,
            title=f"{run.name}: evaluation on {source}",
            # the fit diagnosis names the best epoch training kept, not a guess from metrics.csv
            summary={**summary, **{k: trained.get(k) for k in ("best_epoch", "monitor")}},
            metrics=metrics,
            config=run.config,
            model_card=predictor.card,
            rows=run.metrics(),
            data_report={
                "source": source,
                "images": len(samples),
                "evaluated": len(paths),
                **({LEFT_OUT: left_out} if left_out else {}),
                **({CHANGED: changed} if changed else {}),
                "skipped": skipped,
            },
            plots={k: Path(v) for k, v in metrics["plots"].items()},
            mistakes=metrics["worst_mistakes"],
            caution=given.caution,
        )
        return {**metrics, **summary, "out_dir": str(out), "report": str(html), "skipped": skipped,
                "left_out": left_out, "changed": changed, "caution": given.caution}  # fmt: skip


def write_predictions(
    path: Path,
    paths: Sequence[str],
    labels: Sequence[int] | torch.Tensor,
    probs: torch.Tensor,
    classes: Sequence[str],
) -> None:
    """Per-image predictions as ``path,true,pred,prob`` (prob of the predicted class)."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["path", "true", "pred", "prob"])
    conf, pred = probs.max(dim=1)
    truth = [int(t) for t in labels]
    for p, t, k, c in zip(paths, truth, pred.tolist(), conf.tolist(), strict=True):
        writer.writerow([p, classes[t], classes[k], f"{c:.6f}"])
    atomic_write_text(path, buf.getvalue())


def print_evaluation(result: dict[str, Any]) -> None:
    """The one line ``cnnlab eval`` prints for a run or an ensemble: the numbers and the report
    (a result: ``--quiet`` keeps it).

    Macro F1 leaves out a class with no image here that was never predicted (the rule
    training's val/macro_f1 follows); the line says so when the folder lacks some classes.
    """
    why = macro_f1_note(result)
    note = f" ({why})" if why else ""
    from rich.markup import escape

    n = result.get("changed_files", 0)
    changed = f", {n} changed since training" if n else ""
    print_result(escape(  # a result, printed under --quiet too; never markup (paths hold [ ])
        f"accuracy {result['accuracy']:.4f}  macro F1 {result['macro_f1']:.4f}{note}  "
        f"on {result['images']} images ({len(result['skipped'])} skipped{changed}); "
        f"report: {result['report']}"
    ))  # fmt: skip
