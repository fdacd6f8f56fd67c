"""What an ensemble refuses: writing into the data, members that changed since it was built,
members that could not predict, and being exported or registered as one model."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tests.conftest import folder_digest

import cnnlab
from cnnlab.ensemble.folder import build_ensemble
from cnnlab.ensemble.predictor import evaluate_ensemble
from cnnlab.errors import ConfigError, RunError
from cnnlab.export import export_run

from .conftest import ODD_CLASS

SRC = str(Path(__file__).resolve().parents[2] / "src")


def cli(*args: object, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, COLUMNS="200", NO_COLOR="1", PYTHONPATH=SRC)
    return subprocess.run(
        [sys.executable, "-m", "cnnlab", *map(str, args)],
        capture_output=True, text=True, env=env, cwd=cwd,
    )  # fmt: skip


def _copy(members: dict[str, Path], key: str, tmp_path: Path) -> Path:
    """A member copied beside the test (so the package's shared runs stay untouched)."""
    return Path(shutil.copytree(members[key], tmp_path / f"{key} copy"))


def _train_on(run: Path) -> None:
    """What a resume that found a better epoch does to the run: other weights, same layout."""
    from safetensors.numpy import load_file, save_file

    tensors = load_file(run / "model.safetensors")
    bias = next(k for k in tensors if k.endswith("bias"))
    tensors[bias] = tensors[bias] + 0.5
    save_file(tensors, run / "model.safetensors")


def test_out_and_runs_dir_inside_a_members_dataset_are_refused(members, tmp_path) -> None:
    data = members["data"]
    before = folder_digest(data)
    inside_out = cli("ensemble", members["a"], members["b"], "--out", data / "ens")
    inside_runs = cli("ensemble", members["a"], members["b"], "--runs-dir", data / ODD_CLASS)
    for done in (inside_out, inside_runs):
        assert done.returncode == 2, done.stderr
        assert "cnnlab never writes into your data" in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "--out" in inside_out.stderr and "--runs-dir" in inside_runs.stderr
    # the default `runs`, from a working folder inside the dataset, goes beside it instead
    done = cli("ensemble", members["a"], members["b"], cwd=data / ODD_CLASS)
    assert done.returncode == 0, done.stderr
    made = Path(done.stdout.split("ensemble folders go to ")[1].split(":")[0]) / "ensemble-soft"
    assert made.parent == data.parent / "runs" and (made / "ensemble.json").is_file()
    shutil.rmtree(made)  # the package's member runs live beside it: remove only this one
    assert folder_digest(data) == before  # nothing written, not even an empty folder


def test_a_member_trained_on_since_is_refused_until_rebuilt(members, tmp_path) -> None:
    """The report said one accuracy; predict/eval would silently give another's."""
    changed = _copy(members, "b", tmp_path)
    ens = build_ensemble([members["a"], changed], method="soft", out=tmp_path / "ens").path
    card = json.loads((ens / "ensemble.json").read_text(encoding="utf-8"))
    assert all(len(m["weights_sha256"]) == 64 for m in card["members"])
    image = next((members["data"] / ODD_CLASS).glob("*.png"))
    before = cnnlab.load(str(ens)).predict([image])[0]["prob"]

    _train_on(changed)
    with pytest.raises(RunError, match=r"member b copy .* has changed since the ensemble was"):
        cnnlab.load(str(ens))
    with pytest.raises(RunError, match="build the ensemble again: cnnlab ensemble"):
        evaluate_ensemble(ens)
    done = cli("eval", ens)
    assert (
        done.returncode == 2
        and "b copy" in done.stderr
        and "build the ensemble again" in (done.stderr)
    )
    assert not (ens / "eval-test").exists()
    rebuilt = build_ensemble([members["a"], changed], method="soft", out=tmp_path / "ens2")
    assert cnnlab.load(str(rebuilt.path)).predict([image])[0]["prob"] != before

    # an ensemble built before digests were recorded still loads, with a warning
    old = Path(shutil.copytree(rebuilt.path, tmp_path / "old"))
    card = json.loads((old / "ensemble.json").read_text(encoding="utf-8"))
    for m in card["members"]:
        del m["weights_sha256"]
    (old / "ensemble.json").write_text(json.dumps(card), encoding="utf-8")
    shown = cli("predict", old, image)
    assert shown.returncode == 0, shown.stderr
    assert "without its members' weight digests" in shown.stderr and image.name in shown.stdout


def test_a_weight_0_member_is_checked_like_the_others_but_never_loaded(members, tmp_path):
    """A member greedy selection dropped was not checked: trained on since, it could deserve a
    weight now, and the report still compared its old numbers, yet the ensemble loaded."""
    dropped = _copy(members, "b", tmp_path)
    ens = build_ensemble([members["a"], dropped], method="greedy", out=tmp_path / "ens").path
    card_file = ens / "ensemble.json"
    card = json.loads(card_file.read_text(encoding="utf-8"))
    for m, weight in zip(card["members"], (1.0, 0.0), strict=True):
        m["weight"] = weight  # what greedy writes when the path never picks the member
    card_file.write_text(json.dumps(card), encoding="utf-8")
    image = next((members["data"] / ODD_CLASS).glob("*.png"))
    loaded = cnnlab.load(str(ens))
    assert [p.run_dir.name for p in loaded.members] == ["a"]  # weight 0: never loaded
    before = loaded.predict([image])[0]

    _train_on(dropped)
    with pytest.raises(RunError, match=r"member b copy .* has changed since the ensemble was"):
        cnnlab.load(str(ens))
    done = cli("predict", ens, image)
    assert (
        done.returncode == 2
        and "b copy" in done.stderr
        and "build the ensemble again" in (done.stderr)
    )
    # gone altogether it is not needed: the ensemble predicts exactly as before
    shutil.rmtree(dropped)
    assert cnnlab.load(str(ens)).predict([image])[0] == before


def test_eval_of_an_ensemble_tells_test_images_rewritten_since_training(members, tmp_path):
    import csv

    import yaml
    from PIL import Image, ImageOps

    ens = build_ensemble([members["a"], members["b"]], out=tmp_path / "ens").path
    data = Path(shutil.copytree(members["data"], tmp_path / "data"))  # the package's stays intact
    config = yaml.safe_load((ens / "config.yaml").read_text(encoding="utf-8"))
    config["data"]["root"] = str(data)  # the dataset moved with its files
    (ens / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    with (ens / "split.csv").open(newline="", encoding="utf-8") as fh:
        test = [r["path"] for r in csv.DictReader(fh) if r["split"] == "test"]
    assert evaluate_ensemble(ens)["changed"] == {}
    with Image.open(data / test[-1]) as img:
        ImageOps.mirror(img.convert("RGB")).save(data / test[-1])  # edited in place
    before = folder_digest(data)
    result = evaluate_ensemble(ens)
    assert list(result["changed"]) == [test[-1]] and result["changed_files"] == 1
    assert result["num_samples"] == len(test)  # scored as it is now, and said so
    assert test[-1] in (Path(result["out_dir"]) / "report.md").read_text(encoding="utf-8")
    assert folder_digest(data) == before


def test_a_member_that_could_not_predict_is_refused_at_build(members, tmp_path) -> None:
    broken = _copy(members, "b", tmp_path)
    card = broken / "model.json"
    card.write_text(card.read_text(encoding="utf-8")[:100], encoding="utf-8")  # cut mid-file
    out = tmp_path / "ens"
    done = cli("ensemble", members["a"], broken, "--out", out)
    assert done.returncode == 2
    assert "model.json: not valid JSON" in done.stderr and "must be able to predict" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not out.exists()

    card.write_text(json.dumps({"format": "cnnlab-model/1"}), encoding="utf-8")
    with pytest.raises(RunError, match=r"no input\.img_size.*create_kwargs\.name"):
        build_ensemble([members["a"], broken], out=out)
    shutil.copy(members["b"] / "model.json", card)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:200])  # truncated
    with pytest.raises(RunError, match=r"model\.safetensors: unreadable"):
        build_ensemble([members["a"], broken], out=out)
    assert not out.exists()


