"""Studies and tuning page: a study's table, comparisons and plots; a tune's history,
importances and best trials."""

from __future__ import annotations

import logging

import plotly.graph_objects as go
import streamlit as st

from cnnlab.app.settings import load_settings
from cnnlab.app.studydata import STUDY, result_folders, study_view, tune_view
from cnnlab.errors import CnnlabError

log = logging.getLogger("cnnlab.app")


@st.cache_data(ttl=60, show_spinner="Reading the study (paired bootstrap over its runs)...")
def cached_study(folder: str) -> dict:
    return study_view(settings.check_folder(folder))


def show_study(name: str, view: dict) -> None:
    for sentence in view["sentences"]:
        st.markdown(sentence)
    st.subheader("Cells (test metrics: mean ± std over seeds, 95% t-interval)")
    st.dataframe(view["table"], hide_index=True)
    if view["comparisons"]:
        st.subheader("Paired comparisons")
        st.dataframe(view["comparisons"], hide_index=True)
        st.caption(
            "Δ: this cell minus the other on the test images both saw, seeds paired; CI: paired "
            "bootstrap 95%; p: exact McNemar, Holm-adjusted. A verdict other than 'not "
            "distinguishable' needs the CI to exclude 0 and p Holm < 0.05."
        )
    for title, png in view["plots"].items():
        st.image(png, caption=title)
    with st.expander("Runs"):
        st.dataframe(view["runs"], hide_index=True)
    if view["html"]:
        st.download_button("Download study.html", view["html"], f"{name}-study.html", "text/html")


def show_tune(name: str, view: dict) -> None:
    st.caption(view["summary"])
    best = view["best"]
    if best is None:
        st.info("No trial completed yet, so there is no best configuration.")
    else:
        shown = ", ".join(f"{k} = {v:.4g}" for k, v in best["values"].items())
        st.markdown(f"Best: **trial {best['trial']}** ({shown})")
        st.dataframe([{"entry": k, "value": str(v)} for k, v in best["params"].items()],
                     hide_index=True)  # fmt: skip
    for title, key in (("Optimisation history", "history"), ("Importances", "importances")):
        st.subheader(title)
        figure = view["figures"].get(key)
        if isinstance(figure, go.Figure):
            st.plotly_chart(figure, key=f"tune-{key}")
        else:
            st.caption(str(figure or view["figures"].get("why", "")))
    st.subheader("Best trials")
    st.dataframe(view["top"], hide_index=True, placeholder="")
    st.caption("Validation scores of a search are optimistic: the search chose them.")
    with st.expander("Every trial (pruned and failed ones with their reason)"):
        st.dataframe(view["trials"], hide_index=True, placeholder="")
    if view["html"]:
        st.download_button("Download tune.html", view["html"], f"{name}-tune.html", "text/html")


settings = load_settings()
st.title("Studies and tuning")
choices = result_folders(settings)
if not choices:
    st.info(
        "No study or tune folders here. Give them on the command line: "
        "`cnnlab app studies/NAME tunes/NAME` (or a folder holding several)."
    )
    st.stop()
label = st.selectbox("Study or tune", list(choices))
kind, folder = choices[label]
try:
    if kind == STUDY:
        show_study(folder.name, cached_study(str(folder)))
    else:
        show_tune(folder.name, tune_view(settings.check_folder(folder)))
except CnnlabError as exc:
    log.warning("%s cannot be read: %s", label, exc)
    st.error(f"{label} cannot be read; check it with `cnnlab {kind} report`.")
