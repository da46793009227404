"""The offline tools end to end: kpo gain, stats, simulate, diag, filter,
and their handling of bad input."""
import math
import os

import h5py
import numpy as np
import pytest

from conftest import build_has, parse_csv, run_kpo


# --- kpo gain -------------------------------------------------------------

def python_gains(q, v, p0, n):
    k, out = p0 / v, []
    for _ in range(n):
        prior = k + q / v
        k = prior / (prior + 1)
        out.append(k)
    return out


def test_gain_report_for_weak_smoothing():
    out = run_kpo("gain", "--q", "0.01", "--v", "1", "--kappa", "3").stdout
    assert "K_inf                      0.0951249" in out
    assert "memory 1/K_inf             10.51 tokens" in out
    assert "threshold, mode sigma      3.15375" in out
    assert "threshold, mode sqrtv      3 " in out


@pytest.mark.parametrize("q,v,p0", [(1e-6, 1, 0), (0.01, 0.1, 0), (0.05, 1, 0.2)])
def test_gain_csv_matches_recursion(q, v, p0):
    rows = parse_csv(run_kpo("gain", "--q", q, "--v", v, "--p0", p0, "--kappa", 2,
                             "--tokens", "1,2,10,1000", "--csv").stdout)
    gains = python_gains(q, v, p0, 1000)
    assert [int(r["token"]) for r in rows] == [1, 2, 10, 1000]
    for r in rows:
        t = int(r["token"])
        assert float(r["gain"]) == pytest.approx(gains[t - 1], rel=1e-14)
        prior_var = (gains[t - 2] * v if t > 1 else p0) + q
        assert float(r["sigma"]) == pytest.approx(math.sqrt(prior_var + v), rel=1e-14)
        assert float(r["threshold_sigma"]) == pytest.approx(2 * math.sqrt(prior_var + v))
        weight = 1 - np.prod([1 - g for g in gains[:t]])
        assert float(r["data_weight"]) == pytest.approx(weight, rel=1e-12)
    assert float(rows[0]["gain"]) == pytest.approx((p0 / v + q / v) / (p0 / v + q / v + 1))


# --- kpo stats ------------------------------------------------------------

def test_stats_reproduces_the_corrected_z_test():
    out = run_kpo("stats", "--p1", "48.59%", "--n1", 8000, "--p2", "0.4781", "--n2", 8000).stdout
    z = float(out.split("z = ")[1].split()[0])
    p = float(out.split("two-sided p = ")[1].split()[0])
    pooled = (0.4859 + 0.4781) / 2
    z_ref = (0.4859 - 0.4781) / math.sqrt(pooled * (1 - pooled) * (2 / 8000))
    assert z == pytest.approx(z_ref, abs=5e-4) and round(z, 2) == 0.99
    assert p == pytest.approx(math.erfc(abs(z_ref) / math.sqrt(2)), abs=5e-4)
    assert round(p, 2) == 0.32


# --- simulate, diag, filter ----------------------------------------------

@pytest.fixture(scope="module")
def runs(tmp_path_factory, require_hdf5):
    base = tmp_path_factory.mktemp("runs")
    common = ["--steps", 5, "--responses", 16, "--max-length", 300, "--samples", 4]
    paths = {}
    for name, args in {"strong": ["--q", "1e-6"], "weak": ["--q", "1e-2"],
                       "is-weak": ["--q", "1e-2", "--mode", "sigma", "--kappa", 3]}.items():
        paths[name] = base / f"{name}.h5"
        run_kpo("simulate", "--out", paths[name], *args, *common)
    return paths


def test_simulate_is_reproducible(runs, tmp_path):
    again = tmp_path / "again.h5"
    run_kpo("simulate", "--out", again, "--q", "1e-6", "--steps", 5, "--responses", 16,
            "--max-length", 300, "--samples", 4)
    with h5py.File(runs["strong"], "r") as a, h5py.File(again, "r") as b:
        assert np.array_equal(a["innovation/accumulator"][:], b["innovation/accumulator"][:])
        assert np.array_equal(a["samples/values"][:], b["samples/values"][:])


def test_diag_table_and_csv_agree_with_the_file(runs):
    table = run_kpo("diag", runs["weak"]).stdout
    assert "kurtosis" in table and "max|delta|" in table and "clip_frac" in table
    rows = parse_csv(run_kpo("diag", runs["weak"], "--csv").stdout)
    assert [r["step"] for r in rows] == ["1", "2", "3", "4", "5", "all"]
    with h5py.File(runs["weak"], "r") as f:
        for r, kurt, mx, clip in zip(rows, f["innovation/kurtosis"][:],
                                     f["innovation/max_abs_delta"][:],
                                     f["innovation/clip_fraction"][:]):
            assert float(r["kurtosis"]) == kurt
            assert float(r["max_abs_delta"]) == mx
            assert float(r["clip_fraction"]) == clip
        total = f["innovation/count"][:].sum()
    assert float(rows[-1]["tokens"]) == total
    selected = parse_csv(run_kpo("diag", runs["weak"], "--steps", "1,3", "--csv").stdout)
    assert [r["step"] for r in selected] == ["1", "3", "all"]


def test_diag_compares_runs_side_by_side(runs):
    out = run_kpo("diag", runs["strong"], runs["weak"], runs["is-weak"]).stdout
    assert "kurtosis (Pearson, Gaussian = 3)" in out and "clip fraction" in out
    assert out.count("== ") == 3


