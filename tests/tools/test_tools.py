"""tools/ (offline analysis) on tiny runs: the pandas tables equal what h5py
and `kpo diag` read, the figures exist as PNG and SVG and draw exactly the
file's numbers, the report's Tables 1-3 hold the right numbers, the gain
closed forms equal `kpo gain`, and jobs/analysis.sbatch runs on them."""
import importlib
import math
import os
import re
import shutil
import subprocess
import sys

import pytest

from conftest import ENV, KPO, ROOT, kpo, python_tool

import kpo_gain  # noqa: E402  (tools/, put on sys.path by conftest; standard library only)


def _missing_modules():
    missing = []
    for name in ("h5py", "numpy", "pandas", "matplotlib"):
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    return missing


MISSING = _missing_modules()
if MISSING:
    # Each test reports why, short enough for pytest -v to print it in full
    # beside SKIPPED (Debian: python3-h5py python3-pandas python3-matplotlib).
    pytestmark = pytest.mark.skip(reason=f"no {','.join(MISSING)}")
else:
    import h5py
    import numpy as np

    import kpo_plots
    import kpo_runs

CONDITIONS = ("kpo-weak", "is-kpo-weak", "kpo-strong")


def test_deps():
    """First and short-named, so that its SKIPPED line shows the reason whole."""
    assert not MISSING


@pytest.fixture(scope="module")
def runs(runs_dir):
    return kpo_runs.load_runs([str(runs_dir / c / "run.h5") for c in CONDITIONS])


@pytest.fixture(scope="module")
def evals(runs_dir):
    return kpo_runs.load_evals([str(runs_dir / c / "eval.h5") for c in CONDITIONS])


def same(a, b):
    """Equal arrays, NaN equal to NaN."""
    return np.array_equal(np.asarray(a, float), np.asarray(b, float), equal_nan=True)


def diag_rows(path, minibatches=False):
    """`kpo diag --csv` rows keyed by step text ("3", "all", "3.2")."""
    out = kpo("diag", path, "--csv", "--pool", "all", *(["--minibatches"] if minibatches else []))
    lines = out.strip().splitlines()
    header = lines[0].split(",")
    return {row[1]: dict(zip(header, row)) for row in (li.split(",") for li in lines[1:])}


def close(a, b, rel=1e-9):
    a, b = float(a), float(b)
    return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=rel, abs_tol=1e-300)


def test_labels_from_directory_or_given():
    specs = ["runs/kpo-weak/run.h5", "mine=/x/y.h5", "a/dup/run.h5", "b/dup/other.h5"]
    assert kpo_runs.assign_labels(specs) == [("kpo-weak", "runs/kpo-weak/run.h5"), ("mine", "/x/y.h5"),
                                             ("dup/run", "a/dup/run.h5"), ("dup/other", "b/dup/other.h5")]


def test_metrics_table_equals_h5py_with_units(runs, runs_dir):
    table = kpo_runs.metrics_table(runs)
    for r in runs:
        rows = table[table["run"] == r.label]
        with h5py.File(r.path, "r") as f:
            assert rows["step"].tolist() == f["steps/step"][:].tolist()
            for name in f["metrics"]:
                assert same(rows[name], f["metrics"][name][:]), (r.label, name)
    units = table.attrs["units"]
    assert units["reward_mean"] == "reward" and units["time_step"] == "s"
    assert units["entropy_mean"] == "nats / token"


def test_units_recorded_in_the_file_win(runs_dir, tmp_path):
    copy = tmp_path / "x" / "run.h5"
    copy.parent.mkdir()
    shutil.copy(runs_dir / "kpo-weak" / "run.h5", copy)
    with h5py.File(copy, "r+") as f:
        f["metrics/loss"].attrs["unit"] = "nats"
    run = kpo_runs.load_run(str(copy))
    assert run.label == "x" and run.units["loss"] == "nats" and run.units["accuracy"] == "fraction"


