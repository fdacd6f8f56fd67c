"""The last half of ``fit``: save what downstream tools read, evaluate, summarise, report.

Final evaluation goes through :class:`cnnlab.predict.Predictor` on the saved run folder, so the
numbers in the report are exactly what ``cnnlab.load(run).predict(...)`` gives later; a frozen
backbone's run scores its cached features with its head (the same network and pixels).
"""

from __future__ import annotations

import functools
import platform
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from cnnlab import __version__, runs
from cnnlab.config import Config, save_config
from cnnlab.runs import Run, write_json

if TYPE_CHECKING:  # annotations only: `cnnlab ensemble` reads _headline without lightning
    from cnnlab.engine.loop import Outcome
    from cnnlab.engine.setup import DataBundle, ModelBundle


def write_run_inputs(run_dir: Path, cfg: Config, data: DataBundle) -> None:
    """config.yaml, classes.json, split.csv and data_report.json: written before training."""
    from cnnlab.data.split import save_split

    resolved = cfg.model_copy(deep=True)
    # A CSV manifest stays the dataset (its folder alone is not one), so resume finds it.
    resolved.data.root = str(getattr(data.scan, "manifest", None) or data.root)
    resolved.data.img_size = data.img_size
    resolved.data.channels = data.channels  # type: ignore[assignment]
    save_config(resolved, run_dir / runs.CONFIG)
    write_json(run_dir / runs.CLASSES, data.classes)
    if not (run_dir / runs.SPLIT).is_file():
        save_split(data.split, run_dir / runs.SPLIT)
    write_json(run_dir / runs.DATA_REPORT, data.report())


def tta_mode(cfg: Config) -> str | None:
    """Flip TTA is used when asked, or (auto) when the model was trained with flips."""
    if cfg.eval.tta == "false":
        return None
    if cfg.eval.tta == "true":
        return "hflip"
    flips = cfg.data.hflip if cfg.data.hflip is not None else cfg.data.augment != "none"
    return "hflip" if flips and cfg.model.mode != "frozen" else None


def model_card(cfg: Config, data: DataBundle, mb: ModelBundle, outcome: Outcome) -> dict:
    from importlib.metadata import version

    from cnnlab.models.card import describe_model

    described = describe_model(mb.model, data.img_size, data.channels)
    return {
        "format": "cnnlab-model/1",
        "architecture": mb.name,
        "create_kwargs": mb.create_kwargs,
        "classes": data.classes,
        "num_classes": len(data.classes),
        "input": {
            "img_size": data.img_size,
            "resize": data.resize,
            "crop_pct": cfg.data.crop_pct,
            "channels": data.channels,
            "mean": list(mb.mean),
            "std": list(mb.std),
        },
        "mode": mb.mode,
        "pretrained": mb.pretrained,
        "weights_source": mb.weights_source,
        "params": described.get("params"),
        "macs": described.get("macs"),
        "tta": tta_mode(cfg),
        "precision": outcome.precision,
        "versions": {
            "cnnlab": __version__,
            "torch": torch.__version__,
            "timm": version("timm"),  # not `import timm`: ~1 s for runs of our own CNNs
            "python": platform.python_version(),
        },
    }


