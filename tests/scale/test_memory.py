"""Memory does not grow with the dataset: splits are views of the memory-mapped cache, and
statistics, evaluation and prediction stream in batches."""

from __future__ import annotations

from pathlib import Path

import torch
from tests.conftest import folder_digest, write_folder
from tests.evaluation.conftest import build_run

from cnnlab.config import DataConfig
from cnnlab.engine.setup import channel_stats, prepare_data
from cnnlab.predict import Predictor


def _mappings_of(file: Path) -> list[tuple[int, int]]:
    """Address ranges of this process's mappings of ``file`` (from /proc/self/maps)."""
    spans = []
    for line in Path("/proc/self/maps").read_text().splitlines():
        if line.endswith(str(file)):
            start, end = (int(v, 16) for v in line.split()[0].split("-"))
            spans.append((start, end))
    return spans


def test_every_split_is_a_view_of_the_memory_mapped_cache(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "data", classes=3, per_class=14, size=24)
    before = folder_digest(root)
    data = prepare_data(DataConfig(root=str(root), cache="disk"), 16)
    from cnnlab.paths import cache_dir

    npy = next(cache_dir("images").glob("*.npy"))
    spans = _mappings_of(npy.resolve())
    assert spans, "the decoded cache is not memory-mapped"
    base = data.images.untyped_storage()
    for split in ("train", "val", "test"):
        x, y = data.subset(split)
        assert len(x) == len(y) == data.count(split) > 0
        ptr = x.data_ptr()
        assert any(a <= ptr < b for a, b in spans), f"{split} was copied out of the memory map"
        assert x.untyped_storage().data_ptr() == base.data_ptr()
        # the rows are the split's rows, in the split's order
        assert torch.equal(x[0], data.images[int(data.index[split][0])])
        assert data.tensor(split)[0].data_ptr() == ptr
    assert folder_digest(root) == before


def test_channel_stats_stream_in_chunks_and_match_a_float_copy() -> None:
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (300, 3, 12, 12), dtype=torch.uint8, generator=gen)
    mean, std = channel_stats(images, chunk=7)
    ref = images.float().div(255)
    assert torch.allclose(torch.tensor(mean), ref.mean(dim=(0, 2, 3)), atol=1e-4)
    assert torch.allclose(torch.tensor(std), ref.std(dim=(0, 2, 3)), atol=1e-4)


def test_predict_on_many_files_decodes_one_batch_at_a_time(tmp_path: Path) -> None:
    run = build_run(tmp_path)
    files = sorted((tmp_path / "data").rglob("*.png"))  # 24 files
    predictor = Predictor(run)
    events: list[tuple[str, int]] = []
    load, forward = predictor.load, predictor.predict_arrays

    def counting_load(x):  # the real decoder, observed
        events.append(("load", 1))
        return load(x)

    def counting_forward(images, **kwargs):
        events.append(("forward", len(images)))
        return forward(images, **kwargs)

    predictor.load = counting_load  # type: ignore[method-assign]
    predictor.predict_arrays = counting_forward  # type: ignore[method-assign]
    results = predictor.predict([str(f) for f in files], batch_size=5)
    assert [r["path"] for r in results] == [str(f) for f in files]
    forwards = [n for kind, n in events if kind == "forward"]
    assert forwards == [5, 5, 5, 5, 4]
    # never more than one batch decoded ahead of the forward pass that consumes it
    pending = 0
    for kind, n in events:
        pending = pending + 1 if kind == "load" else pending - n
        assert 0 <= pending <= 5
    reference = Predictor(run).predict([str(f) for f in files], batch_size=64)
    for a, b in zip(results, reference, strict=True):
        assert a["label"] == b["label"] and abs(a["prob"] - b["prob"]) < 1e-5


def test_evaluation_batches_hold_a_fixed_number_of_pixels() -> None:
    from cnnlab.data.loaders import eval_batch_size

    assert eval_batch_size(32) == 256  # small images: the usual 256
    assert eval_batch_size(128) == 64  # 256 x 128 px held gigabytes of activations
    assert eval_batch_size(1024) == 8  # never below 8


def test_eval_decodes_and_classifies_one_chunk_at_a_time(tmp_path: Path) -> None:
    from cnnlab.evaluation.stream import predict_stream

    run = build_run(tmp_path)
    root = tmp_path / "data"
    samples = [(p.relative_to(root).as_posix(), p.parent.name) for p in sorted(root.rglob("*.png"))]
    predictor = Predictor(run)
    sizes: list[int] = []
    forward = predictor.predict_arrays

    def counting_forward(images, **kwargs):
        sizes.append(len(images))
        return forward(images, **kwargs)

    predictor.predict_arrays = counting_forward  # type: ignore[method-assign]
    probs, labels, paths, skipped = predict_stream(
        predictor, root, samples, predictor.classes, tta=False, batch_size=10
    )
    assert sizes == [10, 10, 4] and skipped == [] and len(paths) == len(labels) == 24
    whole = Predictor(run).predict([str(root / p) for p, _ in samples], tta=False)
    assert torch.allclose(probs.max(dim=1).values, torch.tensor([r["prob"] for r in whole]))
