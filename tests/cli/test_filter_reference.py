"""`kpo filter --per-token` against an independent Python reference, for
every saturation mode; and its statistics against NumPy."""
import os
import sys
import zlib

import numpy as np
import pytest

from conftest import parse_csv, run_kpo

sys.path.insert(0, os.path.join(os.environ.get("KPO_SOURCE_ROOT", "."), "tests", "reference"))
from kalman_reference import filter_response  # noqa: E402

MODES = {
    "none": {},
    "sigma": {"kappa": 1.5},
    "sqrtv": {"kappa": 0.8},
    "iterated": {"kappa": 1.0, "iterations": 3},
    "adaptive": {"kappa": 2.0},
}


def heavy_tailed_responses(seed, n=6):
    rng = np.random.default_rng(seed)
    responses = []
    for k in range(n):
        length = int(rng.integers(1, 400))
        z = 0.3 * rng.standard_t(3, size=length) + np.cumsum(rng.normal(0, 0.01, length))
        if length > 10:
            z[length // 2] = 6.0 * (-1) ** k    # an outlier mid-response
        responses.append(z)
    return responses


def write_input(tmp_path, responses):
    path = tmp_path / "logratios.txt"
    with open(path, "w") as f:
        f.write("# one response per line\n")
        for z in responses:
            f.write(" ".join(repr(float(x)) for x in z) + "\n")
    return path


@pytest.mark.parametrize("mode", sorted(MODES))
@pytest.mark.parametrize("q,v", [(1e-6, 1.0), (1e-2, 1.0), (1e-2, 0.1)])
def test_per_token_matches_reference(tmp_path, mode, q, v):
    responses = heavy_tailed_responses(seed=zlib.crc32(f"{mode} {q} {v}".encode()))
    path = write_input(tmp_path, responses)
    params = MODES[mode]
    args = ["filter", "--input", path, "--q", q, "--v", v, "--mode", mode, "--per-token"]
    for key, value in params.items():
        args += [f"--{key}", value]
    rows = parse_csv(run_kpo(*args).stdout)
    expected = [t for z in responses for t in filter_response(z, q, v, mode=mode, **params)]
    assert len(rows) == len(expected)
    worst = 0.0
    clips = 0
    for row, (rho, gain, delta, threshold, clipped) in zip(rows, expected):
        for got, want in ((row["rho"], rho), (row["gain"], gain), (row["delta"], delta)):
            worst = max(worst, abs(float(got) - want))
        assert float(row["threshold"]) == pytest.approx(threshold, rel=1e-14)
        assert int(row["clipped"]) == clipped
        clips += clipped
    assert worst < 1e-12, f"worst per-token difference {worst:.3g}"
    if mode != "none":
        assert clips > 0, "the outliers should trigger saturation"


def test_statistics_match_numpy(tmp_path):
    responses = heavy_tailed_responses(seed=7, n=10)
    path = write_input(tmp_path, responses)
    out = run_kpo("filter", "--input", path, "--q", "0.01", "--v", "0.1", "--mode", "sigma",
                  "--kappa", "2", "--csv").stdout
    (row,) = [r for r in parse_csv(out) if r["step"] == "all"]
    tokens = [t for z in responses for t in filter_response(z, 0.01, 0.1, "sigma", kappa=2)]
    delta = np.array([t[2] for t in tokens])
    centred = delta - delta.mean()
    assert int(row["tokens"]) == len(delta)
    assert float(row["kurtosis"]) == pytest.approx(
        np.mean(centred**4) / np.mean(centred**2) ** 2, rel=1e-10)
    assert float(row["max_abs_delta"]) == pytest.approx(np.abs(delta).max(), rel=1e-14)
    assert float(row["clip_fraction"]) == pytest.approx(np.mean([t[4] for t in tokens]))
    assert float(row["mean_gain"]) == pytest.approx(np.mean([t[1] for t in tokens]), rel=1e-12)
    assert float(row["mean_threshold"]) == pytest.approx(np.mean([t[3] for t in tokens]),
                                                         rel=1e-12)
