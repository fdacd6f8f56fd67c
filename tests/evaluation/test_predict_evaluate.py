"""Predictor on files, folders, PIL images and arrays; evaluate_run on its split and a folder."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from tests.conftest import folder_digest, make_class_image

from cnnlab.data.image import load_image, to_array
from cnnlab.errors import ConfigError, DataError, RunError
from cnnlab.evaluation.evaluate import evaluate_predictions, evaluate_run
from cnnlab.predict import Predictor

from .conftest import CLASSES, add_bad_files


def test_predict_files_folders_pil_and_arrays(tiny_run):
    data = tiny_run.parent.parent / "data"
    p = Predictor(tiny_run)
    file = data / "class_1" / "img_000.png"
    pil = Image.open(file).convert("RGB")
    arr = np.asarray(pil)
    out = p.predict([file, data / "class_2", pil, arr, arr.astype(np.float32) / 255], top_k=2)
    assert len(out) == 1 + 8 + 3
    assert out[0]["path"] == str(file) and out[1]["path"].endswith("class_2/img_000.png")
    assert [r.get("index") for r in out[-3:]] == [9, 10, 11]
    for r in out:
        assert r["label"] in CLASSES and len(r["top_k"]) == 2
        assert r["top_k"][0] == (r["label"], r["prob"]) and r["top_k"][0][1] >= r["top_k"][1][1]
    # the same picture as a file, a PIL image or an array gives the same probabilities
    assert out[-3]["prob"] == pytest.approx(out[0]["prob"], abs=1e-6)
    assert out[-2]["prob"] == pytest.approx(out[0]["prob"], abs=1e-6)
    assert out[-1]["prob"] == pytest.approx(out[0]["prob"], abs=1e-5)


def test_predict_uses_validation_pixels_and_tta(tiny_run):
    p = Predictor(tiny_run)
    file = tiny_run.parent.parent / "data" / "class_0" / "img_003.png"
    u8 = torch.from_numpy(np.array(to_array(load_image(file), p.resize))).permute(2, 0, 1)[None]
    probs = p.predict_arrays(u8)
    assert probs.shape == (1, 3) and float(probs.sum()) == pytest.approx(1.0, abs=1e-5)
    assert p.predict(file, top_k=1)[0]["prob"] == pytest.approx(float(probs.max()), abs=1e-6)
    flipped = p.predict_arrays(u8.flip(-1))
    both = p.predict_arrays(u8, tta=True)
    assert torch.allclose(both, (probs + flipped) / 2, atol=1e-6)
    with pytest.raises(ConfigError, match="uint8"):
        p.predict_arrays(u8.float())


def test_fast_layout_and_kept_features_leave_the_numbers_as_they_were(tiny_run):
    """The Predictor runs channels_last and keeps the backbone's features on the way (issue
    11); its probabilities are the plain NCHW forward pass's, to float rounding."""
    from cnnlab.predict import build_model
    from cnnlab.runs import MODEL_CARD, WEIGHTS, read_json

    p = Predictor(tiny_run)
    x = torch.randint(0, 256, (40, 3, p.resize, p.resize), dtype=torch.uint8)
    probs, feats = p.predict_with_features(x, tta=True, batch_size=16)
    plain = build_model(read_json(tiny_run / MODEL_CARD), tiny_run / WEIGHTS).eval()
    with torch.no_grad():
        z = p.transform(x)
        ref = (torch.softmax(plain(z), 1) + torch.softmax(plain(z.flip(-1)), 1)) / 2
        ref_feats = plain.backbone(z)
    assert torch.allclose(probs, ref, atol=1e-5)
    assert torch.equal(probs.argmax(1), ref.argmax(1))
    assert feats is not None and torch.allclose(feats, ref_feats, atol=1e-4)
    assert torch.equal(p.predict_arrays(x, tta=True, batch_size=16), probs)