def test_innovation_and_histogram_tables_equal_h5py(runs):
    innov, hist = kpo_runs.innovation_table(runs), kpo_runs.histogram_table(runs)
    for r in runs:
        with h5py.File(r.path, "r") as f:
            rows = innov[innov["run"] == r.label]
            for name in kpo_runs.INNOVATION_FIELDS:
                assert same(rows[name], f["innovation"][name][:]), name
            h = hist[hist["run"] == r.label]
            expected = f["innovation/histogram"][:]
            assert same(h["count"].to_numpy().reshape(expected.shape), expected)
            edges = f["innovation/histogram"].attrs["bin_edges"][:]
            assert same(h["low"].to_numpy()[1:65], edges[:-1]) and h["high"].iloc[65] == np.inf


def test_minibatch_and_merged_statistics_equal_kpo_diag(runs):
    table = kpo_runs.minibatch_table(runs)
    for r in runs:
        diag = diag_rows(r.path, minibatches=True)
        rows = table[table["run"] == r.label]
        # kpo train records each step's 2 mini-batches; kpo simulate none
        assert len(rows) == (2 * len(r.steps) if r.label == "kpo-weak" else 0)
        assert len(rows) == len([k for k in diag if "." in k])
        for row in rows.itertuples():
            d = diag[f"{row.step}.{row.minibatch}"]
            assert float(d["tokens"]) == row.tokens
            for name in ("kurtosis", "clip_fraction", "mean_gain", "mean_threshold", "std_delta"):
                assert close(getattr(row, name), d[name]), (r.label, row.step, name)
        whole = kpo_runs.merged_statistics(r)
        for name in ("tokens", "kurtosis", "max_abs_delta", "clip_fraction", "mean_gain", "mean_threshold"):
            assert close(whole[name], diag["all"][name], rel=1e-12), (r.label, name)


def test_eval_tables_equal_h5py_and_the_file_attrs(evals):
    problems, summary = kpo_runs.eval_table(evals), kpo_runs.eval_summary(evals)
    for e in evals:
        with h5py.File(e.path, "r") as f:
            for bench in f["bench"]:
                g = f["bench"][bench]
                rows = problems[(problems["run"] == e.label) & (problems["bench"] == bench)]
                for column in ("problem_index", "correct", "samples"):
                    assert rows[column].tolist() == g[column][:].tolist()
                s = summary[(summary["run"] == e.label) & (summary["bench"] == bench)].iloc[0]
                assert s["avg_at_k"] == pytest.approx(100 * g.attrs["avg_at_k"], abs=1e-10)
                assert s["pass_at_k"] == pytest.approx(100 * g.attrs["pass_at_k"], abs=1e-10)
                assert s["k"] == g.attrs["k"] and s["problems"] == g.attrs["n_problems"]


@pytest.mark.parametrize("q,v,kappa", [(0.01, 1.0, 3.0), (0.05, 1.0, 1.0), (0.01, 0.1, 2.0), (1e-6, 1.0, 3.0)])
def test_gain_closed_forms_equal_kpo_gain(q, v, kappa):
    text = kpo("gain", "--q", q, "--v", v, "--kappa", kappa)
    k_inf = float(re.search(r"K_inf\s+(\S+)", text).group(1))
    threshold = float(re.search(r"threshold, mode sigma\s+(\S+)", text).group(1))
    s = kpo_gain.summary(q, v, kappa)
    assert s["k_inf"] == pytest.approx(k_inf, rel=1e-5)
    assert s["threshold_sigma"] == pytest.approx(threshold, rel=1e-5)
    csv = kpo("gain", "--q", q, "--v", v, "--kappa", kappa, "--tokens", "1,2,3,10", "--csv")
    rows = {int(li.split(",")[0]): li.split(",") for li in csv.strip().splitlines()[1:]}
    for t, gain, sigma in kpo_gain.transient(q, v, 0.0, 10):
        if t in rows:
            assert gain == pytest.approx(float(rows[t][1]), rel=1e-14)
            assert sigma == pytest.approx(float(rows[t][2]), rel=1e-14)
    assert s["k_2"] == pytest.approx(float(rows[2][1]), rel=1e-14)


