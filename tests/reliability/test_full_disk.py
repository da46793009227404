"""A full disk while run.h5 grows: the run must stop with a non-zero exit
and an error naming the run file and dataset (it used to write rows of
step 0 with NaN statistics and exit 0), and once space is freed --resume
from the last checkpoint must complete with steps exactly 1..N.

Needs a small tmpfs: mounted as root (`mount -t tmpfs -o size=16m`);
skipped with a message where mounting is not permitted."""
import os
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))
from conftest import KPO, MPI_ENV, run, write_config  # noqa: E402

# Per-step datasets grow in chunks of 64 rows: the first write that needs
# new space on the disk is row 65's, so the run must go past it.
STEPS = 80


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("full-disk test skipped: mounting a tmpfs needs root")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"full-disk test skipped: mounting a tmpfs is not permitted here "
                    f"({result.stderr.strip()})")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def fill(path):
    """Writes zeros to path until the disk is full."""
    with open(path, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass


def test_full_disk_stops_the_run_and_resume_completes(tmp_path, small_disk, tiny_model):
    # run.h5 on the small disk; checkpoints elsewhere, so the run file is
    # what meets the full disk.
    out = small_disk / "run"
    out.mkdir()
    (tmp_path / "checkpoints").mkdir()
    os.symlink(tmp_path / "checkpoints", out / "checkpoints")
    cfg = write_config(tmp_path / "c.ini", tiny_model, out,
                       run={"steps": STEPS, "checkpoint_every": 10, "log_samples": 2},
                       learner={"minibatches": 1})
    proc = subprocess.Popen([KPO, "train", str(cfg)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **MPI_ENV})
    filled = False
    for line in proc.stdout:
        if line.startswith("step   3/"):
            fill(small_disk / "filler")
            filled = True
            break
    stdout = proc.stdout.read()
    stderr = proc.stderr.read()
    proc.wait(timeout=600)
    assert filled, stdout + stderr
    assert proc.returncode == 1, f"exit {proc.returncode}\n{stdout[-2000:]}\n{stderr}"
    assert f"finished at step {STEPS}" not in stdout
    assert str(out / "run.h5") in stderr
    assert "No space left on device" in stderr and "HDF5 error while" in stderr, stderr
    checkpoints = sorted(os.listdir(tmp_path / "checkpoints"))
    assert checkpoints and checkpoints[-1] < f"step-{STEPS:08d}"

    os.unlink(small_disk / "filler")
    time.sleep(0.1)
    run(["train", cfg, "--resume"], timeout=600)
    with h5py.File(out / "run.h5", "r") as f:
        assert list(f["steps/step"][:]) == list(range(1, STEPS + 1))
        acc = f["innovation/accumulator"][:]
        assert acc.shape == (STEPS, 77) and not np.isnan(acc).any()
        assert (f["innovation/count"][:] > 0).all()
