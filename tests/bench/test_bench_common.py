"""Smoke tests of the benchmark helpers (no timings asserted: benchmarks are not tests)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import common  # noqa: E402
from peers.cnnlab_run import find_test_accuracy  # noqa: E402


def test_table_is_markdown_with_one_row_per_input() -> None:
    text = common.table(["a", "b"], [["x", 1.23456], ["y", None]])
    lines = text.splitlines()
    assert lines[0].startswith("| a") and set(lines[1]) <= {"|", "-"}
    assert "1.23" in lines[2] and lines[3].split("|")[2].strip() == "-"


def test_ratio_handles_missing_parts() -> None:
    assert common.ratio(4.0, 2.0) == 2.0
    assert common.ratio(None, 2.0) is None and common.ratio(1.0, 0) is None


def test_machine_info_names_cores_and_date() -> None:
    info = common.machine_info()
    assert info["cores"] >= 1 and info["date"].endswith("UTC")
    assert set(info["cpu_flags"]) <= set(common.INTERESTING_FLAGS)


def test_shapes_images_differ_by_class_and_are_reproducible() -> None:
    a = [np.asarray(common.shapes_image(c, np.random.default_rng(1))) for c in range(10)]
    b = [np.asarray(common.shapes_image(c, np.random.default_rng(1))) for c in range(10)]
    assert all(x.shape == (32, 32, 3) and x.dtype == np.uint8 for x in a)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_shapes_dataset_has_imagefolder_layout(tmp_path: Path) -> None:
    root = common.make_shapes_dataset(tmp_path / "d", train_per_class=2, test_per_class=1)
    assert sorted(p.name for p in (root / "train").iterdir()) == sorted(common.SHAPES)
    assert common.count_images(root) == 30
    assert common.make_shapes_dataset(root, 2, 1) == root  # cached: nothing rewritten


def test_run_json_subprocess_parses_last_json_line_and_reports_failure() -> None:
    code = "print('noise'); print('{\"x\": 1}'); print('{\"x\": 2}')"
    out = common.run_json_subprocess([sys.executable, "-c", code], timeout=30)
    assert out["x"] == 2 and out["process_s"] > 0
    bad = common.run_json_subprocess([sys.executable, "-c", "raise SystemExit(3)"], timeout=30)
    assert bad["error"].startswith("exit 3")


@pytest.mark.parametrize(
    ("summary", "expected"),
    [
        ({"metrics": {"val": {"accuracy": 0.5}, "test": {"accuracy": 0.75}}}, 0.75),
        ({"test/acc": 0.6}, 0.6),
        ({"metrics": {}}, None),
    ],
)
def test_find_test_accuracy_prefers_the_test_split(summary: dict, expected: float | None) -> None:
    assert find_test_accuracy(json.loads(json.dumps(summary))) == expected


def _round(
    plain: float, trivial: float, cli: list[float], sync: list[float], runs: list[float]
) -> dict:
    """One round: ``cli`` = [until the results print, until the report, a study's run]."""
    return {
        "plain": {"wall_s": plain, "cpu_s": plain},
        "help": {"wall_s": 0.3, "cpu_s": 0.3},
        "trivial": {"wall_s": trivial, "cpu_s": trivial},
        "inproc": {"import": [5.0, 5.0], "runs": [[r, r] for r in runs], "wrapups": []},
        "wrap": {"wrapups": [[cli[0]] * 2, [cli[2]] * 2], "drawn": [[cli[1]] * 2, [2.0, 2.0]]},
        "wrapsync": {"wrapups": [[w, w] for w in sync], "drawn": []},
        # four shares: numbers 0.6 s, then this process draws 0.4 CPU-s, a child 0.45, and
        # this process spends 0.1 s more after its share (the report)
        "wrap4": {"wrapups": [[0.6, 1.0]], "drawn": [[0.9, 1.5]],
                  "shares": {"main_after_s": 0.5, "draw_cpu_s": {"main": 0.4, "77": 0.45}}},
    }  # fmt: skip


def test_overhead_summary_keeps_the_best_round_and_judges_each_goal() -> None:
    import bench_overhead

    rounds = [
        _round(4.0, 9.0, [1.3, 0.2, 1.0], [1.6, 1.2, 2.0], [3.0, 1.5, 1.5]),
        _round(3.5, 6.9, [1.2, 0.2, 0.9], [1.4, 1.1, 1.9], [2.5, 1.2, 1.3]),
    ]
    s = bench_overhead.summarise(rounds)
    assert (s["plain"][0], s["trivial"][0], s["wrapup"][0]) == (3.5, 6.9, 1.4)
    assert s["wrapup_cli"] == [1.2, 1.2] and s["wrapup_cli_report"] == pytest.approx([1.4, 1.4])
    assert s["trivial_x_plain"] == pytest.approx(6.9 / 3.5)
    assert s["run2_x_run1"] == pytest.approx(1.2 / 2.5)
    assert s["forked_plots_speedup"] == pytest.approx(1.9 / 1.1)
    assert s["wrapup_deferred"] == [0.9, 0.9] and s["figures_after"] == [2.0, 2.0]
    assert s["wrapup_cli_report_4"] == pytest.approx([1.5, 2.5])
    assert s["wrapup_cli_report_4_est"] == pytest.approx(0.6 + 0.45 + 0.1)
    text = bench_overhead.report(s)
    assert "met (estimate)" in text
    assert "1.97x plain" in text and "NOT met" not in text
    s["wrapup"] = [1.6, 1.6]
    assert bench_overhead.report(s).count("NOT met") == 1
    s["wrapup_cli_report"] = [1.6, 1.6]
    assert bench_overhead.report(s).count("NOT met") == 2
    s["wrapup_deferred"] = [1.6, 1.6]
    assert bench_overhead.report(s).count("NOT met") == 3