def test_missing_predictions_name_the_run_that_lacks_them(members, tmp_path) -> None:
    lacking = _copy(members, "b", tmp_path)
    (lacking / "predictions" / "val.csv").unlink()
    for order in ((members["a"], lacking), (lacking, members["a"])):
        with pytest.raises(RunError, match=r"^b copy has no val predictions .* but a has"):
            build_ensemble(list(order), out=tmp_path / "never")


def test_title_counts_members_and_says_what_they_were_chosen_from(members, tmp_path) -> None:
    from cnnlab.ensemble.report import title

    def card(*weights: float) -> dict:
        return {"method": "greedy", "members": [{"weight": w} for w in weights]}

    assert title(card(0.5, 0.5, 0.0)) == "greedy ensemble of 2 runs (chosen from 3 candidates)"
    assert title(card(0.5, 0.5)) == "greedy ensemble of 2 runs"
    assert title(card(1.0, 0.0)) == "greedy ensemble of 1 run (chosen from 2 candidates)"
    out = tmp_path / "ens"
    done = cli("ensemble", members["a"], members["b"], "--method", "greedy", "--out", out)
    assert done.returncode == 0, done.stderr
    said = title(json.loads((out / "ensemble.json").read_text(encoding="utf-8")))
    assert f"{out}: {said}" in done.stdout  # the command line and the report say the same
    assert (out / "report.md").read_text(encoding="utf-8").startswith(f"# ens: {said}")


def test_export_refuses_an_ensemble_and_says_what_to_do(members, tmp_path) -> None:
    ens = build_ensemble([members["a"], members["b"]], out=tmp_path / "ens").path
    with pytest.raises(RunError, match="is an ensemble: it cannot be exported as one file"):
        export_run(ens)
    done = cli("export", ens, "--format", "torchscript")
    assert done.returncode == 2 and "export its member runs" in done.stderr
    assert "missing model.json" not in done.stderr
    assert not list(ens.glob("model.*")) and not (ens / "export.json").exists()
    with pytest.raises(ConfigError, match="opsets 7 to"):
        export_run(ens, opset=99)  # argument checks come first


def test_track_register_refuses_an_ensemble_and_says_what_to_do(members, tmp_path) -> None:
    """It said "not a finished run, missing model.json" of a finished ensemble."""
    from cnnlab.track.pyfunc import register_run

    ens = build_ensemble([members["a"], members["b"]], out=tmp_path / "ens").path
    before = folder_digest(ens)
    with pytest.raises(RunError, match="is an ensemble: it cannot be registered as one model"):
        register_run(ens, "digits")
    done = cli("track", "register", ens, "--name", "digits")
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {ens} is an ensemble:"), lines
    assert "register its member runs" in lines[0] and "missing model.json" not in lines[0]
    assert folder_digest(ens) == before and not (tmp_path / "mlflow.db").exists()  # nothing logged
