"""kpo train --resume checks that run.h5 records exactly steps 1..S for a
checkpoint at step S, and refuses (naming the run file and what is missing)
rather than resuming to steps 1,2,3,4,9,10,... or dropping good rows."""
import os
import sys

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from conftest import run, write_config  # noqa: E402
from kpo_run import steps_of  # noqa: E402 (conftest put tests/e2e on the path)


def cut_rows(path, keep):
    """Cuts every per-step dataset of the run file to `keep` rows."""
    with h5py.File(path, "r+") as f:
        for group in ("steps", "innovation", "metrics"):
            for d in f[group].values():
                d.resize(keep, axis=0)


def eight_steps(tmp_path, tiny_model, every=4):
    cfg = write_config(tmp_path / "c.ini", tiny_model, tmp_path / "run",
                       run={"steps": 8, "checkpoint_every": every, "keep_checkpoints": 10})
    run(["train", cfg])
    return cfg, tmp_path / "run" / "run.h5"


def test_resume_refuses_a_run_file_short_of_the_checkpoint(tmp_path, tiny_model):
    cfg, run_file = eight_steps(tmp_path, tiny_model)
    cut_rows(run_file, 4)                      # the checkpoint is at step 8
    result = run(["train", cfg, "--resume", "--set", "run.steps=10"], check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    assert str(run_file) in result.stderr
    assert "/steps/step" in result.stderr and "5..8 are missing" in result.stderr
    assert steps_of(run_file) == [1, 2, 3, 4]  # left as it was


def test_resume_refuses_a_corrupt_step_value(tmp_path, tiny_model):
    cfg, run_file = eight_steps(tmp_path, tiny_model)
    with h5py.File(run_file, "r+") as f:
        f["steps/step"][2] = 0                 # row 2 should hold step 3
    result = run(["train", cfg, "--resume", "--set", "run.steps=10"], check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    assert str(run_file) in result.stderr and "row 2 holds step 0" in result.stderr
    assert steps_of(run_file) == [1, 2, 0, 4, 5, 6, 7, 8]


def test_resume_cuts_rows_after_the_checkpoint(tmp_path, tiny_model):
    """Rows after the checkpoint (here zeros a failed write left, which
    the old cut kept: 0 <= 6) are cut, and the run continues 1..N."""
    cfg, run_file = eight_steps(tmp_path, tiny_model, every=2)
    os.rename(tmp_path / "run" / "checkpoints" / "step-00000008", tmp_path / "gone")
    assert "step-00000006" in os.listdir(tmp_path / "run" / "checkpoints")
    with h5py.File(run_file, "r+") as f:
        f["steps/step"][6:] = 0
    run(["train", cfg, "--resume", "--set", "run.steps=10"])
    assert steps_of(run_file) == list(range(1, 11))
    with h5py.File(run_file, "r") as f:
        assert f["innovation/accumulator"].shape == (10, 77)
        assert not np.isnan(f["innovation/accumulator"][:]).any()


def test_resume_with_an_offset_near_int64_max(tmp_path, tiny_model):
    """Reopening checks each response's offset + length against
    /samples/values by differences (the sum overflowed: undefined behaviour,
    and a negative size for /samples/values); the torn response is cut."""
    cfg, run_file = eight_steps(tmp_path, tiny_model)
    with h5py.File(run_file, "r+") as f:
        n = f["samples/offsets"].shape[0]
        f["samples/offsets"][n - 1] = np.iinfo(np.int64).max - 1
    run(["train", cfg, "--resume", "--set", "run.steps=10"])
    assert steps_of(run_file) == list(range(1, 11))
    with h5py.File(run_file, "r") as f:
        assert f["samples/offsets"].shape[0] == n - 1 + 2 * 4   # two more steps of 4
        ends = f["samples/offsets"][:] + f["samples/lengths"][:]
        assert ends.max() <= f["samples/values"].shape[0]
    run(["filter", run_file, "--q", "0.01", "--v", "1"])
