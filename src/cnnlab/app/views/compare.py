"""Compare page: overlaid learning curves, spread over seeds, paired verdicts."""

from __future__ import annotations

import logging

import plotly.graph_objects as go
import streamlit as st

from cnnlab.app.compare import GROUPINGS, cells, finished_runs, spread_rows, verdict_rows
from cnnlab.app.rundata import epoch_axis
from cnnlab.app.settings import load_settings
from cnnlab.evaluation.metrics import metric_series
from cnnlab.runs import Run

log = logging.getLogger("cnnlab.app")
CURVE_KEYS = ("val/accuracy", "val/macro_f1", "val/loss", "train/loss", "train/accuracy")

settings = load_settings()
st.title("Compare runs")
runs, unreadable = finished_runs(settings.runs_dir)
if unreadable:
    log.warning("Compare leaves out runs with damaged files: %s", unreadable)
    st.warning(
        f"{len(unreadable)} finished run{'s' if len(unreadable) > 1 else ''} left out, a file "
        "cannot be read: " + ", ".join(f"{name} ({file})" for name, file in unreadable.items())
    )
if len(runs) < 2:
    st.info("Compare needs at least two finished runs in the runs folder.")
    st.stop()
names = st.multiselect("Runs", [r.name for r in runs], default=[r.name for r in runs])
chosen: list[Run] = [r for r in runs if r.name in names]
if not chosen:
    st.info("Pick the runs to compare above (two or more for a paired comparison).")
    st.stop()
key = st.selectbox("Curve", CURVE_KEYS)
fig = go.Figure()
epochs = 1
for run in chosen:
    values = metric_series(run.metrics(), key)
    if values:
        fig.add_trace(go.Scatter(x=list(range(1, len(values) + 1)), y=values, name=run.name))
        epochs = max(epochs, len(values))
fig.update_layout(xaxis=epoch_axis(epochs), yaxis_title=key, height=380, margin=dict(t=10))
st.plotly_chart(fig, key="overlay")
flat = [run.name for run in chosen if not run.metrics()]
if flat:
    st.caption(f"No learning curves (no metrics.csv; an ensemble has none): {', '.join(flat)}")
grouping = st.radio(
    "Group runs into cells", GROUPINGS, horizontal=True,
    help="same settings: the runs whose config.yaml differs only by the seed (and the run's "
    "name, folder, tracking and caches) and that were tested on the same images",
)  # fmt: skip
groups = cells(chosen, grouping)
spread = spread_rows(groups)
st.subheader("Metrics (mean over seeds, std and 95% CI)")
st.dataframe(spread, hide_index=True, placeholder="")
verdicts = verdict_rows(groups, spread)
if verdicts:
    st.subheader("Paired comparisons with the best cell (by validation accuracy)")
    st.dataframe(verdicts, hide_index=True, placeholder="")
    st.caption(
        "diff: this cell minus the reference (accuracy, macro F1) on the test images both saw, "
        "seed k with seed k (two single runs pair directly); pairs: the run pairs it rests on; "
        "CI: paired bootstrap 95%; p: exact McNemar (largest over the pairs), Holm adjusted. "
        "'better'/'worse' only when the CI excludes 0 and p_holm < 0.05."
    )
    for row in verdicts:
        if row["pairs"]:
            pairs = f"{row['pairs']} pair{'s' if row['pairs'] > 1 else ''}"
            why = f"{pairs} of runs, {row['images']} test images"
            if row.get("left out"):
                why += f"; left out: {row['left out']}"
        else:
            why = row["why"]
        st.markdown(f"**{row['cell']}** vs **{row['reference']}**: {row['verdict']} ({why})")
