"""Shared by the Slurm and multi-host tests: paths, a tiny random model,
bounded polling, run-file checks."""
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import h5py
import numpy as np

SOURCE_ROOT = Path(os.environ.get("KPO_SOURCE_ROOT", Path(__file__).resolve().parents[2]))
KPO = os.environ.get("KPO_BIN", str(SOURCE_ROOT / "build" / "kpo"))
JOBS = SOURCE_ROOT / "jobs"
LOCAL_SLURM = SOURCE_ROOT / "tests" / "slurm" / "local-slurm.sh"

# Conditions, in the order of the paper's tables.
CONDITIONS = ["kpo-strong", "kpo-weak", "is-kpo-weak", "opt0", "opt1", "grpo", "gspo"]

# A run that takes seconds on two CPU cores: the tiny preset, fewer prompts.
TINY_SETS = ["rollout.prompts_per_step=4", "rollout.max_new_tokens=16", "run.log_samples=4"]


def run(cmd, timeout=120, check=True, env=None, **kwargs):
    result = subprocess.run([str(c) for c in cmd], capture_output=True, text=True,
                            timeout=timeout, env=env, **kwargs)
    if check and result.returncode != 0:
        raise AssertionError(f"{cmd} exited {result.returncode}\nstdout:\n{result.stdout}\n"
                             f"stderr:\n{result.stderr}")
    return result


def make_tiny_model(directory: Path) -> Path:
    """A random tiny Qwen3 whose vocabulary covers the byte tokenizer's ids."""
    base = directory / "preset"
    run([KPO, "model", "init", "--preset", "tiny", "--out", base])
    config = json.loads((base / "config.json").read_text())
    config["vocab_size"] = 264
    config_path = directory / "tiny-config.json"
    config_path.write_text(json.dumps(config))
    model = directory / "model"
    run([KPO, "model", "init", "--config", config_path, "--out", model])
    shutil.rmtree(base)
    return model


def wait_for(predicate, timeout, interval=0.5, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def assert_every_step_once(run_h5: Path, n_steps: int, filtered: bool = True):
    """Steps 1..n_steps, each exactly once, in every per-step record."""
    expected = list(range(1, n_steps + 1))
    with h5py.File(run_h5, "r") as f:
        steps = np.asarray(f["steps/step"][...]).tolist()
        assert steps == expected, f"steps recorded: {steps}"
        for group in ("metrics", "innovation"):
            for name, dataset in f[group].items():
                assert dataset.shape[0] == n_steps, \
                    f"{group}/{name} holds {dataset.shape[0]} rows for {n_steps} steps"
        sample_steps = np.asarray(f["samples/step"][...])
        assert sorted(set(sample_steps.tolist())) == expected, sorted(set(sample_steps.tolist()))
        per_step = np.bincount(sample_steps.astype(np.int64))[1:]
        assert np.all(per_step == per_step[0]), f"raw log-ratio samples per step: {per_step}"
        if filtered:  # GRPO and GSPO run no filter: their innovation rows are NaN
            assert np.all(np.isfinite(f["innovation/kurtosis"][...]))


def rank_log_has(path: Path, pattern: str) -> bool:
    return path.exists() and re.search(pattern, path.read_text(errors="replace"), re.M) is not None