def assert_image_files(paths):
    png, svg = paths
    assert os.path.getsize(png) > 1000 and os.path.getsize(svg) > 1000
    with open(png, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    with open(svg, encoding="utf-8") as f:
        assert "<svg" in f.read()


def test_figures_exist_and_draw_the_file(runs, tmp_path):
    drawn = kpo_plots.draw_all(runs, str(tmp_path / "figs"))
    for figure in drawn.values():
        assert_image_files(figure["files"])
    mb = kpo_runs.minibatch_table(runs)
    for r in runs:
        with h5py.File(r.path, "r") as f:
            fig2 = drawn["figure2"][r.label]
            assert same(fig2["step"], f["steps/step"][:])
            for key, name in (("clip_fraction", "clip_fraction"), ("max_abs_delta", "max_abs_delta"),
                              ("threshold", "mean_threshold")):
                assert same(fig2[key], f["innovation"][name][:]), key
            assert same(drawn["histograms"][r.label]["counts"], f["innovation/histogram"][:])
            for name, values in drawn["training"][r.label].items():
                if name != "step":
                    assert same(values, f["metrics"][name][:]), name
        if r.minibatch_accumulator is not None:
            mine = mb[mb["run"] == r.label]
            assert same(drawn["minibatches"][r.label]["kurtosis"], mine["kurtosis"])
            assert same(drawn["minibatches"][r.label]["max_abs_delta"], mine["max_abs_delta"])
    assert list(drawn["minibatches"]) == ["kpo-weak", "files"]
    trained = drawn["training"]["kpo-weak"]
    for name in ("reward_mean", "accuracy", "response_length_mean", "entropy_mean", "loss",
                 "grad_norm_mean", "time_rollout", "time_learn"):
        assert name in trained, name  # a real run draws every panel
    assert "reward_mean" not in drawn["training"]["is-kpo-weak"]  # simulate has no reward


def markdown_tables(text):
    """{section heading: [row cells]} for every Markdown table in text."""
    tables, heading = {}, None
    for line in text.splitlines():
        if line.startswith("## "):
            heading = line[3:]
        elif line.startswith("| ") and heading:
            tables.setdefault(heading, []).append([c.strip() for c in line.strip("|").split(" | ")])
    return {h: [r for r in rows[1:] if not r[0].startswith("---")] for h, rows in tables.items()}


def section(tables, prefix):
    return next(rows for heading, rows in tables.items() if heading.startswith(prefix))


def test_report_tables_hold_the_right_numbers(runs_dir, tmp_path, runs):
    out = tmp_path / "report"
    python_tool("kpo_report", "--runs-dir", runs_dir, "--out", out, "--kpo", KPO,
                "--baseline", "kpo-weak", "--reference", "kpo-strong")
    text = (out / "report.md").read_text()
    tables = markdown_tables(text)
    for row in section(tables, "Table 1"):
        with h5py.File(runs_dir / row[0] / "eval.h5", "r") as f:
            expected = [f"{100 * f['bench'][b].attrs[a]:.2f}" for b in ("arith", "small")
                        for a in ("avg_at_k", "pass_at_k")]
        assert row[1:] == expected, row
    assert [r[0] for r in section(tables, "Table 1")] == sorted(CONDITIONS)
    assert "paired t-test over problems" in text and "kpo-strong vs kpo-weak" in text
    table2 = section(tables, "Table 2")
    for r in runs:
        rows = [row for row in table2 if row[0] == r.label]
        with h5py.File(r.path, "r") as f:
            assert [int(row[1]) for row in rows] == f["steps/step"][:].tolist()  # short runs: every step
            for row, kurt, top in zip(rows, f["innovation/kurtosis"][:], f["innovation/max_abs_delta"][:]):
                assert row[2] == f"{kurt:.2f}" and row[3] == f"{top:.3g}"
                if r.label != "is-kpo-weak":
                    assert row[4] == "–"  # mode none: nothing to clip
    table3 = {row[0]: row for row in section(tables, "Table 3")}
    for r in runs:
        row, diag = table3[r.label], diag_rows(r.path)["all"]
        q = float(r.config["filter.q"])
        k_inf = float(re.search(r"K_inf\s+(\S+)", kpo("gain", "--q", q, "--v", 1)).group(1))
        closed = kpo_gain.summary(q, 1.0)["k_inf"]  # kpo gain prints 6 digits: compare, then format
        assert closed == pytest.approx(k_inf, rel=1e-5) and row[5] == f"{100 * closed:.3g}"
        assert row[8] == f"{100 * float(diag['mean_gain']):.3g}"
        if r.label == "is-kpo-weak":
            assert row[10] == f"{float(diag['clip_fraction']):.2e}" and row[3] == "3"
        with h5py.File(runs_dir / r.label / "eval.h5", "r") as f:
            assert row[11] == f"{100 * f['bench/arith'].attrs['avg_at_k']:.2f} (arith)"
    for name in ("figure2", "training", "histograms", "minibatches"):
        assert f"]({name}.png)" in text and f"({name}.svg)" in text
        assert_image_files([out / f"{name}.png", out / f"{name}.svg"])


def test_tables_cli_text_table1(runs_dir):
    r = python_tool("kpo_tables", "table1", f"kpo-weak={runs_dir / 'kpo-weak' / 'eval.h5'}",
                    f"grpo={runs_dir / 'grpo' / 'eval.h5'}")
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["method", "arith", "avg/pass", "small", "avg/pass"]
    with h5py.File(runs_dir / "kpo-weak" / "eval.h5", "r") as f:
        g = f["bench/small"]
        assert f"{100 * g.attrs['avg_at_k']:.2f} / {100 * g.attrs['pass_at_k']:.2f}" in lines[1]
    assert re.match(r"^grpo +\(no eval\.h5\)$", lines[2])


def test_runs_script_writes_csv(runs_dir, tmp_path):
    python_tool("kpo_runs", runs_dir / "kpo-weak" / "run.h5", "--eval",
                runs_dir / "kpo-weak" / "eval.h5", "--csv", tmp_path / "csv")
    for name in ("metrics", "innovation", "minibatches", "histogram", "eval_problems", "eval_summary"):
        assert (tmp_path / "csv" / f"{name}.csv").stat().st_size > 0


def test_analysis_job_uses_tools_and_writes_the_report(runs_dir, tmp_path):
    out = tmp_path / "tables.txt"
    env = dict(ENV, KPO_BIN=KPO, KPO_ROOT=str(ROOT), KPO_PYTHON=sys.executable)
    r = subprocess.run(["bash", str(ROOT / "jobs" / "analysis.sbatch"), "--runs", str(runs_dir),
                        "--out", str(out), "--report", str(tmp_path / "report"),
                        "--conditions", "kpo-strong kpo-weak is-kpo-weak grpo"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    tables = out.read_text()
    for heading in ("Table 1", "Table 1 statistics", "Table 2", "Table 3"):
        assert f"== {heading}" in tables
    for condition in CONDITIONS:
        assert re.search(rf"^{re.escape(condition)} +([\d.]+) / ([\d.]+)", tables, re.M), tables
    assert re.search(r"^grpo +\(no eval\.h5\)", tables, re.M)
    assert sorted(re.findall(r"^-- arith: (\S+) vs kpo-weak$", tables, re.M)) == ["is-kpo-weak", "kpo-strong"]
    assert "h5dump" not in (ROOT / "jobs" / "analysis.sbatch").read_text()
    assert (tmp_path / "report" / "report.md").exists() and (tmp_path / "report" / "figure2.svg").exists()
