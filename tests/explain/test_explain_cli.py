"""`cnnlab explain` through the command line: listing layers, one-line errors, stems."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tests.evaluation.conftest import build_run

from cnnlab.errors import ConfigError, ModelError
from cnnlab.explain.run import explain_run


def cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, COLUMNS="200", NO_COLOR="1")
    return subprocess.run(
        [sys.executable, "-m", "cnnlab", *map(str, args)], capture_output=True, text=True, env=env
    )


def test_layers_listing_and_one_line_errors(tmp_path) -> None:
    run = build_run(tmp_path)
    listed = cli("explain", run, "--layers")
    assert listed.returncode == 0, listed.stderr
    assert "backbone.blocks.2" in listed.stdout and "<- auto" in listed.stdout
    image = run.parent.parent / "data" / "class_0" / "img_000.png"
    wrong = cli("explain", run, image, "--class", "dog")
    assert wrong.returncode == 2 and len(wrong.stderr.strip().splitlines()) == 1
    assert "unknown class 'dog'" in wrong.stderr
    assert not (run / "explain").exists()  # nothing written before the check


def test_same_stems_get_suffixes_and_bad_layers_fail_early(tmp_path) -> None:
    run = build_run(tmp_path)
    data = run.parent.parent / "data"
    images = [data / "class_0" / "img_001.png", data / "class_1" / "img_001.png"]
    done = explain_run(run, [str(p) for p in images], out_dir=tmp_path / "out", filters=True)
    assert [r["npy"] for r in done["rows"]] == ["img_001.cam.npy", "img_001-2.cam.npy"]
    cams = [np.load(tmp_path / "out" / r["npy"]) for r in done["rows"]]
    assert all(c.shape == (32, 32) for c in cams)
    assert (tmp_path / "out" / "filters.png").is_file()
    first, second = (explain_run(run, [str(images[0])]) for _ in range(2))
    assert [Path(d["out_dir"]).name for d in (first, second)] == ["explain", "explain-2"]
    with pytest.raises(ModelError, match="did you mean"):
        explain_run(run, [str(images[0])], feature_maps="backbone.block.2", out_dir=tmp_path / "x")
    assert not (tmp_path / "x").exists()
    with pytest.raises(ConfigError, match="unknown CAM method"):
        explain_run(run, [str(images[0])], method="cam")


def test_class_named_in_nfd_is_the_nfc_class(tmp_path) -> None:
    """data.md: a name in NFC and in NFD is one class; ``--class`` refused the NFD spelling
    with a message naming a visually identical class."""
    import json
    import unicodedata

    run = build_run(tmp_path)
    classes = ["class_0", unicodedata.normalize("NFC", "ñandú.2"), "class_2"]
    (run / "classes.json").write_text(json.dumps(classes), encoding="utf-8")
    image = run.parent.parent / "data" / "class_0" / "img_000.png"
    nfd = unicodedata.normalize("NFD", classes[1])
    assert nfd != classes[1]
    done = explain_run(run, [str(image)], target=nfd, out_dir=tmp_path / "out")
    assert done["rows"][0]["target"] == classes[1]


def test_all_zero_maps_are_flagged_and_warned_once(tmp_path) -> None:
    """A 1x1 layer (listed by --layers, accepted by --layer) gives maps that are all 0.0: they
    were written like real heatmaps without a word. Now explain.csv flags each and the
    command warns once with the count; the maps themselves stay as computed."""
    import csv

    run = build_run(tmp_path)
    data = run.parent.parent / "data"
    images = [data / "class_0" / "img_000.png", data / "class_1" / "img_001.png"]
    out = tmp_path / "flat"
    res = cli("explain", run, *images, "--layer", "backbone.neck.0", "--out", out)
    assert res.returncode == 0, res.stderr
    warning = [line for line in res.stderr.splitlines() if "all zero" in line]
    assert len(warning) == 1 and "2 of 2 maps are all zero" in warning[0], res.stderr
    with (out / "explain.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["all_zero"] for r in rows] == ["yes", "yes"]
    assert all(not np.load(out / r["npy"]).any() for r in rows)
    assert res.stdout.count("(all zero)") == 2
    res = cli("explain", run, *images, "--out", tmp_path / "auto")  # the 8x8 auto layer
    assert res.returncode == 0 and "all zero" not in res.stdout + res.stderr, res.stderr
    with (tmp_path / "auto" / "explain.csv").open(newline="", encoding="utf-8") as fh:
        assert [r["all_zero"] for r in csv.DictReader(fh)] == ["no", "no"]
