"""Fixtures for the reliability suite: kpo runners, a tiny model, and a
real tiny run file and eval file to corrupt."""
import os
import shutil
import sys

import pytest

# The runner, tiny model and config writer are the e2e suite's (one home).
sys.path.append(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
import kpo_run  # noqa: E402
from kpo_run import KPO, MPI_ENV, run  # noqa: E402,F401 (re-exported)

# Smaller than the e2e suite's rollout: these runs only need files to corrupt.
ROLLOUT = {"prompts_per_step": 2, "group_size": 2, "max_new_tokens": 6, "max_batch": 4}


@pytest.fixture(scope="session", autouse=True)
def require_hdf5_and_mpi():
    info = run(["info"]).stdout
    if "hdf5=yes" not in info or "mpi=yes" not in info:
        pytest.skip("kpo was built without HDF5 or MPI: reliability tests skipped")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    return kpo_run.tiny_model(tmp_path_factory.mktemp("model"))


def write_config(path, model_dir, out_dir, **sections):
    """A small, fast training config; sections override {section: {key: value}}."""
    return kpo_run.write_config(path, model_dir, out_dir, rollout_defaults=ROLLOUT, **sections)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_model):
    """A finished 4-step run (checkpoints at 2 and 4) and an eval file of its
    last checkpoint; tests copy them before changing anything."""
    base = tmp_path_factory.mktemp("tiny_run")
    cfg = write_config(base / "c.ini", tiny_model, base / "run")
    run(["train", cfg])
    run(["eval", "--model", base / "run" / "checkpoints" / "step-00000004", "--bench", "arith",
         "--arith-problems", 6, "--k", 2, "--max-new-tokens", 4, "--max-batch", 12,
         "--out", base / "eval.h5"])
    return base


def copy_run(tiny_run, dest):
    """A private copy of the tiny run directory (config rewritten to it)."""
    shutil.copytree(tiny_run / "run", dest / "run", symlinks=True)
    text = (tiny_run / "c.ini").read_text().replace(str(tiny_run / "run"), str(dest / "run"))
    (dest / "c.ini").write_text(text)
    return dest / "c.ini"
