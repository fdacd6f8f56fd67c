"""Data page: a dataset folder's classes, samples, bad files, duplicates and leakage."""

from __future__ import annotations

import logging

import plotly.express as px
import streamlit as st

from cnnlab.app.datasets import (
    StageProgress,
    dataset_choices,
    find_label_issues,
    group_rows,
    inspect_folder,
    not_datasets,
)
from cnnlab.app.settings import load_settings
from cnnlab.errors import CnnlabError

log = logging.getLogger("cnnlab.app")
DOWNLOADS = (
    ("issues_csv", "Download issues.csv", "text/csv"),
    ("clean_csv", "Download clean.csv", "text/csv"),
    ("issues_html", "Download issues.html", "text/html"),
)


@st.cache_data(ttl=300, show_spinner="Checking every image...")
def cached_inspect(root: str, near: bool) -> dict:
    return inspect_folder(settings.check_folder(root), near=near)


def show_issues(found: dict) -> None:
    """The results of ``cnnlab data issues``: counts, one table per kind, the three files;
    what the label flags are worth first, as the command says it (a model at chance flags
    correct labels, and its clean.csv is not worth training on)."""
    from cnnlab.cleaning.outputs import SCORES, TITLES

    st.caption(
        f"{found['images']} images, out-of-sample probabilities from {found['method']} "
        f"({found['folds']} folds), {found['seconds']:.0f} s; files in {found['out_dir']}"
    )
    st.caption(found["model"])
    if found["verdict"]:
        (st.info if found["recommend_clean"] else st.warning)(found["verdict"])
    cols = st.columns(len(TITLES))
    for col, (kind, title) in zip(cols, TITLES.items(), strict=True):
        col.metric(title, found["counts"].get(kind, 0))
    for kind, title in TITLES.items():
        rows = [r for r in found["rows"] if r["kind"] == kind]
        if rows:
            st.markdown(f"**{title}** - score: {SCORES[kind]}")
            st.dataframe(rows, hide_index=True)
    files = found["files"]
    cols = st.columns(3)
    for col, (key, label, mime) in zip(cols, DOWNLOADS, strict=True):
        name = label.split()[-1]
        if key == "clean_csv" and not found["recommend_clean"]:
            label += " (not recommended)"
        col.download_button(label, files[key], name, mime, key=f"dl-{key}")


def show_groups(title: str, groups: list) -> None:
    st.subheader(title)
    if groups:
        st.dataframe(group_rows(groups), hide_index=True)
    else:
        st.caption("none")


settings = load_settings()
st.title("Data")
choices = dataset_choices(settings)
outputs = not_datasets(settings)
if outputs:
    st.caption(
        "Not datasets, so not listed here (cnnlab's own outputs; studies and tunes are on the "
        "Studies and tuning page): " + ", ".join(f"{n} ({k})" for n, k in outputs.items())
    )
if not choices:
    st.info("Start the app with dataset folders to inspect them: `cnnlab app DATA_FOLDER ...`")
    st.stop()
name = st.selectbox("Dataset folder", list(choices))
near = st.toggle("Also look for near duplicates (slower: hashes every image)", value=False)
try:
    found = cached_inspect(str(choices[name]), near)
except CnnlabError as exc:
    log.warning("dataset %s cannot be read: %s", name, exc)
    st.error(f"{name} cannot be read as a dataset (expected one folder per class).")
    st.stop()
doc, audit = found["report"], found["report"].get("audit") or {}
cols = st.columns(4)
cols[0].metric("images", doc["num_images"])
cols[1].metric("classes", len(doc["classes"]))
cols[2].metric("imbalance (largest / smallest)", doc["imbalance_ratio"])
cols[3].metric("bad files", len(doc["skipped"]))
for problem in doc.get("problems") or []:
    st.warning(f"{problem.get('kind')}: {problem.get('message')}")
counts = doc["counts"]
fig = px.bar(x=list(counts), y=list(counts.values()), labels={"x": "class", "y": "images"})
st.plotly_chart(fig, key="class-counts")
st.subheader("Samples per class")
for label, strip in found["strips"].items():
    st.image(strip, caption=label)
st.subheader("Bad files (left out of training)")
if doc["skipped"]:
    st.dataframe(doc["skipped"], hide_index=True)
else:
    st.caption("none: every image decodes")
show_groups("Exact duplicates", audit.get("duplicate_groups") or [])
show_groups("Leakage (the same image in two splits)", audit.get("leakage_groups") or [])
show_groups("Label conflicts (the same image in two classes)", audit.get("conflict_groups") or [])
if near:
    st.subheader("Near duplicates")
    st.dataframe(audit.get("near_pairs") or [], hide_index=True)

st.subheader("Label issues, near duplicates and outliers")
st.caption(
    "`cnnlab data issues`: cross-validated probabilities for every image, cleanlab's label "
    "issues and outliers, perceptual-hash near duplicates, blank, dark and blurry images. "
    "Takes a while (it trains K models); nothing is written into the dataset folder."
)
done = st.session_state.setdefault("issues", {})
if st.button("Find label issues, near duplicates and outliers"):
    try:
        bar = st.progress(0.0, text="Finding issues: starting...")
        try:
            done[name] = find_label_issues(
                settings.check_folder(choices[name]),
                StageProgress(lambda fraction, text: bar.progress(fraction, text=text)),
            )
        finally:
            bar.empty()
    except CnnlabError as exc:
        log.warning("data issues on %s failed: %s", name, exc)
        st.error(f"The issues of {name} could not be found; `cnnlab data issues` says why.")
if name in done:
    show_issues(done[name])
