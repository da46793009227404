"""/samples/minibatch (issue 12, item 4) on run files with known contents
(runfile_writer) and on files from before it: the tags are cut with the
other sample sets, a file without them reads, replays and resumes as
before, and the tools say what they cannot do with it, naming the file."""
import os
import subprocess

import h5py
import numpy as np
import pytest

from conftest import parse_csv, run_kpo

WRITER = os.environ.get("KPO_RUNFILE_WRITER")

pytestmark = pytest.mark.usefixtures("require_hdf5")


def writer(*args):
    if not WRITER:
        pytest.skip("KPO_RUNFILE_WRITER is not set (run through meson test)")
    result = subprocess.run([WRITER, *map(str, args)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    return result


def sample_sets(path):
    with h5py.File(path, "r") as f:
        return {name: f[f"samples/{name}"][:] for name in f["samples"]}


def test_untagged_samples_read_minus_one_and_truncate_with_the_rest(tmp_path):
    path = tmp_path / "run.h5"
    writer("create", path, 4)                  # two responses per step, no mini-batches
    s = sample_sets(path)
    assert s["minibatch"].tolist() == [-1] * 8 and len(s["offsets"]) == 8
    writer("truncate", path, 2)
    s = sample_sets(path)
    assert s["step"].tolist() == [1, 1, 2, 2]
    assert len(s["minibatch"]) == len(s["offsets"]) == len(s["lengths"]) == 4


def make_old_file(tmp_path, steps):
    """A run file as kpo wrote it before /samples/minibatch."""
    path = tmp_path / "old.h5"
    writer("create", path, steps)
    with h5py.File(path, "r+") as f:
        del f["samples/minibatch"]
    return path


def test_old_file_replays_and_resumes_as_before(tmp_path):
    path = make_old_file(tmp_path, 3)
    rows = parse_csv(run_kpo("filter", path, "--q", "0.01", "--csv").stdout)
    with h5py.File(path, "r") as f:
        assert float(rows[-1]["tokens"]) == f["samples/lengths"][:].sum()
    header = run_kpo("filter", path, "--q", "0.01").stdout.splitlines()[0]
    assert "[mini-batches all (not recorded in this file)]" in header
    off = run_kpo("filter", path, "--minibatches", "off-policy", check=False)
    assert off.returncode != 0 and str(path) in off.stderr and "/samples/minibatch" in off.stderr
    # Cut back and appended to: the tags appear, -1 for what was there.
    writer("truncate", path, 2)
    with h5py.File(path, "r") as f:
        assert "minibatch" not in f["samples"] and len(f["samples/offsets"]) == 4
    writer("append", path, 3, 4)
    s = sample_sets(path)
    assert s["step"].tolist() == [1, 1, 2, 2, 3, 3, 4, 4]
    assert s["minibatch"].tolist() == [-1] * 8


def test_diag_without_minibatch_statistics_pools_all_and_says_why(tmp_path):
    path = make_old_file(tmp_path, 3)
    out = run_kpo("diag", path).stdout.splitlines()
    assert out[1].startswith("Table 2 pooled over all mini-batches of each step: no "
                             "/innovation/minibatch_accumulator")
    asked = run_kpo("diag", path, "--pool", "off-policy", check=False)
    assert asked.returncode != 0 and str(path) in asked.stderr
    assert "/innovation/minibatch_accumulator" in asked.stderr
    # No filter settings in its config: the footer says so and still prints the paper's figures.
    text = run_kpo("diag", path).stdout
    assert "gives no filter q and v" in text and "1/(256 x 4096) = 9.54e-07" in text


def test_minibatches_needs_a_run_file(tmp_path):
    text = tmp_path / "z.txt"
    text.write_text("0.1 0.2\n")
    result = run_kpo("filter", "--input", text, "--minibatches", "2", check=False)
    assert result.returncode != 0 and str(text) in result.stderr
    assert "needs a run file" in result.stderr
