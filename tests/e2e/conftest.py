"""Fixtures for the end-to-end training tests: a tiny random Qwen3 model for
the byte tokenizer, and helpers to run kpo (alone or under mpirun)."""
import json
import os
import subprocess

import pytest

KPO = os.environ.get("KPO_BIN", os.path.join(os.getcwd(), "build", "kpo"))
MPI_ENV = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
           "OMP_NUM_THREADS": "1"}


def run(args, ranks=0, timeout=300, check=True, env_extra=None):
    """Runs kpo; ranks > 0 launches it under mpirun with that many ranks."""
    env = {**os.environ, **MPI_ENV, **(env_extra or {})}
    cmd = [KPO, *map(str, args)]
    if ranks:
        cmd = ["mpirun", "-np", str(ranks), "--oversubscribe", *cmd]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({result.returncode}):\n"
                             f"{result.stdout}\n{result.stderr}")
    return result


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
    """A tiny training config; sections override {section: {key: value}}."""
    settings = {
        "run": {"out": out_dir, "steps": 4, "checkpoint_every": 2, "log_samples": 4},
        "model": {"path": model_dir, "tokenizer": "byte"},
        "data": {"train": "arith", "arith_difficulty": 1, "arith_problems": 200,
                 "prompt_template": "dapo", "chat_template": "raw"},
        "rollout": {"prompts_per_step": 4, "group_size": 4, "max_new_tokens": 12,
                    "max_batch": 16},
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