def finalize(
    run_dir: Path,
    cfg: Config,
    data: DataBundle,
    mb: ModelBundle,
    outcome: Outcome,
    train_time: float,
    fields: dict[str, Any] | None = None,
) -> Run:
    """Write weights and card, evaluate val/test through the Predictor, summary and report;
    ``fields`` (what the run's observers record, :func:`~cnnlab.engine.observe.observer_fields`)
    are added to the summary."""
    from cnnlab.console import info
    from cnnlab.engine.precision import resolve_accelerator
    from cnnlab.evaluation.evaluate import evaluate_predictions, write_predictions
    from cnnlab.evaluation.plotjobs import PlotJobs
    from cnnlab.export import drop_stale_exports
    from cnnlab.models.state import save_weights
    from cnnlab.predict import Predictor

    mb.model.eval()
    stale = drop_stale_exports(run_dir)  # a resumed run: made from the weights replaced here
    if stale:
        info(f"removed {', '.join(stale)}: exported from the old weights; run `cnnlab export`")
    save_weights(mb.model, run_dir / runs.WEIGHTS)
    card = model_card(cfg, data, mb, outcome)
    write_json(run_dir / runs.MODEL_CARD, card)
    # built on first use: a frozen backbone's splits are scored from cached features and a
    # tune's trials skip the Grad-CAM figures, so a head trial never needs it (~0.2 s)
    predictor = functools.cache(lambda: Predictor(run_dir))
    plots = PlotJobs(cfg.eval.plot_processes)  # val, test and learning curves drawn together
    results: dict[str, Any] = {}
    for split in ("val", "test"):
        if data.count(split) == 0:
            continue
        x, y = data.tensor(split)
        if split == "val" and card["tta"] is not None and cfg.eval.tta == "auto":
            probs, feats = _choose_tta(predictor(), x, y, data.classes, cfg.train.monitor, card)
            write_json(run_dir / runs.MODEL_CARD, card)  # before anything reads it again
        else:
            probs, feats = _split_probs(predictor, mb, data, split, x, cfg, card["tta"] is not None)
        paths = [data.paths[i] for i in data.index[split].tolist()]
        write_predictions(run_dir / "predictions" / f"{split}.csv", paths, y, probs, data.classes)
        runs.write_npy(runs.probs_file(run_dir, split), probs.numpy().astype("float32"))
        results[split] = evaluate_predictions(
            y,
            probs,
            data.classes,
            out_dir=run_dir / runs.PLOTS,
            prefix=split,
            images=x,
            paths=paths,
            top_k=cfg.eval.top_k,
            ece_bins=cfg.eval.ece_bins,
            worst=cfg.eval.worst_mistakes,
            plots=plots,
        )
        if split == "test" and cfg.eval.explain:
            worst = [m["row"] for m in results[split]["worst_mistakes"]]
            # computed as late as possible: while a forked child draws the other plots
            plots.add_here(explain_jobs, predictor, x, y, probs, feats, worst, run_dir, split, cfg)
    write_json(run_dir / runs.DATA_REPORT, data.report())  # files gone since the scan, too
    run = Run(run_dir)
    rows = run.metrics()
    # decided once, by train.monitor, when the best checkpoint was restored
    best_epoch = outcome.best_epoch or len(rows) or outcome.epochs_run
    if rows:
        from cnnlab.evaluation.plots import plot_learning_curves

        plots.add(plot_learning_curves, rows, run_dir / runs.PLOTS / "learning_curves.png",
                  best_epoch)  # fmt: skip
    summary = {
        "metrics": {s: _headline(m) for s, m in results.items()},
        "best_epoch": best_epoch,
        "monitor": cfg.train.monitor,
        "epochs_run": outcome.epochs_run,
        "stopped_early": outcome.stopped_early,
        "stopped_by_time_budget": outcome.interrupted_by_time,
        "validation_skipped_by_time_budget": outcome.validation_skipped,
        "train_time_s": round(train_time, 2),
        "model": mb.name,
        "mode": mb.mode,
        "num_classes": len(data.classes),
        "precision": outcome.precision,
        "accelerator": resolve_accelerator(cfg.train.accelerator),  # gpu or cpu, as trained
        "lr": outcome.lr,
        "batch_size": cfg.train.batch_size,  # as trained (train.min_steps may lower it)
        "freeze_bn_stats": cfg.train.freeze_bn_stats == "true",
        "tta": card["tta"],
        "params": card["params"],
        "images": {s: data.count(s) for s in ("train", "val", "test")},
        "skipped_files": len(data.scan.skipped) + len(data.skipped_at_load),
        "created": runs.creation_time(run_dir),  # kept by a resume: read before rewriting
        **(fields or {}),
        "complete": True,
    }
    write_json(run_dir / runs.SUMMARY, summary)
    _draw_and_report(plots, run, cfg, summary, results, rows, card)
    return run


def _draw_and_report(
    plots: Any, run: Run, cfg: Config, summary: dict, results: dict, rows: list, card: dict
) -> None:
    """Draw the plots, then write the report that embeds them: now, or (inside
    :func:`~cnnlab.evaluation.background.deferred_figures`) in a forked child while this
    process goes on; every number is already on disk either way."""
    from cnnlab.evaluation import background

    def report() -> None:
        _report(run, cfg, summary, results, rows, card)

    if background.deferring():
        background.add(run.path, plots.start(then=report, share=background.sharing()))
        return
    plots.draw()
    report()


