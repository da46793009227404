"""kpo diag labels runs by their directory (or --label NAME=FILE) and, with
--metrics, exports every /metrics series per step with its unit as CSV or
JSON lines; the values equal h5py's and the units are kpo's table's."""
import json
import math

import h5py
import pytest

from conftest import parse_csv, run_kpo


@pytest.fixture(scope="module")
def three(tmp_path_factory, require_hdf5):
    """Three runs, each a run.h5 in its own directory."""
    base = tmp_path_factory.mktemp("labels")
    paths = []
    for name, seed in (("alpha", 1), ("beta", 2), ("gamma", 3)):
        (base / name).mkdir()
        path = base / name / "run.h5"
        run_kpo("simulate", "--out", path, "--steps", 3, "--responses", 8, "--seed", seed)
        paths.append(path)
    return paths


def csv_labels(out):
    return list(dict.fromkeys(r["run"] for r in parse_csv(out)))


def test_same_file_name_in_three_directories_gets_three_labels(three):
    out = run_kpo("diag", *three).stdout
    headers = [li for li in out.splitlines() if li.startswith("== ")]
    assert [h.split(":")[0] for h in headers] == ["== alpha", "== beta", "== gamma"]
    columns = next(li for li in out.splitlines()
                   if li.split()[:1] == ["step"] and "alpha" in li).split()
    assert columns == ["step", "alpha", "beta", "gamma"]
    assert csv_labels(run_kpo("diag", *three, "--csv").stdout) == ["alpha", "beta", "gamma"]


def test_equal_directory_names_are_told_apart(three, tmp_path):
    for parent in ("x", "y"):
        (tmp_path / parent / "alpha").mkdir(parents=True)
        (tmp_path / parent / "alpha" / "run.h5").write_bytes(three[0].read_bytes())
    (tmp_path / "x" / "alpha" / "other.h5").write_bytes(three[0].read_bytes())
    labels = csv_labels(run_kpo("diag", tmp_path / "x" / "alpha" / "run.h5",
                                tmp_path / "y" / "alpha" / "run.h5",
                                tmp_path / "x" / "alpha" / "other.h5", "--csv").stdout)
    assert labels == ["x/alpha/run", "y/alpha/run", "alpha/other"]
    # The same file twice: the second is numbered.
    assert csv_labels(run_kpo("diag", three[0], three[0], "--csv").stdout) == \
        ["alpha", "alpha#2"]


def test_label_option_names_runs(three):
    out = run_kpo("diag", "--label", f"strong={three[0]}", three[1],
                  f"--label=weak={three[2]}", "--csv").stdout
    assert csv_labels(out) == ["strong", "beta", "weak"]
    # A --label FILE also named among the runs labels that run, read once.
    out = run_kpo("diag", three[0], three[1], "--label", f"first={three[0]}", "--csv").stdout
    assert csv_labels(out) == ["first", "beta"]
    text = run_kpo("diag", "--label", f"strong={three[0]}", three[1]).stdout
    assert f"== strong: {three[0]} (3 steps)" in text


@pytest.mark.parametrize("args, needle", [
    (["--label", "same=A", "--label", "same=B"], "--label same=B: the label 'same' is already "
                                                  "given to A; labels must be unique"),
    (["--label", "noequals"], "--label noequals: expected NAME=FILE"),
    (["--label", "=x.h5"], "--label =x.h5: expected NAME=FILE"),
    (["--label", "a,b=x.h5"], "--label a,b=x.h5: NAME may not hold commas"),
])
def test_bad_labels_are_refused_naming_the_argument(three, args, needle):
    args = [a.replace("=A", f"={three[0]}").replace("=B", f"={three[1]}") for a in args]
    needle = needle.replace("=B", f"={three[1]}").replace("to A", f"to {three[0]}")
    r = run_kpo("diag", *args, check=False)
    assert r.returncode != 0 and r.stdout == ""
    assert r.stderr.startswith("kpo: ") and needle in r.stderr, r.stderr


def table_units():
    rows = parse_csv(run_kpo("diag", "--list-metrics", "--csv").stdout)
    return {r["metric"]: r["unit"] for r in rows}


def h5_metrics(path):
    with h5py.File(path, "r") as f:
        steps = f["steps/step"][:]
        return steps, {k: f["metrics"][k][:] for k in f["metrics"]}


def same(a, b):
    return (math.isnan(a) and math.isnan(b)) or a == b


def test_metrics_csv_every_series_with_its_unit(three):
    units = table_units()
    rows = parse_csv(run_kpo("diag", "--metrics", "--csv", *three).stdout)
    assert list(rows[0]) == ["run", "step", "metric", "value", "unit"]
    for label, path in zip(["alpha", "beta", "gamma"], three):
        steps, metrics = h5_metrics(path)
        mine = [r for r in rows if r["run"] == label]
        assert len(mine) == len(steps) * len(metrics)
        got = {(int(r["step"]), r["metric"]): r for r in mine}
        for name, values in metrics.items():
            for step, value in zip(steps, values):
                r = got[(int(step), name)]
                assert same(float(r["value"]), float(value)), (label, step, name)
                assert r["unit"] == units[name] and r["unit"], name


def test_metrics_jsonl_matches_csv_and_steps_select(three):
    csv_rows = parse_csv(run_kpo("diag", "--metrics", "--csv", three[1]).stdout)
    lines = run_kpo("diag", "--metrics", "--jsonl", three[1]).stdout.splitlines()
    records = [json.loads(li) for li in lines]
    assert len(records) == len(csv_rows)
    for rec, row in zip(records, csv_rows):
        assert list(rec) == ["run", "step", "metric", "value", "unit"]
        assert (rec["run"], rec["step"], rec["metric"], rec["unit"]) == \
            (row["run"], int(row["step"]), row["metric"], row["unit"])
        assert rec["value"] == float(row["value"])
    picked = parse_csv(run_kpo("diag", "--metrics", "--csv", "--steps", "2", three[1]).stdout)
    assert {r["step"] for r in picked} == {"2"} and picked


def test_metrics_option_conflicts(three):
    for args, needle in [(["--jsonl"], "--jsonl goes with --metrics"),
                         (["--metrics", "--csv", "--jsonl"], "choose one"),
                         (["--metrics", "--pool", "all"], "--pool go with Table 2")]:
        r = run_kpo("diag", three[0], *args, check=False)
        assert r.returncode != 0 and needle in r.stderr, r.stderr


def test_simulate_metrics_are_all_in_the_table(three):
    rows = parse_csv(run_kpo("diag", "--list-metrics", "--csv").stdout)
    simulate = {r["metric"] for r in rows if "simulate" in r["writers"]}
    _, metrics = h5_metrics(three[0])
    assert simulate == set(metrics)
