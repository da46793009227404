"""The HDF5 run file as an outside tool sees it: h5py reads what C wrote."""
import math
import os
import signal
import subprocess

import h5py
import numpy as np
import pytest

from conftest import run_kpo

WRITER = os.environ.get("KPO_RUNFILE_WRITER")
STEP_DATASETS = ("steps/step", "innovation/count", "innovation/kurtosis",
                 "innovation/accumulator", "innovation/histogram", "metrics/loss",
                 "metrics/late_metric")

pytestmark = pytest.mark.usefixtures("require_hdf5")


def writer(*args, **kwargs):
    if not WRITER:
        pytest.skip("KPO_RUNFILE_WRITER is not set (run through meson test)")
    return subprocess.run([WRITER, *map(str, args)], capture_output=True, text=True,
                          timeout=60, **kwargs)


def known_deltas(step):
    return np.array([step + 0.5 * i for i in range(10)])


def check_rows(path, steps):
    """Every per-step record holds exactly `steps`, with the known values."""
    with h5py.File(path, "r") as f:
        assert list(f["steps/step"][:]) == steps
        for name in STEP_DATASETS:
            assert f[name].shape[0] == len(steps), name
        for row, step in enumerate(steps):
            d = known_deltas(step)
            centred = d - d.mean()
            assert f["innovation/count"][row] == 10
            assert f["innovation/mean"][row] == pytest.approx(d.mean(), rel=1e-14)
            assert f["innovation/variance"][row] == pytest.approx(np.mean(centred**2), rel=1e-12)
            kurt = np.mean(centred**4) / np.mean(centred**2) ** 2
            assert f["innovation/kurtosis"][row] == pytest.approx(kurt, rel=1e-12)
            assert f["innovation/max_abs_delta"][row] == d.max()
            assert f["innovation/clip_count"][row] == np.sum(d > 3.0)
            assert f["innovation/clip_fraction"][row] == pytest.approx(np.mean(d > 3.0))
            assert f["innovation/mean_gain"][row] == pytest.approx(0.01 * step)
            assert f["innovation/mean_threshold"][row] == pytest.approx(3.0)
            assert f["innovation/histogram"][row].sum() == 10
            assert f["metrics/loss"][row] == 1.5 * step
            assert f["metrics/reward_mean"][row] == pytest.approx(step / 10)
            late = f["metrics/late_metric"][row]
            assert (math.isnan(late) if step < 3 else late == step)
        offsets, lengths = f["samples/offsets"][:], f["samples/lengths"][:]
        sample_steps, values = f["samples/step"][:], f["samples/values"][:]
        assert list(sample_steps) == [s for s in steps for _ in range(2)]
        assert list(lengths) == [n for s in steps for n in (s, 2)]
        assert offsets[0] == 0 and list(np.diff(offsets)) == list(lengths[:-1])
        assert len(values) == lengths.sum()
        for k, (start, n, s) in enumerate(zip(offsets, lengths, sample_steps)):
            assert list(values[start:start + n]) == [100.0 * s + i for i in range(n)], k


def test_layout_names_shapes_and_values(tmp_path):
    path = tmp_path / "run.h5"
    assert writer("create", path, 5).returncode == 0
    with h5py.File(path, "r") as f:
        assert f.attrs["format"] == "kpo-run"
        assert f.attrs["format_version"] == 1
        assert "kind = known-values" in f.attrs["config"]
        assert f.attrs["build_info"].startswith("kpo ")
        assert f["innovation/histogram"].shape == (5, 66)
        edges = f["innovation/histogram"].attrs["bin_edges"]
        assert len(edges) == 65 and edges[0] == -8.0 and edges[-1] == 8.0
        assert f["innovation/accumulator"].shape[1] == 11 + 66
        assert f["steps/step"].dtype == np.int64
        assert f["steps/step"].chunks is not None and f["steps/step"].maxshape == (None,)
    check_rows(path, [1, 2, 3, 4, 5])


def test_refuses_to_overwrite(tmp_path):
    path = tmp_path / "run.h5"
    path.write_text("precious")
    result = writer("create", path, 1)
    assert result.returncode != 0
    assert "already exists" in result.stderr and str(path) in result.stderr
    assert path.read_text() == "precious"


def test_cut_back_then_append_keeps_each_step_once(tmp_path):
    path = tmp_path / "run.h5"
    assert writer("create", path, 6).returncode == 0
    assert writer("truncate", path, 3).returncode == 0
    check_rows(path, [1, 2, 3])
    assert writer("append", path, 4, 7).returncode == 0
    check_rows(path, [1, 2, 3, 4, 5, 6, 7])
    # A step that does not follow the last one is refused.
    result = writer("append", path, 7, 7)
    assert result.returncode != 0 and "does not follow" in result.stderr
    check_rows(path, [1, 2, 3, 4, 5, 6, 7])


def test_sigkill_between_steps_leaves_every_flushed_step(tmp_path):
    path = tmp_path / "run.h5"
    if not WRITER:
        pytest.skip("KPO_RUNFILE_WRITER is not set (run through meson test)")
    proc = subprocess.Popen([WRITER, "create", str(path), "50", "3000"],
                            stdout=subprocess.PIPE, text=True)
    try:
        for line in proc.stdout:
            if line.strip() == "flushed 3":
                break
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    check_rows(path, [1, 2, 3])
    # The killed run resumes: reopened for append, it goes on from step 4.
    assert writer("append", path, 4, 5).returncode == 0
    check_rows(path, [1, 2, 3, 4, 5])


def test_kpo_diag_reads_what_was_written(tmp_path):
    path = tmp_path / "run.h5"
    assert writer("create", path, 4).returncode == 0
    out = run_kpo("diag", path, "--csv").stdout.strip().splitlines()
    rows = [line.split(",") for line in out[1:]]
    assert [r[1] for r in rows] == ["1", "2", "3", "4", "all"]
    with h5py.File(path, "r") as f:
        for r, kurt in zip(rows, f["innovation/kurtosis"][:]):
            assert float(r[3]) == pytest.approx(kurt, rel=1e-15)
