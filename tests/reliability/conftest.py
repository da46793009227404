"""Fixtures for the reliability suite: kpo runners, a tiny model, and a
real tiny run file and eval file to corrupt."""
import json
import os
import shutil
import subprocess

import pytest

KPO = os.environ.get("KPO_BIN", os.path.join(os.getcwd(), "build", "kpo"))
MPI_ENV = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
           "OMP_NUM_THREADS": "1"}


def run(args, check=True, timeout=300, cwd=None):
    """Runs kpo alone (no mpirun); raises on failure when check."""
    env = {**os.environ, **MPI_ENV}
    cmd = [KPO, *map(str, args)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                            cwd=cwd)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({result.returncode}):\n"
                             f"{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="session", autouse=True)
def require_hdf5_and_mpi():
    info = run(["info"]).stdout
    if "hdf5=yes" not in info or "mpi=yes" not in info:
        pytest.skip("kpo was built without HDF5 or MPI: reliability tests skipped")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    base = tmp_path_factory.mktemp("model")
    run(["model", "init", "--out", base / "preset", "--preset", "tiny"])
    config = json.loads((base / "preset" / "config.json").read_text())
    config["vocab_size"] = 264          # the byte tokenizer's 261 ids, rounded up
    (base / "config.json").write_text(json.dumps(config))
    run(["model", "init", "--out", base / "model", "--config", base / "config.json",
         "--std", "0.2", "--seed", "3"])
    return base / "model"


def write_config(path, model_dir, out_dir, **sections):
    """A small, fast training config; sections override {section: {key: value}}."""
    settings = {
        "run": {"out": out_dir, "steps": 4, "checkpoint_every": 2, "log_samples": 4},
        "model": {"path": model_dir, "tokenizer": "byte"},
        "data": {"train": "arith", "arith_difficulty": 1, "arith_problems": 200,
                 "prompt_template": "dapo", "chat_template": "raw"},
        "rollout": {"prompts_per_step": 2, "group_size": 2, "max_new_tokens": 6,
                    "max_batch": 4},
        "learner": {"minibatches": 2},
        "filter": {"q": 0.01, "mode": "sigma", "kappa": 3},
        "optim": {"lr": 1e-3, "warmup_steps": 0},
    }
    for section, values in sections.items():
        settings.setdefault(section, {}).update(values)
    lines = []
    for section, values in settings.items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {v}" for k, v in values.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


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
