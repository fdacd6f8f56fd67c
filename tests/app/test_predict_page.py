"""The Predict page through Streamlit's AppTest, and the upload checks behind it."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest
from tests.app.conftest import app_main, open_page, page_text
from tests.conftest import make_class_image
from tests.data.data_badfiles import bomb_png

from cnnlab.app.uploads import check_upload
from cnnlab.predict import Predictor

TIMEOUT = 60  # s per script run; the first one loads torch and the model


def png_bytes(label: int = 0, size: int = 32, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    make_class_image(label, np.random.default_rng(label), size).save(buf, fmt)
    return buf.getvalue()


def test_upload_checks_sniff_content_cap_size_and_refuse_bombs() -> None:
    assert check_upload("a.png", png_bytes(), 10**6).image is not None
    assert check_upload("a.jpg", png_bytes(), 10**6).image is not None  # content decides
    text = check_upload("/srv/secret/notes.png", b"just some text\n", 10**6)
    assert text.image is None and text.problem.startswith("notes.png is not a picture")
    assert "/srv" not in text.problem
    ppm = io.BytesIO()
    Image.new("RGB", (16, 16)).save(ppm, "PPM")  # Pillow reads it; cnnlab does not accept it
    assert "not a picture" in check_upload("x.png", ppm.getvalue(), 10**6).problem
    assert "larger than" in check_upload("big.png", png_bytes(), 100).problem
    assert "too many pixels" in check_upload("bomb.png", bomb_png(10000), 10**6).problem
    assert "is empty" in check_upload("e.png", b"", 10**6).problem
    cut = png_bytes()[:-40]
    assert "damaged" in check_upload("cut.png", cut, 10**6).problem


def _predict_page(app_env: Path) -> AppTest:
    return open_page()


def test_predict_one_upload_matches_predictor(app_env: Path) -> None:
    at = _predict_page(app_env)
    assert at.selectbox[0].options == ["tiny-s0", "cnn-s0", "cnn-s1"]
    assert at.selectbox[0].value == "cnn-s1"
    image = png_bytes(1)
    at.file_uploader[0].set_value(("shape.png", image, "image/png"))
    at.run()
    assert not at.exception and not at.error
    text = " ".join(m.value for m in at.markdown)
    want = Predictor(app_env / "cnn-s1").predict([Image.open(io.BytesIO(image))], top_k=3)[0]
    assert f"Prediction: **{want['label']}** ({want['prob']:.1%})" in text
    assert len(at.get("plotly_chart")) == 1
    assert not at.get("download_button")  # one image: no table


def test_predict_many_table_csv_and_friendly_errors(app_env: Path) -> None:
    at = _predict_page(app_env)
    files = [(f"img{i}.png", png_bytes(i), "image/png") for i in range(3)]
    files.append(("notes.png", b"this is a text file, renamed\n", "image/png"))
    at.file_uploader[0].set_value(files)
    at.run()
    assert not at.exception
    assert [e.value for e in at.error] == [
        "notes.png is not a picture this app reads (PNG, JPEG, BMP, WebP, TIFF or GIF)"
    ]
    assert page_text(at).count("Prediction:") == 3
    table = at.dataframe[0].value
    assert list(table["name"]) == ["img0.png", "img1.png", "img2.png", "notes.png"]
    assert table["label"].isna()[3] and table["problem"].isna()[0]  # blank cells, not "None":
    proto = at.dataframe[0].proto
    assert proto.HasField("placeholder") and proto.placeholder == ""
    assert len(at.get("download_button")) == 1
    assert str(app_env.parent) not in page_text(at)


def test_sample_images_from_the_runs_test_split(app_env: Path) -> None:
    at = _predict_page(app_env)
    at.button[0].click()
    at.run()
    assert not at.exception and not at.error
    text = page_text(at)
    shown = text.count("Prediction:")
    assert shown == text.count("true class") == len(at.get("image")[0].value)
    assert shown == 5  # the whole test split (under 6 images); a grid beyond 4
    table = at.dataframe[0].value
    assert list(table.columns) == ["name", "true", "label", "prob", "problem"]
    for name, true in zip(table["name"], table["true"], strict=True):
        assert name.startswith(f"{true}/")  # class/file: bare file names repeat across classes
    at.button[0].click().run()  # the next draw
    assert not at.exception and at.session_state["sample_draw"] == 1


def test_each_sample_draw_shows_images_not_shown_yet(app_runs: Path) -> None:
    from cnnlab.app.predictions import rows_to_csv, sample_images
    from cnnlab.runs import Run

    run = Run(app_runs / "cnn-s1")
    draws = [[name for name, _, _ in sample_images(run, n=2, seed=3, draw=k)] for k in range(3)]
    assert [len(d) for d in draws] == [2, 2, 2]
    assert not set(draws[0]) & set(draws[1])  # 5 test images: 2, 2 new, then 1 new + 1 again
    assert len(set(draws[0] + draws[1] + draws[2])) == 5
    assert sample_images(run, n=2, seed=3, draw=0) == sample_images(run, n=2, seed=3, draw=0)

    top = [("class_0", 0.5)]
    rows = [
        {"name": "café ☕/a.png", "true": "café ☕", "label": "class_0", "prob": 0.5, "top_k": top},
        {"name": "b.png", "problem": "b.png is empty"},
    ]
    lines = rows_to_csv(rows).decode("utf-8").splitlines()
    assert lines[0] == "file,true,label,prob,top_k,problem"
    assert lines[1] == "café ☕/a.png,café ☕,class_0,0.500000,class_0=0.5000,"
    assert lines[2] == "b.png,,,,,b.png is empty"


def test_no_runs_says_how_to_make_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CNNLAB_APP_RUNS_DIR", str(tmp_path / "empty"))
    at = AppTest.from_file(app_main(), default_timeout=TIMEOUT).run()
    assert not at.exception
    assert "cnnlab train" in at.info[0].value


def test_gradcam_overlay_is_what_cnnlab_explain_draws(app_env: Path, tmp_path: Path) -> None:
    from cnnlab.app.predictions import CAM_SIDE, cam_overlays
    from cnnlab.app.uploads import Upload
    from cnnlab.explain.cam import Explainer, overlay
    from cnnlab.explain.run import explain_run

    file = tmp_path / "shape.png"
    file.write_bytes(png_bytes(2))
    done = explain_run(app_env / "cnn-s1", [str(file)], out_dir=tmp_path / "explain")
    cam = np.load(tmp_path / "explain" / "shape.cam.npy")
    got = cam_overlays(Explainer(app_env / "cnn-s1"), [Upload("x.txt"), check_upload("s.png",
                       file.read_bytes(), 10**6)])  # fmt: skip
    assert got[0] is None
    picture, target = got[1]
    assert target == done["rows"][0]["target"]
    image = Explainer(app_env / "cnn-s1").explain([str(file)])[0][0].image
    assert np.abs(picture.astype(int) - overlay(image, cam, CAM_SIDE).astype(int)).max() <= 1

    at = _predict_page(app_env)
    at.file_uploader[0].set_value(("shape.png", file.read_bytes(), "image/png"))
    at.toggle[0].set_value(True).run()
    assert not at.exception and not at.error
    captions = [c for image in at.get("image") for c in image.captions]
    assert f"Grad-CAM: where the model saw {target}" in captions


def test_an_ensemble_predicts_like_its_predictor(
    ensemble_runs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cnnlab.ensemble.predictor import EnsemblePredictor

    monkeypatch.setenv("CNNLAB_APP_RUNS_DIR", str(ensemble_runs))
    at = _predict_page(ensemble_runs)
    assert at.selectbox[0].options == ["ensemble-soft"]
    assert "an ensemble (soft) of 2 runs" in page_text(at)
    assert not at.toggle  # Grad-CAM explains one network, not an ensemble
    image = png_bytes(0)
    at.file_uploader[0].set_value(("e.png", image, "image/png")).run()
    assert not at.exception and not at.error
    ens = EnsemblePredictor(ensemble_runs / "ensemble-soft")
    want = ens.predict([Image.open(io.BytesIO(image))], top_k=3)[0]
    assert f"Prediction: **{want['label']}** ({want['prob']:.1%})" in page_text(at)


def test_an_ensemble_predicts_a_jpeg_as_cnnlab_predict_does(
    mixed_ensemble: Path, tmp_path: Path
) -> None:
    """Members at 16 and 32 px decode a 128-px JPEG at different draft scales (1/8 and 1/4):
    the upload must reach each member as bytes, decoded the way ``cnnlab predict`` decodes
    the file, not once for the largest member."""
    import csv

    from typer.testing import CliRunner

    from cnnlab.app.predictions import predict_uploads
    from cnnlab.cli import app
    from cnnlab.data.image import load_image_bytes
    from cnnlab.ensemble.predictor import EnsemblePredictor

    photo = tmp_path / "photo.jpg"
    make_class_image(1, np.random.default_rng(5), 128).save(photo, "JPEG", quality=90)
    out = tmp_path / "cli.csv"
    args = ["predict", str(mixed_ensemble), str(photo), "--top-k", "3", "--out", str(out)]
    done = CliRunner().invoke(app, args)
    assert done.exit_code == 0, done.output
    with out.open(newline="", encoding="utf-8") as fh:
        cli = next(csv.DictReader(fh))
    cli_probs = dict(zip(cli["top_k_labels"].split(";"),
                         map(float, cli["top_k_probs"].split(";")), strict=True))  # fmt: skip

    ens = EnsemblePredictor(mixed_ensemble)
    assert sorted(m.resize for m in ens.members) == [16, 32]
    upload = check_upload("photo.jpg", photo.read_bytes(), 10**6)
    row = predict_uploads(ens, [upload], top_k=3)[0]
    assert row["label"] == cli["label"]
    got = dict(row["top_k"])
    assert got.keys() == cli_probs.keys()  # all 3 classes
    assert max(abs(got[c] - cli_probs[c]) for c in got) <= 1e-6  # the CSV keeps 6 decimals
    assert row["top_k"] == ens.predict([str(photo)], top_k=3)[0]["top_k"]  # bit for bit

    # what the app did before: one decode at the largest member's size for every member
    once = load_image_bytes(photo.read_bytes(), "photo.jpg", draft_side=32)
    old = dict(ens.predict([once], top_k=3)[0]["top_k"])
    assert max(abs(old[c] - got[c]) for c in got) > 1e-4


def test_results_csv_keeps_spreadsheets_from_running_names(app_env: Path) -> None:
    """A file named like a formula is text in the downloaded CSV (a leading '), in the table
    as named; cnnlab predict --out is a data file and writes names as they are."""
    from cnnlab.app.predictions import rows_to_csv

    at = _predict_page(app_env)
    names = ["=1+1.png", "+cmd.png", "-2.png", "@sum.png", "ok.png"]
    at.file_uploader[0].set_value([(n, png_bytes(i), "image/png") for i, n in enumerate(names)])
    at.run()
    assert not at.exception and not at.error
    assert list(at.dataframe[0].value["name"]) == names

    rows = [{"name": n, "label": "class_0", "prob": 0.5, "top_k": [("class_0", 0.5)]}
            for n in names]  # fmt: skip
    rows.append({"name": "\tx.png", "problem": "=HYPERLINK(1)"})
    lines = rows_to_csv(rows).decode("utf-8").splitlines()
    assert [line.split(",")[0] for line in lines[1:]] == [
        "'=1+1.png", "'+cmd.png", "'-2.png", "'@sum.png", "ok.png", "'\tx.png"]  # fmt: skip
    assert lines[-1].endswith(",'=HYPERLINK(1)") and lines[1].endswith(",class_0=0.5000,")
