"""Runs page: a leaderboard of the runs folder and one run's curves, matrix and mistakes."""

from __future__ import annotations

import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from cnnlab.app.rundata import (
    SPLITS,
    epoch_axis,
    filter_rows,
    leaderboard,
    learning_curves,
    plot_file,
    report_bytes,
)
from cnnlab.app.settings import load_settings
from cnnlab.runs import Run


def curves_chart(series: dict[str, list[float]], title: str) -> go.Figure:
    fig = go.Figure()
    for key, values in series.items():
        fig.add_trace(go.Scatter(x=list(range(1, len(values) + 1)), y=values, name=key))
    epochs = max(len(v) for v in series.values())
    fig.update_layout(title=title, xaxis=epoch_axis(epochs), height=320, margin=dict(t=40, b=10))
    return fig


def confusion_chart(metrics: dict, normalised: bool) -> go.Figure:
    key = "confusion_matrix_normalized" if normalised else "confusion_matrix"
    classes = metrics["classes"]
    fig = px.imshow(
        metrics[key],
        x=classes,
        y=classes,
        text_auto=".2f" if normalised else True,
        color_continuous_scale="Blues",
        labels={"x": "predicted", "y": "true", "color": "share" if normalised else "images"},
    )
    fig.update_layout(height=200 + 40 * len(classes), margin=dict(t=10, b=10))
    return fig


def show_run(run: Run) -> None:
    st.header(run.name)
    curves = learning_curves(run)
    cols = st.columns(2)
    for col, (name, series) in zip(cols, curves.items(), strict=True):
        if series:
            col.plotly_chart(curves_chart(series, name), key=f"curve-{name}")
    splits = [s for s in SPLITS if run.split_metrics(s) is not None]
    if not splits:
        st.info("This run has no evaluation yet (it may still be training).")
        return
    split = st.radio("Split", splits, horizontal=True)
    metrics = run.split_metrics(split) or {}
    left, right = st.columns(2)
    for col, key, label in ((left, "accuracy", "accuracy"), (right, "macro_f1", "macro F1")):
        col.metric(label, f"{metrics.get(key, 0):.3f}")
        interval = metrics.get(f"{key}_ci")
        if interval:  # what the split's images allow, so one number is not over-read
            col.caption(f"95% interval over {metrics.get('num_samples')} images: "
                        f"{interval[0]:.3f} – {interval[1]:.3f}")  # fmt: skip
        elif metrics.get(f"{key}_ci_note"):  # a perfect score: no interval, never x – x
            col.caption(f"95% interval {metrics[f'{key}_ci_note']}")
    normalised = st.toggle("Normalise rows (share of each true class)", value=False)
    st.subheader("Confusion matrix")
    st.plotly_chart(confusion_chart(metrics, normalised), key="confusion")
    st.subheader("Per-class metrics")
    st.dataframe(metrics.get("per_class", []), hide_index=True)
    st.subheader("Worst mistakes")
    mistakes = metrics.get("worst_mistakes") or []
    if not mistakes:
        st.caption("No mistakes on this split.")
    else:
        keep = ("path", "true", "pred", "prob", "true_prob")
        st.dataframe([{k: m.get(k) for k in keep} for m in mistakes], hide_index=True)
        picture = plot_file(run, split, "worst_mistakes")
        if picture is not None:
            st.image(str(picture))
    if run.report.is_file():
        st.download_button(
            "Download report.html", report_bytes(run), f"{run.name}-report.html", "text/html"
        )


settings = load_settings()
st.title("Runs")
rows = leaderboard(settings.runs_dir)
if not rows:
    st.info("No runs in the runs folder yet: train one with `cnnlab train DATA`.")
    st.stop()
filters = st.columns(3)
chosen = {
    key: col.multiselect(key, sorted({str(r[key]) for r in rows if r[key]}))
    for col, key in zip(filters, ("model", "mode", "dataset"), strict=True)
}
shown = filter_rows(rows, **chosen)
if any(r["pruned"] for r in shown):
    st.caption("pruned = a tune's pruner stopped the trial early: its metrics are of a short run")
else:  # no tune trial among them: the column would only say no
    shown = [{k: v for k, v in r.items() if k != "pruned"} for r in shown]
st.dataframe(shown, hide_index=True, placeholder="")  # click a column header to sort
names = [r["run"] for r in shown]
if names:
    name = st.selectbox("Look at one run", names, index=len(names) - 1)
    show_run(Run(settings.runs_dir / name))
