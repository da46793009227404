"""Samples from every mini-batch (issue 12, item 4) on a tiny run: raw
log-ratios are recorded from each mini-batch and tagged with it
(/samples/minibatch), `kpo filter --minibatches` replays a subset, `kpo
diag` pools Table 2 over the off-policy mini-batches and checks the paper's
clip fractions and threshold, and resume cuts the tags with the rest."""
import math
import os
import re
import shutil
import sys

import h5py
import numpy as np
import pytest

from conftest import run, write_config

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))
import kpo_accum  # noqa: E402  (numpy only: the accumulator merge kpo does)

M = 4            # mini-batches per step
PER_STEP = 8     # run.log_samples: split over the mini-batches, 2 each
STEPS = 2
FILTER = ["--q", "0.01", "--v", "1", "--mode", "sigma", "--kappa", "3"]


def parse_csv(text):
    lines = [line for line in text.strip().splitlines() if line]
    header = lines[0].split(",")
    return [dict(zip(header, line.split(","))) for line in lines[1:]]


@pytest.fixture(scope="module")
def run_file(tmp_path_factory, tiny_model):
    base = tmp_path_factory.mktemp("mbsamples")
    cfg = write_config(base / "c.ini", tiny_model, base / "run",
                       run={"steps": STEPS, "checkpoint_every": 0, "log_samples": PER_STEP},
                       learner={"minibatches": M})
    run(["train", cfg])
    return base / "run" / "run.h5"


def test_samples_come_from_every_minibatch_tagged(run_file):
    with h5py.File(run_file, "r") as f:
        tags, steps = f["samples/minibatch"][:], f["samples/step"][:]
        offsets, lengths = f["samples/offsets"][:], f["samples/lengths"][:]
        values = f["samples/values"][:]
        assert "1-based" in f["samples/minibatch"].attrs["meaning"]
    assert tags.dtype == np.int64 and len(tags) == len(offsets) == STEPS * PER_STEP
    for step in range(1, STEPS + 1):
        assert tags[steps == step].tolist() == [1, 1, 2, 2, 3, 3, 4, 4]
    z = [values[o:o + n] for o, n in zip(offsets, lengths)]
    # Mini-batch 1 is on-policy: the old log-probs are the same model's.
    assert max(np.abs(z[i]).max() for i in np.flatnonzero(tags == 1)) <= 1e-6
    assert all(np.abs(z[i]).max() > 0 for i in np.flatnonzero(tags >= 2))


def test_filter_replays_the_selected_minibatches(run_file, tmp_path):
    with h5py.File(run_file, "r") as f:
        tags, lengths = f["samples/minibatch"][:], f["samples/lengths"][:]
        offsets, values = f["samples/offsets"][:], f["samples/values"][:]
    every = parse_csv(run(["filter", run_file, *FILTER, "--csv"]).stdout)
    off = parse_csv(run(["filter", run_file, *FILTER, "--minibatches", "off-policy",
                         "--csv"]).stdout)
    third = parse_csv(run(["filter", run_file, *FILTER, "--minibatches", "3", "--csv"]).stdout)
    assert float(every[-1]["tokens"]) == lengths.sum()
    assert float(off[-1]["tokens"]) == lengths[tags >= 2].sum()
    assert float(third[-1]["tokens"]) == lengths[tags == 3].sum()
    assert [r["step"] for r in off] == ["1", "2", "all"]
    # The same responses as plain text give the same statistics.
    text = tmp_path / "off.txt"
    text.write_text("".join(" ".join(f"{x:.17g}" for x in values[o:o + n]) + "\n"
                            for o, n, t in zip(offsets, lengths, tags) if t >= 2))
    plain = parse_csv(run(["filter", "--input", text, *FILTER, "--csv"]).stdout)[-1]
    for name in ("tokens", "kurtosis", "max_abs_delta", "mean_gain", "mean_threshold"):
        assert math.isclose(float(plain[name]), float(off[-1][name]), rel_tol=1e-12), name
    header = run(["filter", run_file, *FILTER, "--minibatches", "off-policy"]).stdout
    assert header.splitlines()[0].startswith(f"replay of {run_file} [mini-batches off-policy (2..4)]")
    assert "[mini-batches all (1..4)]" in run(["filter", run_file, *FILTER]).stdout
    missing = run(["filter", run_file, "--minibatches", "9"], check=False)
    assert missing.returncode != 0 and str(run_file) in missing.stderr
    assert "/samples/minibatch" in missing.stderr
    bad = run(["filter", run_file, "--minibatches", "stale"], check=False)
    assert bad.returncode != 0 and "--minibatches 'stale'" in bad.stderr


