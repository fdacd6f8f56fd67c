"""export.json keeps one record per exported file: two exports into one ``--out`` folder
(other runs, other formats) each keep their parity result, run and weights digest."""

from __future__ import annotations

import json

import pytest

from cnnlab.export import drop_stale_exports, export_run
from cnnlab.runs import weights_digest

from .conftest import build_run


def _sidecar(folder):
    return json.loads((folder / "export.json").read_text(encoding="utf-8"))


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated")
def test_exports_of_two_runs_into_one_folder_keep_their_own_records(tmp_path):
    run_a = build_run(tmp_path / "a", seed=0)
    run_b = build_run(tmp_path / "b", seed=1)
    assert weights_digest(run_a) != weights_digest(run_b)
    out = tmp_path / "my exports"
    first = export_run(run_a, format="onnx", out=out / "a.onnx")
    export_run(run_b, format="onnx", out=out / "b.onnx")
    export_run(run_a, format="torchscript", out=out / "a ts.pt")
    side = _sidecar(out)
    assert sorted(side) == ["a ts.pt", "a.onnx", "b.onnx"]  # keyed by file, none replaced
    for name, run in (("a.onnx", run_a), ("b.onnx", run_b), ("a ts.pt", run_a)):
        assert side[name]["file"] == str((out / name).resolve())
        assert side[name]["run"] == str(run.resolve())
        assert side[name]["weights_sha256"] == weights_digest(run)
    assert side["a.onnx"]["max_abs_diff"] == first["max_abs_diff"]
    assert side["a ts.pt"]["format"] == "torchscript"


def test_a_sidecar_keyed_by_format_is_read_by_file(tmp_path):
    """export.json written by an earlier cnnlab ({"onnx": {...}}) keeps its record, now under
    the file's name; a record of a file no longer there is dropped."""
    run_a = build_run(tmp_path / "a", seed=0)
    run_b = build_run(tmp_path / "b", seed=1)
    out = tmp_path / "out"
    old = export_run(run_a, format="onnx", out=out / "old.onnx")
    (out / "export.json").write_text(
        json.dumps({"onnx": old, "torchscript": {**old, "file": str(out / "gone.pt")}}),
        encoding="utf-8",
    )
    export_run(run_b, format="onnx", out=out / "new.onnx")
    side = _sidecar(out)
    assert sorted(side) == ["new.onnx", "old.onnx"]
    assert side["old.onnx"]["weights_sha256"] == weights_digest(run_a)
    assert side["new.onnx"]["weights_sha256"] == weights_digest(run_b)


def test_a_resume_drops_every_export_its_sidecar_names_in_the_run(tmp_path):
    run = build_run(tmp_path)
    export_run(run, format="onnx", out=run / "extra name.onnx")
    export_run(run, format="onnx")
    outside = export_run(run, format="onnx", out=tmp_path / "kept" / "m.onnx")
    assert sorted(_sidecar(run)) == ["extra name.onnx", "model.onnx"]
    removed = drop_stale_exports(run)
    assert removed == ["export.json", "extra name.onnx", "model.onnx"]
    assert (tmp_path / "kept" / "m.onnx").is_file() and outside["parity_ok"]


def test_an_export_killed_after_replacing_its_file_leaves_no_parity_record(tmp_path, monkeypatch):
    """The new model.onnx in place with the old export's ``parity_ok`` record: predict used a
    file whose parity check never ran. Now the record goes before the file is replaced."""
    import cnnlab.export as export
    from cnnlab.errors import RunError
    from cnnlab.predict import Predictor

    run = build_run(tmp_path / "a", seed=0)
    export_run(run, format="onnx")
    Predictor(run, backend="onnx")  # the first export is recorded, checked and used

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # the process ends right after the new file replaced the old

    monkeypatch.setattr(export, "_save_records", killed)
    with pytest.raises(KeyboardInterrupt):
        export_run(run, format="onnx", opset=18)
    card = json.loads((run / "model.json").read_text(encoding="utf-8"))
    assert "onnx" not in card.get("exports", {})
    assert "model.onnx" not in _sidecar(run)
    with pytest.raises(RunError, match="no ONNX export recorded"):
        Predictor(run, backend="onnx")
