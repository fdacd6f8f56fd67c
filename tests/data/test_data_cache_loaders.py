"""Decoded cache and loaders (RELIABILITY 14, 15, 26)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch
from tests.conftest import folder_digest, write_folder

from cnnlab.data.cache import build_cache
from cnnlab.data.loaders import make_loader
from cnnlab.data.scan import scan_dataset


@pytest.fixture
def ds(tmp_path: Path):
    root = write_folder(tmp_path / "ds", classes=2, per_class=6, size=20)
    scan = scan_dataset(root, progress=False)
    return root, [r.path for r in scan.records], [int(r.label[-1]) for r in scan.records]


@pytest.mark.parametrize("mode", ["memory", "disk", "auto"])
def test_cache_modes_same_pixels(ds, mode: str) -> None:
    root, paths, _ = ds
    before = folder_digest(root)
    ref = build_cache(root, paths, 16, 3, mode="memory", progress=False).images
    cache = build_cache(root, paths, 16, 3, mode=mode, progress=False)
    assert cache.images.dtype == torch.uint8 and cache.images.shape == (12, 3, 16, 16)
    assert torch.equal(cache.images, ref) and cache.keep == list(range(12))
    assert folder_digest(root) == before


def test_disk_cache_reused_and_invalidated(ds) -> None:
    root, paths, _ = ds
    before = folder_digest(root)
    first = build_cache(root, paths, 8, 1, mode="disk", progress=False)
    second = build_cache(root, paths, 8, 1, mode="disk", progress=False)
    assert second.path == first.path and torch.equal(first.images, second.images)
    third = build_cache(root, paths, 12, 1, mode="disk", progress=False)
    assert third.path != first.path and third.images.shape == (12, 1, 12, 12)
    assert folder_digest(root) == before


@pytest.mark.parametrize("mode", ["memory", "disk"])
def test_file_gone_after_scan_is_left_out(ds, mode: str) -> None:
    root, paths, _ = ds
    (root / paths[3]).unlink()
    (root / paths[5]).write_bytes(b"broken")
    cache = build_cache(root, paths, 8, 3, mode=mode, progress=False)
    assert [(s.path, s.reason) for s in cache.failed] == [
        (paths[3], "missing"),
        (paths[5], "not an image"),
    ]
    assert len(cache.images) == 10 and 3 not in cache.keep and 5 not in cache.keep
    full = build_cache(
        root,
        [p for i, p in enumerate(paths) if i in cache.keep],
        8,
        3,
        mode="memory",
        progress=False,
    )
    assert torch.equal(full.images, cache.images)


def test_loader_batches_and_determinism(ds) -> None:
    root, paths, labels = ds
    images = build_cache(root, paths, 8, 3, mode="memory", progress=False).images

    def batches(seed: int):
        return [(x.clone(), y.clone()) for x, y in make_loader(images, labels, 5, True, seed)]

    a, b, c = batches(0), batches(0), batches(1)
    assert [x.shape for x, _ in a] == [(5, 3, 8, 8), (5, 3, 8, 8), (2, 3, 8, 8)]
    assert a[0][0].dtype == torch.uint8 and a[0][1].dtype == torch.int64
    assert all(
        torch.equal(x1, x2) and torch.equal(y1, y2) for (x1, y1), (x2, y2) in zip(a, b, strict=True)
    )
    assert not all(torch.equal(y1, y2) for (_, y1), (_, y2) in zip(a, c, strict=True))
    seen = torch.cat([y for _, y in a]).sort().values
    assert torch.equal(seen, torch.tensor(sorted(labels)))


@pytest.mark.parametrize("workers", [0, 2])
def test_lazy_loader_skips_bad_file_naming_it(ds, workers: int, capfd) -> None:
    root, paths, labels = ds
    cache = build_cache(root, paths, 8, 3, mode="off", progress=False)
    (root / paths[2]).write_bytes(b"")
    loader = make_loader(cache.images, labels, 4, False, 0, num_workers=workers)
    total = sum(len(y) for _, y in loader)
    assert total == 11
    assert paths[2] in capfd.readouterr().err.replace("\n", "")


def test_decoded_cache_keyed_on_content_not_size_and_mtime(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "ds", classes=2, per_class=4, ext=".bmp")  # equal sizes
    target, other = root / "class_0/img_000.bmp", root / "class_1/img_003.bmp"
    scan = scan_dataset(root, progress=False)
    paths, hashes = [r.path for r in scan.records], [r.sha1 for r in scan.records]
    first = build_cache(root, paths, 16, 3, mode="disk", progress=False, hashes=hashes)
    st = target.stat()
    shutil.copyfile(other, target)  # replaced in place, then size and mtime restored
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (target.stat().st_size, target.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    rescan = scan_dataset(root, progress=False)
    new_hashes = [r.sha1 for r in rescan.records]
    assert new_hashes != hashes
    second = build_cache(root, paths, 16, 3, mode="disk", progress=False, hashes=new_hashes)
    assert second.path != first.path
    row = paths.index("class_0/img_000.bmp")
    fresh = build_cache(root, paths, 16, 3, mode="memory", progress=False).images
    assert torch.equal(second.images[row], fresh[row])
    assert not torch.equal(first.images[row], second.images[row])