def derived_rows(stats_by_step):
    total = kpo_accum.merge_rows(stats_by_step)
    return [kpo_accum.derived(row) for row in stats_by_step] + [kpo_accum.derived(total)]


def assert_rows_equal(rows, expected):
    assert len(rows) == len(expected)
    for row, exp in zip(rows, expected):
        for name in ("tokens", "kurtosis", "max_abs_delta", "clip_fraction", "mean_gain",
                     "mean_threshold"):
            got, want = float(row[name]), float(exp[name])
            assert (math.isnan(got) and math.isnan(want)) or \
                math.isclose(got, want, rel_tol=1e-12, abs_tol=1e-300), (row["step"], name)


def test_diag_pools_the_off_policy_minibatches_by_default(run_file):
    with h5py.File(run_file, "r") as f:
        per_mb = f["innovation/minibatch_accumulator"][:]
        whole = f["innovation/accumulator"][:]
    off = [kpo_accum.merge_rows(kpo_accum.split_minibatches(row, M)[1:]) for row in per_mb]
    default = parse_csv(run(["diag", run_file, "--csv"]).stdout)
    explicit = parse_csv(run(["diag", run_file, "--csv", "--pool", "off-policy"]).stdout)
    pooled_all = parse_csv(run(["diag", run_file, "--csv", "--pool", "all"]).stdout)
    assert [r["step"] for r in default] == ["1", "2", "all"]
    assert_rows_equal(default, derived_rows(off))
    assert default == explicit
    assert_rows_equal(pooled_all, derived_rows(whole))
    # The on-policy zeros are what separates the two.
    assert float(default[-1]["tokens"]) == whole[:, 0].sum() - per_mb[:, 0].sum()
    text = run(["diag", run_file]).stdout
    assert "Table 2 over the off-policy mini-batches 2..4" in text.splitlines()[1]
    assert "pooled over all mini-batches" in run(["diag", run_file, "--pool", "all"]).stdout
    bad = run(["diag", run_file, "--pool", "stale"], check=False)
    assert bad.returncode != 0 and "--pool" in bad.stderr


def test_diag_paper_check_footer(run_file):
    with h5py.File(run_file, "r") as f:
        counts = f["innovation/count"][:]
    out = run(["diag", run_file]).stdout
    footer = out[out.index("paper check:"):]
    largest = counts.max()
    assert f"held {largest:.0f} tokens: 1/{largest:.0f} = {1 / largest:.2e}" in footer
    assert f"4 x 4 x 12 = 192 tokens a step ({1 / 192:.2e})" in footer
    assert "1/(256 x 4096) = 9.54e-07" in footer and f"{1 / (256 * 4096):.2e}" == "9.54e-07"
    q, v, kappa = 0.01, 1.0, 3.0
    m = (q + math.sqrt(q * q + 4 * q * v)) / 2        # steady prior variance
    sigma_rule = kappa * math.sqrt(m + v)
    assert f"{sigma_rule:.4f}" == "3.1537"
    assert "threshold of this run (mode sigma, q=0.01, v=1, kappa=3)" in footer
    assert f"kappa sigma_inf = kappa sqrt(M + V) = {sigma_rule:.4f}" in footer
    assert "kappa sqrt(V) = 3;" in footer
    assert re.search(r"the paper's 3\.06 .* is neither kappa sqrt\(V\) = 3 nor kappa sigma_inf "
                     r"= 3\.1537", footer)
    assert "paper check:" not in run(["diag", run_file, "--csv"]).stdout


def test_resume_cuts_the_minibatch_tags(tmp_path, tiny_model, run_file):
    """A run resumed from a checkpoint behind its run file: runfile_truncate
    cuts /samples/minibatch with the other sample sets, and the resumed run
    records the same tags and values as the straight one."""
    cfg = write_config(tmp_path / "c.ini", tiny_model, tmp_path / "run",
                       run={"steps": STEPS, "checkpoint_every": 1, "log_samples": PER_STEP},
                       learner={"minibatches": M})
    run(["train", cfg])
    shutil.rmtree(tmp_path / "run" / "checkpoints" / f"step-{STEPS:08d}")
    run(["train", cfg, "--resume"])
    with h5py.File(run_file, "r") as a, h5py.File(tmp_path / "run" / "run.h5", "r") as b:
        assert b["steps/step"][:].tolist() == list(range(1, STEPS + 1))
        for name in ("minibatch", "step", "offsets", "lengths", "values"):
            assert np.array_equal(a[f"samples/{name}"][:], b[f"samples/{name}"][:]), name
