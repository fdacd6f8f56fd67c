"""ONNX / TorchScript export with parity, the ONNX backend, and the commands via subprocess."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from tests.conftest import write_folder

import cnnlab
from cnnlab.export import export_run
from cnnlab.predict import Predictor
from cnnlab.runs import weights_digest

from .conftest import add_bad_files, build_run


@pytest.mark.parametrize("model", ["tiny_cnn", "cnn"])
def test_onnx_parity_and_backend_agrees_with_torch(tmp_path, model):
    run = build_run(tmp_path, model=model)
    record = export_run(run, format="onnx")
    assert record["parity_ok"] and record["max_abs_diff"] <= 1e-4
    assert "images of the run's dataset" in record["parity_inputs"]
    card = json.loads((run / "model.json").read_text(encoding="utf-8"))
    assert card["exports"]["onnx"]["file"] == "model.onnx"
    side = json.loads((run / "export.json").read_text(encoding="utf-8"))
    assert side["model.onnx"]["preprocessing"]["resize"] == 36
    assert side["model.onnx"]["input"]["shape"] == ["batch", 3, 32, 32]
    folder = tmp_path / "data"
    torch_out = Predictor(run).predict(folder, top_k=3)
    onnx_out = Predictor(run, backend="onnx").predict(folder, top_k=3, batch_size=5)
    assert [r["label"] for r in onnx_out] == [r["label"] for r in torch_out]
    assert np.allclose([r["prob"] for r in onnx_out], [r["prob"] for r in torch_out], atol=1e-5)


@pytest.mark.slow
def test_onnx_parity_efficientnet_lite0(tmp_path):
    run = build_run(tmp_path, model="efficientnet_lite0", img_size=64, resize=72)
    record = export_run(run, format="onnx", out=tmp_path / "exports" / "lite0.onnx")
    assert record["max_abs_diff"] <= 1e-4 and record["parity_ok"]
    assert (tmp_path / "exports" / "export.json").is_file()


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated")
def test_torchscript_round_trip(tmp_path):
    run = build_run(tmp_path)
    record = export_run(run, format="torchscript")
    assert record["max_abs_diff"] <= 1e-5
    loaded = torch.jit.load(str(run / "model.torchscript.pt"))
    predictor = Predictor(run)
    x = predictor.transform(torch.randint(0, 256, (3, 3, 36, 36), dtype=torch.uint8))
    with torch.no_grad():
        assert torch.allclose(loaded(x), predictor.model(x), atol=1e-5)


def _cli(func: str, *args: str) -> subprocess.CompletedProcess[str]:
    code = f"import typer; from cnnlab.commands.evaluate import {func}; typer.run({func})"
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=120
    )


def _main(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m cnnlab ARGS``: through ``main()``, which turns errors into exit codes."""
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "cnnlab", *args], capture_output=True, text=True, env=env,
        timeout=300,
    )  # fmt: skip


@pytest.mark.slow
def test_cli_predict_and_eval_list_bad_files(tiny_run, tmp_path):
    data = tiny_run.parent.parent / "data"
    bad = add_bad_files(data / "class_1")
    out_csv = tmp_path / "pred.csv"
    res = _cli("predict_command", str(tiny_run), str(data), "--top-k", "2", "--out", str(out_csv))
    assert res.returncode == 0, res.stderr
    assert "3 of 27 files could not be read" in res.stderr
    with out_csv.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["path", "label", "prob", "top_k_labels", "top_k_probs", "error"]
    errors = {Path(r["path"]).name: r["error"] for r in rows if r["error"]}
    assert set(errors) == {b.name for b in bad}
    assert all(len(r["top_k_labels"].split(";")) == 2 for r in rows if not r["error"])
    res = _cli("eval_command", str(tiny_run), "--data", str(data), "--out", str(tmp_path / "ev"))
    assert res.returncode == 0, res.stderr
    assert all(f"skipped class_1/{b.name}" in res.stderr for b in bad)
    assert (tmp_path / "ev" / "report.html").is_file()