def test_filter_replay_matches_its_own_run(runs):
    """Replaying with the run's own parameters reproduces the recorded
    statistics of the sampled responses; the saturated run's threshold is
    about kappa * sigma."""
    rows = parse_csv(run_kpo("filter", runs["is-weak"], "--q", "1e-2", "--v", "1",
                             "--mode", "sigma", "--kappa", "3", "--csv").stdout)
    assert [r["step"] for r in rows] == ["1", "2", "3", "4", "5", "all"]
    with h5py.File(runs["is-weak"], "r") as f:
        sampled_tokens = f["samples/lengths"][:].sum()
    assert float(rows[-1]["tokens"]) == sampled_tokens
    assert 3.0 < float(rows[-1]["mean_threshold"]) < 3.2
    low_v = parse_csv(run_kpo("filter", runs["is-weak"], "--q", "1e-2", "--v", "0.1",
                              "--mode", "sigma", "--kappa", "2", "--csv").stdout)
    assert float(low_v[-1]["mean_threshold"]) < 0.8   # kappa * sqrt(M + V) ~ 0.74


def test_filter_text_input_and_per_token(tmp_path):
    path = tmp_path / "z.txt"
    path.write_text("0.1 -0.2 0.3\n\n# comment\n0.5\n")
    rows = parse_csv(run_kpo("filter", "--input", path, "--q", "0.01", "--v", "1",
                             "--per-token").stdout)
    assert [(r["response"], r["token"]) for r in rows] == [("0", "0"), ("0", "1"), ("0", "2"),
                                                         ("1", "0")]
    k1 = 0.01 / 1.01
    assert float(rows[0]["gain"]) == pytest.approx(k1, rel=1e-15)
    assert float(rows[0]["rho"]) == pytest.approx(k1 * 0.1, rel=1e-15)
    assert float(rows[3]["rho"]) == pytest.approx(k1 * 0.5, rel=1e-15)  # reset per response
    stdin_rows = parse_csv(run_kpo("filter", "--input", "-", "--q", "0.01", "--per-token",
                                   stdin="0.1 -0.2 0.3\n0.5\n").stdout)
    assert stdin_rows == rows


# --- bad input ------------------------------------------------------------

def assert_clean_failure(result, *needles):
    assert result.returncode != 0
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


@pytest.mark.parametrize("args,needles", [
    (["--mode", "huber"], ["--mode", "huber"]),
    (["--v", "0"], ["--v"]),
    (["--v", "-1"], ["--v"]),
    (["--q", "-1e-3"], ["--q"]),
    (["--mode", "sigma", "--kappa", "0"], ["--kappa"]),
    (["--mode", "sigma", "--kappa", "-3"], ["--kappa"]),
    (["--q", "nan"], ["--q", "finite"]),
    (["--v", "1x"], ["--v", "not a number"]),
    (["--bogus", "1"], ["--bogus", "valid"]),
])
def test_bad_parameters_fail_cleanly(tmp_path, args, needles):
    text = tmp_path / "z.txt"
    text.write_text("0.1 0.2\n")
    assert_clean_failure(run_kpo("filter", "--input", text, *args, check=False), *needles)
    out = tmp_path / "never.h5"
    assert_clean_failure(run_kpo("simulate", "--out", out, *args, check=False), *needles)
    assert not out.exists()


@pytest.mark.parametrize("content,needle", [
    ("0.1 nan 0.3\n", ":1:5"),
    ("0.1 0.2\n0.3 inf\n", ":2:5"),
    ("0.1 abc\n", "'abc' is not a number"),
    ("# only a comment\n", "no log-ratio sequences"),
])
def test_bad_text_input_names_file_and_line(tmp_path, content, needle):
    path = tmp_path / "z.txt"
    path.write_text(content)
    assert_clean_failure(run_kpo("filter", "--input", path, check=False), str(path), needle)


@pytest.mark.usefixtures("require_hdf5")
def test_bad_run_files_are_named(tmp_path):
    missing = tmp_path / "missing.h5"
    assert_clean_failure(run_kpo("diag", missing, check=False), str(missing), "no such file")
    text = tmp_path / "text.h5"
    text.write_text("not hdf5")
    assert_clean_failure(run_kpo("diag", text, check=False), str(text), "not an HDF5 file")
    assert_clean_failure(run_kpo("filter", text, check=False), str(text), "not an HDF5 file")
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["x"] = np.arange(3)
    assert_clean_failure(run_kpo("diag", foreign, check=False), str(foreign), "not a kpo run")
    lacking = tmp_path / "lacking.h5"
    with h5py.File(lacking, "w") as f:
        f.attrs["format"] = "kpo-run"
        f.attrs["format_version"] = 1
    assert_clean_failure(run_kpo("diag", lacking, check=False), str(lacking), "lacks")


def test_bad_gain_and_stats_arguments():
    assert_clean_failure(run_kpo("gain", "--q", "0.01", "--v", "0", check=False), "--v")
    assert_clean_failure(run_kpo("gain", "--q", "-1", "--v", "1", check=False), "--q")
    assert_clean_failure(run_kpo("gain", "--q", "0.1", "--v", "1", "--kappa", "0",
                                 check=False), "--kappa")
    assert_clean_failure(run_kpo("gain", "--v", "1", check=False), "--q")
    assert_clean_failure(run_kpo("stats", "--p1", "48.59", "--n1", 8000, "--p2", "0.47",
                                 "--n2", 8000, check=False), "--p1", "48.59%")
    assert_clean_failure(run_kpo("stats", "--p1", "0.4", "--n1", 0, "--p2", "0.47",
                                 "--n2", 8000, check=False), "n1")
    assert_clean_failure(run_kpo("nonsense", check=False), "unknown command")