def test_bad_files_are_listed_not_fatal(tiny_run, tmp_path):
    folder = tmp_path / "in" / "mixed"
    good = folder / "good.png"
    folder.mkdir(parents=True)
    make_class_image(0, np.random.default_rng(1), 40).save(good)
    bad = add_bad_files(folder)
    (folder / ".DS_Store").write_bytes(b"junk")  # OS junk is ignored, not an error
    out = Predictor(tiny_run).predict([folder, tmp_path / "missing.png"])
    errors = {r["path"]: r["error"] for r in out if "error" in r}
    assert set(errors) == {str(b) for b in bad} | {str(tmp_path / "missing.png")}
    assert errors[str(folder / "empty.png")] == "empty"
    assert errors[str(tmp_path / "missing.png")] == "missing"
    assert errors[str(folder / "notes.jpg")].startswith("not an image")
    assert [r["path"] for r in out if "label" in r] == [str(good)]


def test_predictor_errors(tiny_run, tmp_path):
    with pytest.raises(RunError, match="not found"):
        Predictor(tmp_path / "nope")
    with pytest.raises(ConfigError, match="backend"):
        Predictor(tiny_run, backend="tflite")
    with pytest.raises(RunError, match="cnnlab export"):
        Predictor(tiny_run, backend="onnx")


def test_evaluate_run_on_own_split_never_overwrites(tiny_run):
    data = tiny_run.parent.parent / "data"
    before = folder_digest(data)
    first = evaluate_run(tiny_run)
    second = evaluate_run(tiny_run, split="val")
    third = evaluate_run(tiny_run)
    assert first["num_samples"] == 9 and second["num_samples"] == 6
    assert first["out_dir"].endswith("eval-test") and third["out_dir"].endswith("eval-test-2")
    out = tiny_run / "eval-test"
    saved = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert saved["accuracy"] == first["accuracy"]
    assert {
        "report.html",
        "report.md",
        "predictions.csv",
        "confusion_matrix.png",
        "reliability.png",
        "per_class_f1.png",
    } <= {p.name for p in out.iterdir()}
    assert folder_digest(data) == before  # the dataset is read-only to cnnlab