@pytest.mark.slow
def test_predict_out_prints_counts_not_every_row(tiny_run, tmp_path):
    """With --out the rows go to the CSV; stdout says where, and how many images each class
    got (a 4,000-image folder printed 8,000 lines). Without --out, a row per image."""
    data = tiny_run.parent.parent / "data"
    add_bad_files(data / "class_1")
    images = sorted(p.name for p in data.rglob("*.png") if p.stat().st_size > 100)
    out_csv = tmp_path / "pred.csv"
    res = _cli("predict_command", str(tiny_run), str(data), "--out", str(out_csv))
    assert res.returncode == 0, res.stderr
    with out_csv.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 27 and not any(name in res.stdout for name in images)
    assert f"wrote 27 predictions to {out_csv} (24 predicted, 3 unreadable)" in res.stdout
    assert f"3 of 27 files could not be read (see the error column of {out_csv})" in res.stderr
    counts = {}
    for row in rows:
        if not row["error"]:
            counts[row["label"]] = counts.get(row["label"], 0) + 1
    lines = res.stdout.splitlines()
    for label, n in counts.items():
        assert any(line.split() == ["│", label, "│", str(n), "│"] for line in lines), label
    assert len(lines) < 12
    res = _cli("predict_command", str(tiny_run), str(data))
    assert res.returncode == 0, res.stderr
    assert all(name in res.stdout for name in images)