def _split_probs(
    predictor: Callable[[], Any],
    mb: ModelBundle,
    data: DataBundle,
    split: str,
    x: torch.Tensor,
    cfg: Config,
    tta: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Class probabilities of one split, through the saved run's Predictor, and the backbone
    features of the same pass (the report's embedding plot draws them).

    A frozen backbone (no flip TTA) gives the features ``train_frozen`` cached, so only the
    head runs on them: the same network on the same pixels, with the test split's backbone
    pass made once per dataset instead of once per run (a tune's head trials: seconds each).
    """
    if mb.mode != "frozen" or tta:
        return predictor().predict_with_features(x, tta=tta)
    from cnnlab.data.transforms import build_eval_transform
    from cnnlab.engine.features import compute_features
    from cnnlab.engine.loop import feature_key
    from cnnlab.engine.precision import torch_device

    eval_tf = build_eval_transform(data.img_size, mb.mean, mb.std)
    key = feature_key(mb, data, split, 1)
    device = torch_device(cfg.train.accelerator)
    feats = compute_features(mb.model.backbone, x, eval_tf, 128, cache_key=key, device=device)
    head = mb.model.head.eval()
    head_device = next(head.parameters()).device
    with torch.no_grad():
        return torch.softmax(head(feats.to(head_device)).float(), dim=1).cpu(), feats


def _choose_tta(
    predictor: Any, x: torch.Tensor, y: torch.Tensor, classes: list[str], monitor: str, card: dict
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``eval.tta=auto``: keep flip TTA only if it does not worsen the monitored metric on val.

    Flip augmentation is on by default, and its TTA is the default with it; but on images
    whose meaning changes when mirrored (digits, text, left/right signs) averaging with the
    mirror image can cost a lot (val macro F1 0.65 without, 0.54 with, on digits). Both
    passes are the TTA pass itself, so the choice is free; it is made on val, like the best
    epoch, never on test. ``card`` gets ``tta`` (None when dropped) and ``tta_val`` (the
    monitored value without and with flips); the predictor follows, so test, predict, eval,
    export and explain use the same choice. Returns the chosen val probabilities and features.
    """
    from cnnlab.console import info
    from cnnlab.evaluation.metrics import monitored_score

    plain, flipped, feats = predictor.predict_flip_pair(x)
    both = (plain + flipped) / 2
    key = monitor.split("/", 1)[1]  # a train/ monitor is judged on val too
    metric = f"val/{key}"
    without, with_ = (monitored_score(y, p, len(classes), key) for p in (plain, both))
    keep = with_ <= without if key == "loss" else with_ >= without
    card["tta_val"] = {"metric": metric, "without": without, "with": with_}
    if keep:
        return both, feats
    card["tta"] = None
    predictor.tta = False
    info(
        f"flip TTA off: it made {metric} worse ({without:.4f} without, {with_:.4f} with; "
        "eval.tta=true keeps it)"
    )
    return plain, feats


def explain_jobs(
    predictor: Callable[[], Any],
    x: Any,
    y: Any,
    probs: Any,
    feats: Any,
    worst: list[int],
    run_dir: Path,
    split: str,
    cfg: Config,
) -> list[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]]:
    """The Grad-CAM galleries and the embedding of ``split``, as plot jobs to draw.

    The CAMs are computed here, in the process that holds the model (with grad-cam's import,
    about a second the first time); only their drawing is returned (docs/explain.md). A
    model the CAM cannot handle costs the report these figures, never the finished run.
    """
    from cnnlab.console import warn
    from cnnlab.errors import CnnlabError
    from cnnlab.explain.gallery import report_plots

    try:
        calls = report_plots(predictor(), x, y.numpy(), probs.numpy(), run_dir / runs.PLOTS,
                             split, worst, cfg.eval.embedding, feats=feats)  # fmt: skip
    except CnnlabError as exc:
        warn(f"report: no Grad-CAM gallery or embedding ({exc})")
        return []
    return [(fn, args, {}) for fn, args in calls]


def _headline(metrics: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "accuracy",
        "macro_f1",
        "balanced_accuracy",
        "top_k_accuracy",
        "weighted_f1",
        "log_loss",
        "ece",
        "num_samples",
        "majority_accuracy",
    )
    return {k: metrics[k] for k in keys if k in metrics}


def _report(run: Run, cfg: Config, summary: dict, results: dict, rows: list, card: dict) -> None:
    from cnnlab.evaluation.report import write_report

    plots_dir = run.path / runs.PLOTS
    write_report(
        run.path,
        title=f"{run.name}: {summary['model']} ({summary['mode']})",
        summary=summary,
        metrics=results,
        config=cfg.model_dump(mode="json"),
        model_card=card,
        data_report=runs.read_json(run.path / runs.DATA_REPORT),
        rows=rows,
        plots={p.stem: p for p in sorted(plots_dir.glob("*.png"))},
    )