def test_evaluate_run_on_folder_with_bad_files_and_unknown_class(tiny_run, tmp_path):
    data = tiny_run.parent.parent / "data"
    bad = add_bad_files(data / "class_2")
    result = evaluate_run(tiny_run, data=data, out_dir=tmp_path / "ev")
    assert result["num_samples"] == 24 and len(result["skipped"]) == len(bad)
    html = (tmp_path / "ev" / "report.html").read_text(encoding="utf-8")
    assert all(f"class_2/{b.name}" in html for b in bad) and "Skipped files: 3" in html
    assert str(data.parent) not in html  # the report names the folder, never where it lives
    # a class the model never saw: its images are left out, counted and named, the rest scored
    (data / "class_9").mkdir()
    for i in range(2):
        make_class_image(0, np.random.default_rng(i)).save(data / "class_9" / f"x{i}.png")
    before = folder_digest(data)
    newer = evaluate_run(tiny_run, data=data, out_dir=tmp_path / "ev9")
    assert newer["num_samples"] == 24 and newer["left_out"] == {"class_9": 2}
    assert newer["left_out_images"] == 2 and len(newer["skipped"]) == len(bad)
    assert newer["accuracy"] == result["accuracy"]  # the known classes' images, scored alike
    html = (tmp_path / "ev9" / "report.html").read_text(encoding="utf-8")
    assert "classes the model does not know" in html and "class_9" in html
    assert folder_digest(data) == before
    # a folder with no class the model knows is still an error that names them
    only_new = tmp_path / "only_new"
    (only_new / "class_9").mkdir(parents=True)
    make_class_image(0, np.random.default_rng(0)).save(only_new / "class_9" / "x.png")
    with pytest.raises(DataError, match=r"none of its class folders.*class_9.*knows class_0"):
        evaluate_run(tiny_run, data=only_new)
    with pytest.raises(DataError, match="not found"):
        evaluate_run(tiny_run, data=tmp_path / "nowhere")
    listing = tmp_path / "list.txt"  # a file that exists was called "not found"
    listing.write_text("path,label\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"takes a labelled folder .* or a CSV manifest .*not this"):
        evaluate_run(tiny_run, data=listing)
    manifest = tmp_path / "list.csv"  # a CSV manifest is read as training reads it
    manifest.write_text("path,label\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"list.csv: the manifest lists no image files"):
        evaluate_run(tiny_run, data=manifest)


def test_evaluate_run_on_missing_split(tiny_run):
    rows = (tiny_run / "split.csv").read_text().replace(",test\n", ",train\n")
    (tiny_run / "split.csv").write_text(rows)
    with pytest.raises(DataError, match="no 'test' samples"):
        evaluate_run(tiny_run)


def test_split_of_a_folder_is_checked_never_a_silent_fallback(tiny_run, tmp_path):
    """A split-layout folder without val/ scored its train and test images together for
    ``--split val`` (and for ``--split bogus``); a flat folder ignored ``--split``."""
    from tests.conftest import write_folder

    layout = tmp_path / "layout"
    write_folder(layout / "train", classes=3, per_class=4, seed=1)
    write_folder(layout / "test", classes=2, per_class=3, seed=2)
    before = folder_digest(layout)
    test = evaluate_run(tiny_run, data=layout, out_dir=tmp_path / "ev-test")
    assert test["images"] == 6  # test/ only, the default
    train = evaluate_run(tiny_run, data=layout, split="train", out_dir=tmp_path / "t")
    assert train["images"] == 12
    with pytest.raises(DataError, match=r"no images in a 'val' split folder; it has test, train"):
        evaluate_run(tiny_run, data=layout, split="val")
    for split in ("bogus", "tset", "validation"):
        with pytest.raises(ConfigError, match=rf"unknown split '{split}'; use one of test, val"):
            evaluate_run(tiny_run, data=layout, split=split)
        with pytest.raises(ConfigError, match="unknown split"):
            evaluate_run(tiny_run, split=split)  # the run's own split.csv, too
    flat = tiny_run.parent.parent / "data"
    assert evaluate_run(tiny_run, data=flat, out_dir=tmp_path / "flat")["images"] == 24
    with pytest.raises(ConfigError, match=r"has no split folders.*leave out --split"):
        evaluate_run(tiny_run, data=flat, split="test")
    assert folder_digest(layout) == before
    assert not (tiny_run / "eval-val").exists()


def test_files_outside_class_folders_are_listed_as_skipped(tiny_run, tmp_path):
    """``data inspect`` reports a loose image in the root as not in a class folder; eval
    left it out without a word."""
    from tests.conftest import write_folder

    flat = write_folder(tmp_path / "flat", classes=3, per_class=2)
    make_class_image(0, np.random.default_rng(0)).save(flat / "stray photo.png")
    result = evaluate_run(tiny_run, data=flat, out_dir=tmp_path / "ev")
    assert result["skipped"] == [{"path": "stray photo.png", "reason": "not in a class folder"}]
    assert result["images"] == 6 and result["skipped_files"] == 1
    layout = tmp_path / "layout"
    write_folder(layout / "train", classes=3, per_class=2)
    write_folder(layout / "test", classes=3, per_class=2)
    for loose in (layout / "loose.png", layout / "train" / "t.png", layout / "test" / "x.png"):
        make_class_image(1, np.random.default_rng(1)).save(loose)
    result = evaluate_run(tiny_run, data=layout, out_dir=tmp_path / "ev-layout")
    assert sorted(s["path"] for s in result["skipped"]) == ["loose.png", "test/x.png"]


def test_evaluate_predictions_with_prefix_and_gallery(tmp_path):
    rng = np.random.default_rng(0)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    probs = torch.softmax(torch.from_numpy(rng.normal(size=(6, 3))).float(), dim=1)
    images = torch.from_numpy(rng.integers(0, 256, (6, 3, 16, 16), dtype=np.uint8))
    m = evaluate_predictions(
        y,
        probs,
        CLASSES,
        tmp_path,
        images=images,
        paths=[f"f{i}.png" for i in range(6)],
        prefix="val",
        worst=4,
    )
    assert (tmp_path / "val_metrics.json").is_file()
    wrong = int((probs.argmax(1) != y).sum())
    assert len(m["worst_mistakes"]) == min(4, wrong)
    confs = [w["prob"] for w in m["worst_mistakes"]]
    assert confs == sorted(confs, reverse=True)
    assert ("val_worst_mistakes" in m["plots"]) == (wrong > 0)
    assert all(name.startswith("val_") for name in m["plots"])