@pytest.mark.slow
def test_failed_parity_check_exits_non_zero_and_is_not_used(tiny_run):
    """Issue 10 item 11: a real parity failure (tolerance 0: ONNX Runtime's kernels differ
    from PyTorch's in the last bits) exits 1 with one line, and the export is not served."""
    from cnnlab.errors import RunError

    env = {**os.environ, "COLUMNS": "200"}
    res = subprocess.run(
        [sys.executable, "-m", "cnnlab", "export", str(tiny_run), "--tolerance", "0"],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert res.returncode == 1, res.stdout + res.stderr
    assert res.stderr.strip().startswith("error:") and len(res.stderr.strip().splitlines()) == 1
    assert "parity check failed" in res.stderr and "Traceback" not in res.stderr
    record = json.loads((tiny_run / "export.json").read_text(encoding="utf-8"))["model.onnx"]
    assert record["parity_ok"] is False and record["max_abs_diff"] > 0
    assert record["parity_tolerance"] == 0
    with pytest.raises(RunError, match="parity check"):
        Predictor(tiny_run, backend="onnx")


@pytest.mark.slow
def test_resumed_run_refuses_its_old_onnx_until_exported_again(tmp_path):
    """A resume replaces the weights: the ONNX backend must never answer with the old file."""
    data = write_folder(tmp_path / "data", classes=3, per_class=8)
    small = {"model": "cnn", "model__cnn__filters": [8, 16], "precision": "32"}
    run = cnnlab.train(str(data), epochs=1, runs_dir=str(tmp_path / "runs"), **small)
    assert run is not None
    export_run(run.path, format="onnx")
    export_run(run.path, format="torchscript")
    cnnlab.train(resume=run.path, epochs=2)
    for stale in ("model.onnx", "model.torchscript.pt", "export.json"):
        assert not (run.path / stale).exists(), stale
    res = _main("predict", str(run.path), str(data), "--backend", "onnx")
    assert res.returncode == 2, res.stdout + res.stderr
    assert res.stderr.strip().startswith("error:") and "Traceback" not in res.stderr
    assert f"cnnlab export {run.path} --format onnx" in res.stderr

    record = export_run(run.path, format="onnx")
    assert record["weights_sha256"] == weights_digest(run.path)
    torch_out = Predictor(run.path).predict(data)
    onnx_out = Predictor(run.path, backend="onnx").predict(data)
    assert [r["label"] for r in onnx_out] == [r["label"] for r in torch_out]
    assert np.allclose([r["prob"] for r in onnx_out], [r["prob"] for r in torch_out], atol=1e-5)


def test_onnx_export_of_other_weights_is_refused(tmp_path):
    """The recorded digest, not the file name, decides: new weights under an old export."""
    from cnnlab.errors import RunError

    run = build_run(tmp_path / "a")
    export_run(run, format="onnx")
    other = build_run(tmp_path / "b", seed=1)
    (run / "model.safetensors").write_bytes((other / "model.safetensors").read_bytes())
    with pytest.raises(RunError, match="not exported from the run's current"):
        Predictor(run, backend="onnx")
    card = json.loads((run / "model.json").read_text(encoding="utf-8"))
    del card["exports"]  # the old fallback: model.onnx with no record
    (run / "model.json").write_text(json.dumps(card), encoding="utf-8")
    with pytest.raises(RunError, match="no ONNX export recorded"):
        Predictor(run, backend="onnx")


@pytest.mark.parametrize(("resize", "tta"), [(32, "hflip"), (36, None)])
def test_export_steps_reproduce_predict(tmp_path, resize, tta):
    """export.json's steps, followed literally with onnxruntime, give `predict`'s numbers."""
    import onnxruntime as ort

    run = build_run(tmp_path, resize=resize, tta=tta)
    export_run(run, format="onnx")
    prep = json.loads((run / "export.json").read_text(encoding="utf-8"))["model.onnx"][
        "preprocessing"
    ]
    steps = prep["steps"]
    crops = [s for s in steps if s.startswith("centre-crop 32x32")]
    assert len(crops) == (resize != 32) and len(set(steps)) == len(steps), steps
    assert prep["tta"] == tta
    assert any("tta: hflip" in s for s in steps) == (tta == "hflip")

    image = next((tmp_path / "data" / "class_0").iterdir())
    predictor = Predictor(run)
    side = predictor.load(image).astype(np.float32) / 255  # decode, square, resize
    off = (resize - 32) // 2
    x = side[off : off + 32, off : off + 32]
    x = ((x - prep["mean"]) / prep["std"]).transpose(2, 0, 1)[None].astype(np.float32)
    session = ort.InferenceSession(str(run / "model.onnx"), providers=["CPUExecutionProvider"])
    probs = torch.softmax(torch.from_numpy(session.run(None, {"input": x})[0]), 1)
    if tta == "hflip":
        flipped = np.ascontiguousarray(x[..., ::-1])
        probs = (
            probs + torch.softmax(torch.from_numpy(session.run(None, {"input": flipped})[0]), 1)
        ) / 2
    expected = predictor.predict([image])[0]
    assert float(probs.max()) == pytest.approx(expected["prob"], abs=1e-5)


def test_opset_outside_the_exporters_range_is_one_error_line(tmp_path):
    """It used to fail after tracing: a RuntimeError traceback and the whole Torch IR graph."""
    from cnnlab.errors import ConfigError
    from cnnlab.export import onnx_opsets

    run = build_run(tmp_path)
    supported = onnx_opsets()
    assert supported is not None and 17 in supported
    res = _main("export", str(run), "--opset", "30")
    assert res.returncode == 2, res.stdout + res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --opset 30"), res.stderr
    assert f"opsets {supported.start} to {supported.stop - 1}" in lines[0]
    for opset in (0, supported.start - 1, supported.stop):
        with pytest.raises(ConfigError, match=f"--opset {opset}:"):
            export_run(run, format="onnx", opset=opset)
    assert not (run / "model.onnx").exists() and not (run / "export.json").exists()
    assert export_run(run, format="torchscript", opset=30)["opset"] is None  # ONNX only


def test_export_steps_describe_the_resize_to_the_pixel(tmp_path):
    """export.json's resize step, done as written, gives `predict`'s pixels exactly; the
    crop-then-resize the old text described does not (the filter reads past the square)."""
    from PIL import Image

    run = build_run(tmp_path, resize=36)
    export_run(run, format="torchscript")
    record = json.loads((run / "export.json").read_text(encoding="utf-8"))["model.torchscript.pt"]
    prep = record["preprocessing"]
    step = next(s for s in prep["steps"] if s.startswith("resize the centred largest square"))
    assert "box=(left, top, left + s, top + s)" in step and "do not crop the square" in step
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (40, 91, 3), dtype=np.uint8))  # odd margin
    predictor = Predictor(run)
    w, h = image.size
    s, left, top = min(w, h), (w - min(w, h)) / 2, (h - min(w, h)) / 2
    box = (left, top, left + s, top + s)
    as_written = image.resize((36, 36), Image.Resampling.BILINEAR, box=box)
    assert np.array_equal(np.asarray(as_written), predictor.load(image))
    cropped = image.crop((int(left), int(top), int(left) + s, int(top) + s))
    crop_first = cropped.resize((36, 36), Image.Resampling.BILINEAR)
    assert not np.array_equal(np.asarray(crop_first), predictor.load(image))

    # a large JPEG is decoded at reduced scale, by the n the first step gives
    photo = tmp_path / "photo.jpg"
    Image.fromarray(rng.integers(0, 256, (200, 300, 3), dtype=np.uint8)).save(photo)
    assert "n <= min(width // 36, height // 36)" in prep["steps"][0]
    n = max(k for k in (1, 2, 4, 8) if k <= min(300 // 36, 200 // 36))
    with Image.open(photo) as img:
        img.draft(None, (36, 36))
        img = img.convert("RGB")
        assert img.size == (-(-300 // n), -(-200 // n)) == (75, 50)
        side = min(img.size)
        corner = ((img.width - side) / 2, (img.height - side) / 2)
        box = (*corner, corner[0] + side, corner[1] + side)
        drafted = img.resize((36, 36), Image.Resampling.BILINEAR, box=box)
    assert np.array_equal(np.asarray(drafted), predictor.load(photo))


def test_quiet_keeps_the_results_of_eval_and_predict(tiny_run, tmp_path):
    """README: ``-q`` prints only results and errors; eval's line and predict's table were
    silenced with the chatter."""
    image = str(tiny_run.parent.parent / "data" / "class_0" / "img_000.png")
    res = _main("-q", "eval", str(tiny_run), "--out", str(tmp_path / "ev"))
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("accuracy ") and "on 9 images" in res.stdout
    assert "report: " in res.stdout and len(res.stdout.strip().splitlines()) == 1
    res = _main("-q", "predict", str(tiny_run), image, "--top-k", "2")
    assert res.returncode == 0, res.stderr
    assert "img_000.png" in res.stdout and "class_" in res.stdout and "top-k" in res.stdout
    assert res.stderr == ""


def _eval_probs(folder: Path) -> dict[str, float]:
    with (folder / "predictions.csv").open(newline="", encoding="utf-8") as fh:
        return {r["path"]: float(r["prob"]) for r in csv.DictReader(fh)}


def test_eval_tta_flags_override_the_runs_choice(tiny_run, tmp_path):
    """docs/evaluation.md: the run's TTA is eval's default and ``--tta/--no-tta`` override it
    (the option was missing: ``No such option: --no-tta``)."""
    data = tiny_run.parent.parent / "data"
    outs = {flag: tmp_path / f"ev{flag}" for flag in ("", "--tta", "--no-tta")}
    for flag, out in outs.items():
        res = _main("eval", str(tiny_run), "--out", str(out), *([flag] if flag else []))
        assert res.returncode == 0, res.stderr
    probs = {flag: _eval_probs(out) for flag, out in outs.items()}
    predictor = Predictor(tiny_run)  # model.json's tta is hflip, as the run's report used
    for flag, tta in (("--tta", True), ("--no-tta", False)):
        want = predictor.predict([str(data / p) for p in probs[flag]], tta=tta)
        assert [round(r["prob"], 6) for r in want] == list(probs[flag].values()), flag
    assert probs[""] == probs["--tta"] != probs["--no-tta"]


@pytest.mark.slow
def test_predict_with_a_separator_in_a_class_name(tiny_run, tmp_path):
    """A class named ``a;b`` (a folder name a user may have) crashed `cnnlab predict`: the
    table re-split the CSV cell on ``;``. Now the table comes from the results, and the CSV
    cell quotes such a name, so csv.reader(delimiter=";") gives the labels back."""
    odd = ["a;b", 'say "hi"', "plain"]
    for name in ("classes.json", "model.json"):
        path = tiny_run / name
        value = json.loads(path.read_text(encoding="utf-8"))
        if name == "model.json":
            value["classes"] = odd
        path.write_text(json.dumps(odd if name == "classes.json" else value), encoding="utf-8")
    image = next((tiny_run.parent.parent / "data" / "class_0").iterdir())
    res = _cli("predict_command", str(tiny_run), str(image))  # the table (every class: k=5)
    assert res.returncode == 0, res.stderr
    assert "a;b" in res.stdout and "Traceback" not in res.stderr
    out_csv = tmp_path / "pred.csv"
    res = _cli("predict_command", str(tiny_run), str(image), "--out", str(out_csv))
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
    with out_csv.open(newline="", encoding="utf-8") as fh:
        (row,) = list(csv.DictReader(fh))
    (labels,) = list(csv.reader([row["top_k_labels"]], delimiter=";"))
    assert sorted(labels) == sorted(odd) and len(row["top_k_probs"].split(";")) == 3
