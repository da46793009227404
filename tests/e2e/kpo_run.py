"""Running kpo from pytest, shared by the e2e, reliability and gpu suites:
the binary, the environment mpirun needs, a runner (alone or under
mpirun), the tiny random model for the byte tokenizer, a tiny training
config, and the run-file readers the resume tests compare. Each folder's
conftest.py wraps these as its fixtures; a folder other than tests/e2e
imports this module after adding tests/e2e to sys.path."""
import json
import os
import subprocess

import h5py

KPO = os.environ.get("KPO_BIN", os.path.join(os.getcwd(), "build", "kpo"))
MPI_ENV = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
           "OMP_NUM_THREADS": "1"}
# Per-step records that measure wall-clock time: they differ between runs.
TIMING = ("time_", "tokens_per_second")
# The e2e suite's rollout section (write_config's default).
ROLLOUT = {"prompts_per_step": 4, "group_size": 4, "max_new_tokens": 12, "max_batch": 16}


def run(args, ranks=0, timeout=300, check=True, env_extra=None, cwd=None, base_env=None):
    """Runs kpo; ranks > 0 launches it under mpirun with that many ranks.
    The environment is os.environ, then base_env (MPI_ENV unless given),
    then env_extra. Raises on a failure when check."""
    env = {**os.environ, **(MPI_ENV if base_env is None else base_env), **(env_extra or {})}
    cmd = [KPO, *map(str, args)]
    if ranks:
        cmd = ["mpirun", "-np", str(ranks), "--oversubscribe", *cmd]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                            cwd=cwd)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({result.returncode}):\n"
                             f"{result.stdout}\n{result.stderr}")
    return result


def tiny_model(base):
    """Writes a tiny random Qwen3 model for the byte tokenizer under base
    (the tiny preset, vocabulary cut to 264); returns its directory."""
    run(["model", "init", "--out", base / "preset", "--preset", "tiny"])
    config = json.loads((base / "preset" / "config.json").read_text())
    config["vocab_size"] = 264          # the byte tokenizer's 261 ids, rounded up
    (base / "config.json").write_text(json.dumps(config))
    run(["model", "init", "--out", base / "model", "--config", base / "config.json",
         "--std", "0.2", "--seed", "3"])
    return base / "model"


def write_config(path, model_dir, out_dir, rollout_defaults=ROLLOUT, **sections):
    """A tiny training config (rollout_defaults: its rollout section before
    overrides); sections override {section: {key: value}}."""
    settings = {
        "run": {"out": out_dir, "steps": 4, "checkpoint_every": 2, "log_samples": 4},
        "model": {"path": model_dir, "tokenizer": "byte"},
        "data": {"train": "arith", "arith_difficulty": 1, "arith_problems": 200,
                 "prompt_template": "dapo", "chat_template": "raw"},
        "rollout": dict(rollout_defaults),
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


def steps_of(run_file):
    with h5py.File(run_file, "r") as f:
        return list(f["steps/step"][:])


def records(run_file):
    """Every per-step record except wall-clock timings."""
    with h5py.File(run_file, "r") as f:
        out = {"innovation/accumulator": f["innovation/accumulator"][:]}
        for name, d in f["metrics"].items():
            if not name.startswith(TIMING):
                out[f"metrics/{name}"] = d[:]
        out["samples/values"] = f["samples/values"][:]
        return out
