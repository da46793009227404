"""run.device: cpu is the default and unchanged; cuda on a machine (or a
build) without a usable GPU fails at start-up on every rank, says why, and
leaves no run directory behind; run.gpu_comm takes auto, nccl or host."""
import re
import time

import h5py
import numpy as np
import pytest

from conftest import run, write_config


def gpu_count():
    info = run(["info"]).stdout
    found = re.search(r"^devices: (\d+) GPU", info, re.MULTILINE)
    return int(found.group(1)) if found else 0


# gpu_comm = host: the host-staged transport needs a GPU just the same.
@pytest.mark.parametrize("ranks,rollout_ranks,gpu_comm",
                         [(0, 0, "auto"), (2, 0, "auto"), (3, 1, "auto"), (2, 1, "host")])
def test_cuda_without_gpu_fails_fast(tmp_path, tiny_model, ranks, rollout_ranks, gpu_comm):
    if gpu_count() > 0:
        pytest.skip("this machine has a GPU: device = cuda would run (tests/gpu covers it)")
    cfg = write_config(tmp_path / "c.ini", tiny_model, tmp_path / "run",
                       run={"device": "cuda", "gpu_comm": gpu_comm},
                       rollout={"ranks": rollout_ranks})
    started = time.monotonic()
    result = run(["train", cfg], ranks=ranks, check=False, timeout=120)
    assert result.returncode != 0
    messages = [line for line in result.stderr.splitlines() if line.startswith("kpo:")]
    assert len(messages) == 1, result.stderr             # agreed, reported once
    assert "run.device = cuda: no usable GPU: " in messages[0], messages[0]
    assert "MPI_ABORT" not in result.stderr               # a clean, agreed exit
    assert not (tmp_path / "run").exists()                 # no run file, no checkpoint
    assert time.monotonic() - started < 60


def test_device_value_is_checked(tmp_path, tiny_model):
    cfg = write_config(tmp_path / "c.ini", tiny_model, tmp_path / "run", run={"device": "gpu"})
    result = run(["train", cfg], check=False)
    assert result.returncode != 0
    assert "run.device = 'gpu'" in result.stderr and "cpu|cuda" in result.stderr, result.stderr
    assert not (tmp_path / "run").exists()


def test_gpu_comm_value_is_checked(tmp_path, tiny_model):
    cfg = write_config(tmp_path / "c.ini", tiny_model, tmp_path / "run",
                       run={"device": "cuda", "gpu_comm": "mpi"})
    result = run(["train", cfg], check=False)
    assert result.returncode != 0
    assert "run.gpu_comm = 'mpi'" in result.stderr and "auto|nccl|host" in result.stderr, \
        result.stderr
    assert not (tmp_path / "run").exists()


def test_device_cpu_is_the_default(tmp_path, tiny_model):
    """Saying device = cpu changes nothing: the same records as leaving it out."""
    for name, extra in (("default", {}), ("cpu", {"device": "cpu"})):
        cfg = write_config(tmp_path / f"{name}.ini", tiny_model, tmp_path / name,
                           run={"steps": 1, **extra})
        run(["train", cfg])
    with h5py.File(tmp_path / "default/run.h5") as a, h5py.File(tmp_path / "cpu/run.h5") as b:
        assert list(a["steps/step"][:]) == list(b["steps/step"][:]) == [1]
        for name in a["metrics"]:
            if not name.startswith(("time_", "tokens_per_second")):
                assert np.array_equal(a[f"metrics/{name}"][:], b[f"metrics/{name}"][:],
                                      equal_nan=True), name


def test_help_config_documents_the_keys():
    text = run(["train", "--help-config"]).stdout
    assert re.search(r"^\s+device\s+choice\s+default cpu", text, re.MULTILINE), text
    assert re.search(r"^\s+recompute\s+choice\s+default true\s.*\(true\|false\|auto\)", text,
                     re.MULTILINE), text
    assert re.search(r"^\s+gpu_comm\s+choice\s+default auto\s.*\(auto\|nccl\|host\)", text,
                     re.MULTILINE), text
