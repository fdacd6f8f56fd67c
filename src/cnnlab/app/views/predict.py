"""Predict page: choose a run, upload images (or take samples), see the top classes."""

from __future__ import annotations

import logging
import random

import plotly.graph_objects as go
import streamlit as st

from cnnlab.app.cached import get_explainer, get_predictor
from cnnlab.app.predictions import (
    cam_overlays,
    describe,
    predict_uploads,
    predictable_runs,
    rows_to_csv,
    sample_images,
)
from cnnlab.app.settings import load_settings
from cnnlab.app.uploads import ACCEPTED, check_named, check_uploads
from cnnlab.data.walk import IMAGE_EXTS
from cnnlab.errors import CnnlabError
from cnnlab.runs import Run

MAX_CHARTS = 4  # one card with a bar chart per image up to this many; beyond, a grid
MAX_CARDS = 60  # images shown in the grid; the table and CSV always hold all of them
log = logging.getLogger("cnnlab.app")


def top_k_chart(top: list[tuple[str, float]]) -> go.Figure:
    """Horizontal bars, most likely class on top."""
    labels = [c for c, _ in top][::-1]
    probs = [p for _, p in top][::-1]
    fig = go.Figure(go.Bar(x=probs, y=labels, orientation="h", text=[f"{p:.1%}" for p in probs]))
    fig.update_layout(
        height=60 + 28 * len(top), margin=dict(l=0, r=10, t=10, b=10), xaxis_range=[0, 1]
    )
    return fig


def show_grid(rows: list[dict], uploads: list, cams: list) -> None:
    """Many images: one picture grid and one list, a few page elements whatever the count."""
    good = [(r, u) for r, u in zip(rows, uploads, strict=True) if u.image is not None]
    if good:
        st.image([u.image for _, u in good], caption=[r["name"] for r, _ in good], width=96)
    shown = [(r, c) for r, c in zip(rows, cams, strict=True) if c is not None]
    if shown:
        st.image([c[0] for _, c in shown], width=96,
                 caption=[f"Grad-CAM {r['name']}: {c[1]}" for r, c in shown])  # fmt: skip
    lines = []
    for row in rows:
        if "problem" in row:
            continue
        top = ", ".join(f"{c} {p:.1%}" for c, p in row["top_k"][1:])
        extra = f"; true class {row['true']}" if row.get("true") else ""
        lines.append(f"- {row['name']} - Prediction: **{row['label']}** ({row['prob']:.1%})"
                     f"{'; then ' + top if top else ''}{extra}")  # fmt: skip
    st.markdown("\n".join(lines))
    for row in rows:
        if "problem" in row:
            st.error(row["problem"])


def show_card(i: int, row: dict, image: object, cam: tuple | None) -> None:
    cols = st.columns([1, 1, 3] if cam is not None else [1, 3])
    left, right = cols[0], cols[-1]
    if image is not None:
        left.image(image, caption=row["name"], width=160)
    if cam is not None:
        cols[1].image(cam[0], caption=f"Grad-CAM: where the model saw {cam[1]}", width=160)
    if "problem" in row:
        right.error(row["problem"])
        return
    right.markdown(f"Prediction: **{row['label']}** ({row['prob']:.1%})")
    if row.get("true"):
        right.caption(f"true class: {row['true']}")
    right.plotly_chart(top_k_chart(row["top_k"]), key=f"chart-{i}")


settings = load_settings()
st.title("Predict")
runs = predictable_runs(settings.runs_dir)
if not runs:
    st.info("No finished runs in the runs folder yet: train one with `cnnlab train DATA`.")
    st.stop()
name = st.selectbox("Run", runs, index=len(runs) - 1)  # newest by default
try:
    predictor = get_predictor(str(settings.runs_dir / name))
except CnnlabError as exc:
    log.warning("run %s cannot be loaded: %s", name, exc)
    st.error(f"The run {name} cannot be loaded; check it with `cnnlab runs`.")
    st.stop()
classes = len(predictor.classes)
top_k = st.slider("Classes shown per image", 1, max(2, min(10, classes)), min(3, classes))
st.caption(describe(predictor))
is_ensemble = hasattr(predictor, "members")
show_cam = not is_ensemble and st.toggle("Grad-CAM overlay (where the model looked)")
if is_ensemble:
    st.caption("Grad-CAM explains one network: choose one of the ensemble's runs to see it.")
files = st.file_uploader(
    f"Images ({ACCEPTED}; up to {settings.max_upload_mb} MB each)",
    type=sorted(e.lstrip(".") for e in IMAGE_EXTS),
    accept_multiple_files=True,
)
if st.button("Try sample images from the run's test split"):
    # a new draw per click: this session's shuffle of the split, the next images of it
    seed = st.session_state.setdefault("sample_seed", random.randrange(2**32))
    draw = st.session_state["sample_draw"] = st.session_state.get("sample_draw", -1) + 1
    picked = sample_images(Run(settings.runs_dir / name), seed=seed, draw=draw)
    st.session_state["samples"] = (name, picked)
    if not picked:
        st.warning("The run's dataset folder is not available on this machine.")
uploads = check_uploads(files, settings.max_upload_bytes)
truths: list[str] | None = None
sample_name, samples = st.session_state.get("samples", (None, []))
if sample_name == name and not files:
    uploads = [check_named(n, b, settings.max_upload_bytes) for n, b, _ in samples]
    truths = [label for _, _, label in samples]
if uploads:
    rows = predict_uploads(predictor, uploads, top_k, truths)
    cams: list = [None] * len(rows)
    if show_cam:
        explainer, lock = get_explainer(str(settings.runs_dir / name))
        with lock, st.spinner("Computing Grad-CAM..."):
            cams[:MAX_CARDS] = cam_overlays(explainer, uploads[:MAX_CARDS])
    if len(rows) <= MAX_CHARTS:
        for i, (row, upload) in enumerate(zip(rows, uploads, strict=True)):
            show_card(i, row, upload.image, cams[i])
    else:
        show_grid(rows[:MAX_CARDS], uploads[:MAX_CARDS], cams[:MAX_CARDS])
    if len(rows) > 1:
        st.subheader("All results")
        keys = ("name", *(("true",) if truths else ()), "label", "prob", "problem")
        table = [{k: r.get(k) for k in keys} for r in rows]
        st.dataframe(table, hide_index=True, placeholder="")  # a missing value: blank
        st.download_button("Download CSV", rows_to_csv(rows), "predictions.csv", "text/csv")
